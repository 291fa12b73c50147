"""KID and its variance against loop references, torch-fidelity's draws and Monte Carlo."""

import numpy as np
import pytest

from mmd_keras import kernels
from mmd_keras.evaluation import kid
from mmd_keras.losses import estimators


def _torch_fidelity_kid(features_1, features_2, subsets, subset_size, seed):
    """Transcription of torch-fidelity's ``kid_features_to_metric`` / ``mmd2`` (degree 3, coef0 1)."""

    def kernel(f1, f2):
        gamma = 1.0 / f1.shape[1]
        return (f1 @ f2.T * gamma + 1.0) ** 3

    def mmd2(f1, f2):
        k_11, k_22, k_12 = kernel(f1, f1), kernel(f2, f2), kernel(f1, f2)
        m = f1.shape[0]
        kt_xx_sum = (k_11.sum(axis=-1) - np.diag(k_11)).sum()
        kt_yy_sum = (k_22.sum(axis=-1) - np.diag(k_22)).sum()
        k_xy_sum = k_12.sum(axis=0).sum()
        value = (kt_xx_sum + kt_yy_sum) / (m * (m - 1))
        value -= 2 * k_xy_sum / (m**2)
        return value

    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        f1 = features_1[rng.choice(len(features_1), subset_size, replace=False)]
        f2 = features_2[rng.choice(len(features_2), subset_size, replace=False)]
        mmds[i] = mmd2(f1, f2)
    return float(np.mean(mmds)), float(np.std(mmds))


