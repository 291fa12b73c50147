"""Sample-quality metrics of generators: KID, FID, Inception Score and MS-SSIM diversity.

* KID with its variance (:mod:`mmd_keras.evaluation.kid`, re-exported here).
* :func:`frechet_distance` (FID; Heusel et al. 2017): ‖µ_a − µ_b‖² + Tr(Σ_a + Σ_b − 2(Σ_aΣ_b)^½),
  pytorch-fid's formula and stabilization.
* :func:`inception_score` (IS): exp(E_x KL(p(y|x) ‖ p(y))) from *softmax
  probabilities* (paper 2's code used logits, which is wrong).
* :func:`ms_ssim` and :func:`ms_ssim_diversity`: multi-scale SSIM between image pairs, and its
  mean over random pairs of generated images (Wang et al., *Improving MMD-GAN training with
  repulsive loss function*, ICLR 2019, §5.1).

Every value is reported on its raw scale together with what was computed (sample counts,
splits, seed).
"""

import dataclasses
import warnings

import numpy as np
import scipy.linalg
import scipy.special
import tensorflow as tf

from mmd_keras.evaluation.kid import (  # noqa: F401 - KID is part of the metrics API
    KID_METHODS, KID_PRECISIONS, MMD2_VARIANCE_ESTIMATORS, KIDResult, as_feature_pair, as_features,
    kernel_inception_distance, mmd2_variance, polynomial_kernel, polynomial_mmd2_and_variance,
    polynomial_mmd2_unbiased)


@dataclasses.dataclass(frozen=True)
class FIDResult:
    """Fréchet distance with the sample counts it was computed from (biased: compare at equal n)."""

    value: float
    n_a: int
    n_b: int


@dataclasses.dataclass(frozen=True)
class ISResult:
    """Inception Score: mean and std over ``splits`` splits of ``n`` samples."""

    mean: float
    std: float
    splits: int
    n: int


@dataclasses.dataclass(frozen=True)
class DiversityResult:
    """Mean and std of MS-SSIM over ``num_pairs`` random pairs (lower = more diverse)."""

    mean: float
    std: float
    num_pairs: int
    seed: int


SQRTM_RTOL = 1e-6


