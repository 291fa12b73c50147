"""MS-SSIM and the MS-SSIM diversity score against a NumPy reference."""

import numpy as np
import pytest

from mmd_keras.evaluation import ms_ssim


def _ms_ssim_reference(a, b, max_val, weights, size, sigma, k1=0.01, k2=0.03):
    """NumPy MS-SSIM following tf.image.ssim_multiscale's documented algorithm."""
    coords = np.arange(size) - (size - 1) / 2
    g = np.exp(-0.5 * (coords[:, None] ** 2 + coords[None, :] ** 2) / sigma**2)
    g /= g.sum()
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2

    def filt(x):  # VALID Gaussian filter over H, W of [N, H, W, C]
        h, w = x.shape[1] - size + 1, x.shape[2] - size + 1
        out = np.zeros((x.shape[0], h, w, x.shape[3]))
        for i in range(size):
            for j in range(size):
                out += g[i, j] * x[:, i:i + h, j:j + w, :]
        return out

    values = []
    for scale in range(len(weights)):
        if scale:
            pad = [(0, 0), (0, a.shape[1] % 2), (0, a.shape[2] % 2), (0, 0)]
            a, b = (np.pad(x, pad, mode="symmetric") for x in (a, b))
            a, b = (x.reshape(x.shape[0], x.shape[1] // 2, 2, x.shape[2] // 2, 2, x.shape[3]).mean((2, 4))
                    for x in (a, b))
        mu_a, mu_b = filt(a), filt(b)
        luminance = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
        cs = (2 * (filt(a * b) - mu_a * mu_b) + c2) / (filt(a * a + b * b) - mu_a**2 - mu_b**2 + c2)
        term = luminance * cs if scale == len(weights) - 1 else cs
        values.append(np.maximum(term.mean(axis=(1, 2)), 0.0) ** weights[scale])
    return np.prod(values, axis=0).mean(axis=-1)


def test_ms_ssim_equals_numpy_reference_on_small_odd_images(rng):
    a = np.tanh(rng.normal(size=(3, 27, 22, 2)))
    b = np.clip(a + 0.3 * rng.normal(size=a.shape), -1, 1)
    kwargs = dict(max_val=2.0, power_factors=(0.3, 0.3, 0.4), filter_size=5, filter_sigma=1.0)
    ours = ms_ssim.ms_ssim(a, b, **kwargs)
    expected = _ms_ssim_reference(a, b, 2.0, (0.3, 0.3, 0.4), 5, 1.0)
    np.testing.assert_allclose(ours, expected, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(ms_ssim.ms_ssim(a, a, **kwargs), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="power_factors"):
        ms_ssim.ms_ssim(a, b)  # default 5 scales need 176 px
    with pytest.raises(ValueError, match="images_b"):
        ms_ssim.ms_ssim(a, b[:, :20], **kwargs)


def test_ms_ssim_diversity_averages_random_distinct_pairs(rng):
    images = np.tanh(rng.normal(size=(6, 20, 20, 1)))
    kwargs = dict(power_factors=(0.5, 0.5), filter_size=5, filter_sigma=1.0)
    result = ms_ssim.ms_ssim_diversity(images, num_pairs=9, seed=3, batch_size=4, **kwargs)
    pairs = np.random.default_rng(3)
    first = pairs.integers(0, 6, size=9)
    second = (first + pairs.integers(1, 6, size=9)) % 6
    assert np.all(first != second)
    expected = _ms_ssim_reference(images[first], images[second], 2.0, (0.5, 0.5), 5, 1.0)
    np.testing.assert_allclose(result.mean, expected.mean(), rtol=2e-4)
    assert (result.num_pairs, result.seed) == (9, 3)
    copies = ms_ssim.ms_ssim_diversity(np.repeat(images[:1], 4, axis=0), num_pairs=5, **kwargs)
    assert copies.mean == pytest.approx(1.0, abs=1e-5)
