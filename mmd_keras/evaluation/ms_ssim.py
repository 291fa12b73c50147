"""Multi-scale SSIM between image pairs and paper 3's MS-SSIM diversity score.

* :func:`ms_ssim`: MS-SSIM of image pairs (Wang et al. 2003), ``tf.image.ssim_multiscale``.
* :func:`ms_ssim_diversity`: its mean over random pairs of distinct generated images (Wang
  et al., *Improving MMD-GAN training with repulsive loss function*, ICLR 2019, §5).
"""

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class DiversityResult:
    """Mean and std of MS-SSIM over ``num_pairs`` random pairs (lower = more diverse)."""

    mean: float
    std: float
    num_pairs: int
    seed: int


MS_SSIM_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _as_images(images, name):
    t = tf.convert_to_tensor(images, tf.float32)
    if t.shape.rank != 4:
        raise ValueError(f"Expected `{name}` of rank 4 [N, H, W, C]. Received: `{name}.shape={t.shape}`")
    return t


def ms_ssim(images_a, images_b, max_val=2.0, power_factors=MS_SSIM_POWER_FACTORS,
            filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03):
    """Multi-scale SSIM of image pairs (Wang et al. 2003), ``tf.image.ssim_multiscale``.

    At scales j = 1…M (2×2 average-pool between scales) the Gaussian-window contrast–
    structure term cs_j and at the coarsest scale the full SSIM are averaged over
    positions; MS-SSIM = Π_{j<M} relu(cs_j)^{w_j} · relu(ssim_M)^{w_M}, averaged over
    channels.

    Args:
      images_a, images_b: [N, H, W, C] float images, pixel range [-1, 1] by default.
      max_val: dynamic range of the pixels (2.0 for [-1, 1], 1.0 for [0, 1]).
      power_factors: weights w_j; their count M is the number of scales. The default
        five scales need H, W ≥ filter_size·2⁴ = 176; for small images pass fewer
        scales and/or a smaller ``filter_size``.
      filter_size, filter_sigma, k1, k2: SSIM window and constants.

    Returns:
      [N] float32 NumPy MS-SSIM values (1 for identical images).

    Raises:
      ValueError: rank or shape mismatch, or images too small for the scales.
    """
    a, b = _as_images(images_a, "images_a"), _as_images(images_b, "images_b")
    if a.shape != b.shape:
        raise ValueError(
            f"Expected `images_a` and `images_b` of the same shape. Received: `images_a.shape={a.shape}`, "
            f"`images_b.shape={b.shape}`"
        )
    smallest = int(filter_size) * 2 ** (len(power_factors) - 1)
    if min(a.shape[1], a.shape[2]) < smallest:
        raise ValueError(
            f"Expected images of at least {smallest}×{smallest} pixels for {len(power_factors)} scales of an "
            f"{filter_size}-pixel filter; pass fewer `power_factors` or a smaller `filter_size`. "
            f"Received: `images_a.shape={a.shape}`"
        )
    values = tf.image.ssim_multiscale(
        a, b, max_val, power_factors=tuple(power_factors), filter_size=filter_size,
        filter_sigma=filter_sigma, k1=k1, k2=k2,
    )
    return values.numpy()


def ms_ssim_diversity(images, num_pairs=1000, seed=0, batch_size=256, **ms_ssim_kwargs):
    """Mean MS-SSIM over random pairs of distinct images (paper 3's diversity score).

    Pairs (i, j), i ≠ j, are drawn uniformly with ``np.random.default_rng(seed)``.
    Lower means more diverse samples.

    Args:
      images: [N, H, W, C] generated images (N ≥ 2).
      num_pairs: pairs to average.
      seed: int seed of the pair draws.
      batch_size: pairs per MS-SSIM call.
      **ms_ssim_kwargs: passed to :func:`ms_ssim` (max_val, power_factors, …).

    Returns:
      :class:`DiversityResult`.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"Expected `images` [N ≥ 2, H, W, C]. Received: `images.shape={images.shape}`")
    if int(num_pairs) != num_pairs or num_pairs < 1:
        raise ValueError(f"Expected `num_pairs` a positive integer. Received: `num_pairs={num_pairs}`")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(images), size=int(num_pairs))
    second = (first + rng.integers(1, len(images), size=int(num_pairs))) % len(images)
    values = np.concatenate([
        ms_ssim(images[first[s:s + batch_size]], images[second[s:s + batch_size]], **ms_ssim_kwargs)
        for s in range(0, int(num_pairs), batch_size)
    ])
    return DiversityResult(mean=float(values.mean()), std=float(values.std()), num_pairs=int(num_pairs), seed=seed)