def _mmd2_unbiased_loops(x, y):
    """Unbiased MMD² with explicit i ≠ j masks, any m, n."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b.T / d + 1) ** 3

    m, n = len(x), len(y)
    off_m, off_n = ~np.eye(m, dtype=bool), ~np.eye(n, dtype=bool)
    return k(x, x)[off_m].mean() + k(y, y)[off_n].mean() - 2 * k(x, y).mean()


def test_kid_estimator_equals_library_polynomial_mmd2(rng):
    x, y = rng.normal(size=(30, 7)), rng.normal(0.3, 1.2, size=(25, 7))
    ours = kid.polynomial_mmd2_unbiased(x, y)
    library = estimators.mmd2(x.astype(np.float32), y.astype(np.float32), kernels.get("polynomial"), "unbiased")
    np.testing.assert_allclose(ours, float(library), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours, _mmd2_unbiased_loops(x, y), rtol=1e-12)


def test_kid_subsets_equal_torch_fidelity_formula_and_draws(rng):
    a, b = rng.normal(size=(60, 5)), rng.normal(0.2, 1.0, size=(45, 5))
    result = kid.kernel_inception_distance(a, b, num_subsets=7, subset_size=20, seed=11)
    mean, std = _torch_fidelity_kid(a, b, 7, 20, 11)
    np.testing.assert_allclose([result.mean, result.std], [mean, std], rtol=1e-12)
    assert (result.num_subsets, result.subset_size, result.n_a, result.n_b, result.seed) == (7, 20, 60, 45, 11)
    assert result.method == "subsets"


def test_kid_float32_precision_matches_float64_on_inception_like_features(rng):
    """precision="float32" (paper 1's code's precision) draws the same subsets and agrees to
    ~1e-6 relative on non-negative, wide features like Inception's pool3."""
    a = np.abs(rng.normal(size=(300, 256))).astype(np.float32)
    b = (np.abs(rng.normal(size=(300, 256))) * 1.05).astype(np.float32)
    exact = kid.kernel_inception_distance(a, b, num_subsets=5, subset_size=100, seed=3)
    fast = kid.kernel_inception_distance(a, b, num_subsets=5, subset_size=100, seed=3, precision="float32")
    mean, _ = _torch_fidelity_kid(a.astype(np.float64), b.astype(np.float64), 5, 100, 3)
    np.testing.assert_allclose(exact.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(fast.mean, exact.mean, rtol=1e-4)
    assert fast.mean != exact.mean  # really computed in float32


def test_kid_without_seed_reports_a_reproducing_seed(rng):
    a, b = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    first = kid.kernel_inception_distance(a, b, num_subsets=3, subset_size=10)
    again = kid.kernel_inception_distance(a, b, num_subsets=3, subset_size=10, seed=first.seed)
    assert first == again


def test_kid_blocks_unequal_counts_use_each_block_size(rng):
    a, b = rng.normal(size=(90, 6)), rng.normal(0.5, 1.0, size=(50, 6))
    result = kid.kernel_inception_distance(a, b, method="blocks", max_block_size=40)
    # ceil(90 / 40) = 3 blocks: a rows [0,30,60,90], b rows [0,16,33,50].
    values = [_mmd2_unbiased_loops(a[s:e], b[u:v]) for (s, e), (u, v) in
              zip([(0, 30), (30, 60), (60, 90)], [(0, 16), (16, 33), (33, 50)])]
    np.testing.assert_allclose(result.mean, np.mean(values), rtol=1e-12)
    np.testing.assert_allclose(result.stderr, np.std(values, ddof=1) / np.sqrt(3), rtol=1e-12)
    assert (result.num_subsets, result.subset_size, result.method, result.seed) == (3, 30, "blocks", None)


def test_kid_is_zero_in_expectation_for_one_distribution_and_positive_otherwise(rng):
    a, b = rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8))
    same = kid.kernel_inception_distance(a, b, method="blocks", max_block_size=300)
    assert same.num_subsets == 10
    assert abs(same.mean) < 3 * same.stderr
    shifted = kid.kernel_inception_distance(a, b + 0.3, method="blocks", max_block_size=300)
    assert shifted.mean > 10 * shifted.stderr


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(features_a=np.zeros((10, 3)), features_b=np.zeros((10, 4))), "features_a"),
        (dict(features_a=np.zeros((1, 3)), features_b=np.zeros((10, 3))), "features_a"),
        (dict(features_a=np.zeros((10, 3)), features_b=np.zeros(10)), "features_b"),
        (dict(features_a=np.zeros((10, 3)), features_b=np.zeros((10, 3)), subset_size=11), "subset_size"),
        (dict(features_a=np.zeros((10, 3)), features_b=np.zeros((10, 3)), method="all"), "method"),
        (dict(features_a=np.zeros((10, 3)), features_b=np.full((10, 3), np.nan)), "features_b"),
        (dict(features_a=np.zeros((10, 3)), features_b=np.zeros((10, 3)), precision="float16"), "precision"),
    ],
)
def test_kid_rejects_bad_input_naming_the_argument(kwargs, match):
    kwargs.setdefault("subset_size", 5)
    with pytest.raises(ValueError, match=match):
        kid.kernel_inception_distance(**kwargs)


def _variance_by_quadruples(k_xx, k_xy, k_yy):
    """T² minus the mean of h_ij·h_kl over every ordered all-distinct (i, j, k, l), by loops."""
    m = len(k_xx)
    h = k_xx + k_yy - k_xy - k_xy.T
    products = [h[i, j] * h[k, l] for i in range(m) for j in range(m) for k in range(m)
                for l in range(m) if len({i, j, k, l}) == 4]
    return _mmd2_unbiased_loops_from_kernels(k_xx, k_xy, k_yy) ** 2 - np.mean(products)


def _mmd2_unbiased_loops_from_kernels(k_xx, k_xy, k_yy):
    m = len(k_xx)
    off = ~np.eye(m, dtype=bool)
    return k_xx[off].mean() + k_yy[off].mean() - 2 * k_xy.mean()


def test_mmd2_variance_equals_the_all_distinct_quadruple_definition(rng):
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 0.5
    k = [kid.polynomial_kernel(a, b) for a, b in ((x, x), (x, y), (y, y))]
    np.testing.assert_allclose(kid.mmd2_variance(*k), _variance_by_quadruples(*k), rtol=1e-10)
    mmd2, variance = kid.polynomial_mmd2_and_variance(x, y)
    np.testing.assert_allclose(mmd2, _mmd2_unbiased_loops(x, y), rtol=1e-12)
    np.testing.assert_allclose(variance, kid.mmd2_variance(*k), rtol=1e-12)