def _checked_sqrtm(product):
    """``scipy.linalg.sqrtm(product)``, or None when it is not finite or not a square root.

    SciPy warns (``LinAlgWarning``) whenever the Schur form of ``product`` has a zero on its
    diagonal, and its root may then be inaccurate; the residual ‖X² − A‖_F ≤ ``SQRTM_RTOL``·‖A‖_F
    decides instead (it is ~1e-15 for a well-conditioned or an exactly rank-deficient product),
    so values of well-conditioned inputs are unchanged and the warning never reaches the user.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(product)
    if not np.all(np.isfinite(root)):
        return None
    residual = np.linalg.norm(root @ root - product)
    return root if residual <= SQRTM_RTOL * np.linalg.norm(product) else None


def frechet_distance_from_statistics(mu_a, sigma_a, mu_b, sigma_b, eps=1e-6):
    """‖µ_a − µ_b‖² + Tr(Σ_a + Σ_b − 2(Σ_aΣ_b)^½), float64 (pytorch-fid's algorithm).

    ``scipy.linalg.sqrtm`` of Σ_aΣ_b; if it is not finite or not a square root (a singular
    product, e.g. from dead feature units or fewer samples than dimensions), retry with
    ``eps`` added to both diagonals, as pytorch-fid and TTUR do; an imaginary part of the
    diagonal larger than 1e-3 raises, a smaller one is dropped. SciPy's ``LinAlgWarning``
    about a singular product is handled here, not shown: a singular Σ_aΣ_b is the normal
    case for rank-deficient covariances, and the square root is checked instead.

    Raises:
      ValueError: shapes that do not match, or a significant imaginary component.
    """
    mu_a, mu_b = np.atleast_1d(np.asarray(mu_a, np.float64)), np.atleast_1d(np.asarray(mu_b, np.float64))
    sigma_a, sigma_b = np.atleast_2d(np.asarray(sigma_a, np.float64)), np.atleast_2d(np.asarray(sigma_b, np.float64))
    d = mu_a.shape[0]
    for name, value, shape in (("mu_b", mu_b, (d,)), ("sigma_a", sigma_a, (d, d)), ("sigma_b", sigma_b, (d, d))):
        if value.shape != shape:
            raise ValueError(
                f"Expected `{name}` of shape {shape} (from `mu_a`). Received: `{name}.shape={value.shape}`"
            )
    diff = mu_a - mu_b
    covmean = _checked_sqrtm(sigma_a @ sigma_b)
    if covmean is None:
        offset = np.eye(d) * eps
        product = (sigma_a + offset) @ (sigma_b + offset)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            covmean = scipy.linalg.sqrtm(product)
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                "Expected a real matrix square root of sigma_a @ sigma_b. Received: imaginary "
                f"component {np.max(np.abs(covmean.imag))} (covariances far from positive semi-definite?)"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(covmean))


def frechet_distance(features_a, features_b, eps=1e-6):
    """Fréchet (Inception) Distance between two feature samples (Heusel et al. 2017).

    Means and covariances (``np.cov``, ddof = 1) in float64, then
    :func:`frechet_distance_from_statistics`. FID is biased in n: compare values only
    at equal sample counts, which the result reports.

    Args:
      features_a: [n_a, d]; features_b: [n_b, d] (n ≥ 2 each).
      eps: diagonal offset of the fallback square root.

    Returns:
      :class:`FIDResult` (value, n_a, n_b).
    """
    a, b = as_feature_pair(features_a, features_b)
    value = frechet_distance_from_statistics(
        a.mean(axis=0), np.cov(a, rowvar=False), b.mean(axis=0), np.cov(b, rowvar=False), eps
    )
    return FIDResult(value=value, n_a=len(a), n_b=len(b))


def inception_score(probabilities, splits=10, atol=1e-3):
    """Inception Score exp(E_x KL(p(y|x) ‖ p(y))) per split; mean and std over splits.

    Split i holds rows ⌊i·n/splits⌋ … ⌊(i+1)·n/splits⌋ − 1 (the original code's
    split); p(y) is the mean of the split's rows. KL uses 0·log 0 = 0.

    Args:
      probabilities: [n, classes] softmax probabilities (rows ≥ 0 summing to 1),
        e.g. of the 1008-way FID-Inception logits. Not logits.
      splits: number of splits (10 in the papers); n ≥ splits.
      atol: tolerance of the row-sum check.

    Returns:
      :class:`ISResult`.

    Raises:
      ValueError: not rank 2, negative entries or rows not summing to 1 (logits),
        fewer rows than ``splits``.
    """
    p = as_features(probabilities, "probabilities", min_samples=1)
    if int(splits) != splits or splits < 1 or splits > len(p):
        raise ValueError(
            f"Expected `splits` an integer in [1, num_samples={len(p)}]. Received: `splits={splits}`"
        )
    sums = p.sum(axis=1)
    if np.any(p < 0) or not np.allclose(sums, 1.0, atol=atol):
        raise ValueError(
            "Expected `probabilities` to be softmax probabilities (entries ≥ 0, rows summing to 1); "
            "apply a softmax to logits first. Received: row sums in "
            f"[{sums.min():.4g}, {sums.max():.4g}], minimum entry {p.min():.4g}"
        )
    n, scores = len(p), []
    for i in range(int(splits)):
        part = p[(i * n) // splits:((i + 1) * n) // splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = scipy.special.rel_entr(part, marginal).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return ISResult(mean=float(np.mean(scores)), std=float(np.std(scores)), splits=int(splits), n=n)


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
