"""FID, Inception Score and MS-SSIM against pytorch-fid's formulas and NumPy references."""

import numpy as np
import pytest
import scipy.linalg

from mmd_keras.evaluation import metrics


def _pytorch_fid_calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """Transcription of pytorch-fid's ``calculate_frechet_distance``."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("Imaginary component")
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def _fid_by_eigenvalues(a, b):
    """Independent reference: Tr((Σ_aΣ_b)^½) = Σ √eig(Σ_a^½ Σ_b Σ_a^½) via symmetric eigh."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eig = np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)
    return np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * np.sum(np.sqrt(eig))


def test_fid_equals_pytorch_fid_formula_and_eigenvalue_reference(rng):
    a = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(0.5, 1.0, size=(150, 6)) @ rng.normal(size=(6, 6))
    result = metrics.frechet_distance(a, b)
    expected = _pytorch_fid_calculate_frechet_distance(
        a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    np.testing.assert_allclose(result.value, expected, rtol=1e-10)
    np.testing.assert_allclose(result.value, _fid_by_eigenvalues(a, b), rtol=1e-8)
    assert (result.n_a, result.n_b) == (200, 150)


def test_fid_hand_value_nonnegative_and_singular_covariances(rng):
    # 1-D Gaussians: (µ_a − µ_b)² + (σ_a − σ_b)² = 4 + 1.
    assert metrics.frechet_distance_from_statistics([0.0], [[1.0]], [2.0], [[4.0]]) == pytest.approx(5.0)
    same = [metrics.frechet_distance(rng.normal(size=(50, 4)), rng.normal(size=(50, 4))).value for _ in range(5)]
    assert min(same) >= 0.0
    # Fewer samples than dimensions: rank-deficient covariances still give a finite value ≈ reference.
    a, b = rng.normal(size=(8, 12)), rng.normal(size=(8, 12))
    value = metrics.frechet_distance(a, b).value
    assert np.isfinite(value) and value >= -1e-6
    np.testing.assert_allclose(value, _fid_by_eigenvalues(a, b), rtol=1e-3)
    with pytest.raises(ValueError, match="features_b"):
        metrics.frechet_distance(a, b[:, :5])


def test_fid_of_singular_covariance_product_is_silent_and_matches_float64_reference(rng):
    # Dead feature units (constant columns, as ReLU extractors give) make Σ_aΣ_b exactly
    # singular: SciPy's sqrtm then warns `LinAlgWarning: Matrix is singular`, which must not
    # reach the user, while its root is exact and must be kept (no eps shift of the value).
    import warnings

    cases = [(rng.normal(size=(60, 12)), rng.normal(0.3, 1.0, size=(60, 12)))]
    cases.append((rng.normal(size=(10, 16)), rng.normal(size=(10, 16))))  # n < d as well
    for a, b in cases:
        a[:, :3], b[:, :3] = 0.0, 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            value = metrics.frechet_distance(a, b).value
        # Round-off of the ~1e-16 eigenvalues is amplified by their square roots (~1e-8 each);
        # the eps shift would move the value by ~1e-5.
        np.testing.assert_allclose(value, _fid_by_eigenvalues(a, b), rtol=1e-7)
    # A product with no square root at all (a Jordan block at 0) takes the eps fallback,
    # silently: (S_a + εI)(I + εI) = (1 + ε)[[ε, 1], [0, ε]] has the root trace 2√(ε(1 + ε)).
    eps = 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = metrics.frechet_distance_from_statistics(
            [0.0, 0.0], [[0.0, 1.0], [0.0, 0.0]], [0.0, 0.0], np.eye(2), eps=eps)
    assert value == pytest.approx(2.0 - 4.0 * np.sqrt(eps * (1.0 + eps)), rel=1e-9)


def _inception_score_reference(p, splits):
    """The original code's loop (Salimans et al.) with 0·log 0 = 0."""
    scores = []
    n = len(p)
    for k in range(splits):
        part = p[k * n // splits:(k + 1) * n // splits]
        py = part.mean(axis=0)
        kl = [np.sum([q * (np.log(q) - np.log(py[j])) for j, q in enumerate(row) if q > 0]) for row in part]
        scores.append(np.exp(np.mean(kl)))
    return np.mean(scores), np.std(scores)


def test_inception_score_reference_and_hand_values(rng):
    logits = rng.normal(size=(53, 7)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    result = metrics.inception_score(p, splits=4)
    np.testing.assert_allclose([result.mean, result.std], _inception_score_reference(p, 4), rtol=1e-10)
    assert (result.splits, result.n) == (4, 53)
    constant = metrics.inception_score(np.tile(p[:1], (40, 1)), splits=4)
    assert constant.mean == pytest.approx(1.0) and constant.std == pytest.approx(0.0, abs=1e-12)
    one_hot = np.tile(np.eye(7), (4, 1))  # each of the 4 splits holds every class once
    assert metrics.inception_score(one_hot, splits=4).mean == pytest.approx(7.0)


def test_inception_score_rejects_logits_and_too_many_splits(rng):
    with pytest.raises(ValueError, match="softmax"):
        metrics.inception_score(rng.normal(size=(20, 5)), splits=2)
    with pytest.raises(ValueError, match="splits"):
        metrics.inception_score(np.full((5, 4), 0.25), splits=10)


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
    ours = metrics.ms_ssim(a, b, **kwargs)
    expected = _ms_ssim_reference(a, b, 2.0, (0.3, 0.3, 0.4), 5, 1.0)
    np.testing.assert_allclose(ours, expected, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(metrics.ms_ssim(a, a, **kwargs), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="power_factors"):
        metrics.ms_ssim(a, b)  # default 5 scales need 176 px
    with pytest.raises(ValueError, match="images_b"):
        metrics.ms_ssim(a, b[:, :20], **kwargs)


def test_ms_ssim_diversity_averages_random_distinct_pairs(rng):
    images = np.tanh(rng.normal(size=(6, 20, 20, 1)))
    kwargs = dict(power_factors=(0.5, 0.5), filter_size=5, filter_sigma=1.0)
    result = metrics.ms_ssim_diversity(images, num_pairs=9, seed=3, batch_size=4, **kwargs)
    pairs = np.random.default_rng(3)
    first = pairs.integers(0, 6, size=9)
    second = (first + pairs.integers(1, 6, size=9)) % 6
    assert np.all(first != second)
    expected = _ms_ssim_reference(images[first], images[second], 2.0, (0.5, 0.5), 5, 1.0)
    np.testing.assert_allclose(result.mean, expected.mean(), rtol=2e-4)
    assert (result.num_pairs, result.seed) == (9, 3)
    copies = metrics.ms_ssim_diversity(np.repeat(images[:1], 4, axis=0), num_pairs=5, **kwargs)
    assert copies.mean == pytest.approx(1.0, abs=1e-5)