def _monte_carlo(m, draws, seed):
    """MMD² estimates and both variance estimates over ``draws`` fresh samples of m pairs."""
    rng = np.random.default_rng(seed)
    values, unbiased, official = [], [], []
    for _ in range(draws):
        x = rng.normal(size=(m, 3))
        y = 1.2 * rng.normal(size=(m, 3)) + 0.3
        k = [kid.polynomial_kernel(a, b) for a, b in ((x, x), (x, y), (y, y))]
        values.append(kid.polynomial_mmd2_unbiased(x, y))
        unbiased.append(kid.mmd2_variance(*k))
        official.append(kid.mmd2_variance(*k, estimator="official"))
    return np.array(values), np.array(unbiased), np.array(official)


def _sample_variance_and_its_stderr(values):
    n = len(values)
    variance = values.var(ddof=1)
    fourth = np.mean((values - values.mean()) ** 4)
    return variance, np.sqrt((fourth - variance ** 2 * (n - 3) / (n - 1)) / n)


def test_mmd2_variance_matches_the_monte_carlo_variance_of_the_estimator():
    # 20,000 draws of m = 10 pairs (MMD² > 0). Both the Monte Carlo variance and the mean of the
    # estimates carry sampling error (about 2.5 % each here, estimated from the draws' fourth
    # moment and spread); 4 combined standard errors (a 6e-5 false-alarm rate for a normal
    # difference, larger than the true one since the two are positively correlated) bound an
    # exactly unbiased estimator. The official ζ form is 38 % low at this m (O(1/m) bias):
    # 0.62 of the Monte Carlo value, far outside the same bound, so the test tells them apart.
    values, unbiased, official = _monte_carlo(m=10, draws=20_000, seed=0)
    mc, mc_stderr = _sample_variance_and_its_stderr(values)
    stderr = np.hypot(mc_stderr, unbiased.std(ddof=1) / np.sqrt(len(unbiased)))
    assert abs(unbiased.mean() - mc) < 4 * stderr, (unbiased.mean(), mc, stderr)
    assert official.mean() < mc - 4 * stderr, (official.mean(), mc)


def test_official_variance_bias_vanishes_like_one_over_m():
    # The official estimator's relative bias measured ≈ 4.3 / m (−38 % at m = 10, −15 % at 30,
    # −4 % at 100). At m = 100 with 3,000 draws the Monte Carlo variance has ≈ 3 % error: the
    # official mean must be within 4 % bias + 4 × 3 % = 16 % of it, and the unbiased one within
    # 4 × 3 % = 12 %.
    values, unbiased, official = _monte_carlo(m=100, draws=3_000, seed=1)
    mc, mc_stderr = _sample_variance_and_its_stderr(values)
    relative = 4 * mc_stderr / mc
    assert abs(unbiased.mean() / mc - 1) < relative
    assert abs(official.mean() / mc - 1) < relative + 0.04


def test_kid_reports_the_mean_variance_of_its_subsets(rng):
    a, b = rng.normal(size=(40, 5)), rng.normal(size=(50, 5)) + 0.2
    result = kid.kernel_inception_distance(a, b, num_subsets=3, subset_size=20, seed=7)
    draws = np.random.RandomState(7)
    expected = []
    for _ in range(3):
        x, y = a[draws.choice(40, 20, replace=False)], b[draws.choice(50, 20, replace=False)]
        expected.append(kid.polynomial_mmd2_and_variance(x, y)[1])
    np.testing.assert_allclose(result.variance, np.mean(expected), rtol=1e-12)
    assert result.variance_estimator == "unbiased"
    official = kid.kernel_inception_distance(a, b, num_subsets=3, subset_size=20, seed=7,
                                                 variance_estimator="official")
    assert official.mean == result.mean and official.variance != result.variance
    blocks = kid.kernel_inception_distance(a, b, method="blocks", max_block_size=25)
    assert np.isnan(blocks.variance)  # blocks of 20 and 25 rows: the formula needs equal sizes
    with pytest.raises(ValueError, match="variance_estimator"):
        kid.kernel_inception_distance(a, b, subset_size=20, variance_estimator="exact")
