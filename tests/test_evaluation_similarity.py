"""Relative-similarity test: paper 1 §4.1 variance formulas, Monte-Carlo variance, p-value calibration."""

import numpy as np
import pytest
import scipy.stats

from mmd_keras.evaluation import similarity


def _k(a, b):
    return (a @ b.T / a.shape[1] + 1) ** 3


def _reference_test(x, y, z):
    """The variance of paper 1's code written out from the kernel matrices (paper 1, §4.1)."""
    m = float(len(x))
    k_xy, k_xz, k_yy, k_zz = _k(x, y), _k(x, z), _k(y, y), _k(z, z)
    np.fill_diagonal(k_yy, 0.0)
    np.fill_diagonal(k_zz, 0.0)
    mu_yy, mu_zz = k_yy.sum() / (m * (m - 1)), k_zz.sum() / (m * (m - 1))
    mu_xy, mu_xz = k_xy.mean(), k_xz.mean()

    def terms(k_cc, k_xc):
        rows, cols = k_xc.sum(1), k_xc.sum(0)  # per x (over c), per c (over x)
        return dict(
            e_c_mu_c_sq=(np.sum(k_cc.sum(1) ** 2) - np.sum(k_cc**2)) / (m * (m - 1) * (m - 2)),
            e_x_mu_c_sq=(rows @ rows - np.sum(k_xc**2)) / (m * m * (m - 1)),
            e_c_mu_x_sq=(cols @ cols - np.sum(k_xc**2)) / (m * m * (m - 1)),
            e_c_mu_c_mu_x=(k_cc.sum(1) @ cols) / (m * m * (m - 1)),
            e_kcc2=np.sum(k_cc**2) / (m * (m - 1)),
            e_kxc2=np.sum(k_xc**2) / (m * m),
        )

    ty, tz = terms(k_yy, k_xy), terms(k_zz, k_xz)
    e_x_mu_y_mu_z = k_xy.sum(1) @ k_xz.sum(1) / m**3
    first = 4 * (m - 2) / (m * (m - 1)) * (
        ty["e_c_mu_c_sq"] - mu_yy**2 + ty["e_x_mu_c_sq"] - mu_xy**2 + ty["e_c_mu_x_sq"] - mu_xy**2
        + tz["e_c_mu_c_sq"] - mu_zz**2 + tz["e_x_mu_c_sq"] - mu_xz**2 + tz["e_c_mu_x_sq"] - mu_xz**2
        - 2 * (ty["e_c_mu_c_mu_x"] - mu_yy * mu_xy) - 2 * (e_x_mu_y_mu_z - mu_xy * mu_xz)
        - 2 * (tz["e_c_mu_c_mu_x"] - mu_zz * mu_xz))
    second = 2 / (m * (m - 1)) * (
        ty["e_kcc2"] - mu_yy**2 + 2 * (ty["e_kxc2"] - mu_xy**2) + tz["e_kcc2"] - mu_zz**2
        + 2 * (tz["e_kxc2"] - mu_xz**2) - 4 * (ty["e_c_mu_c_mu_x"] - mu_yy * mu_xy)
        - 4 * (e_x_mu_y_mu_z - mu_xy * mu_xz) - 4 * (tz["e_c_mu_c_mu_x"] - mu_zz * mu_xz))
    return mu_yy - 2 * mu_xy - mu_zz + 2 * mu_xz, first + second


def _mmd2_u(x, y):
    k_xx, k_yy = _k(x, x), _k(y, y)
    m, n = len(x), len(y)
    return ((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
            - 2 * _k(x, y).mean())


def _test(x, y, z):
    return similarity.relative_similarity_test(similarity.candidate_sums(x, y), similarity.candidate_sums(x, z))


def test_diff_and_variance_equal_reference_formulas(rng):
    x, y, z = rng.normal(size=(25, 4)), rng.normal(0.2, 1, (25, 4)), rng.normal(0.4, 1.1, (25, 4))
    result = _test(x, y, z)
    diff, variance = _reference_test(x, y, z)
    np.testing.assert_allclose(result.diff, _mmd2_u(x, y) - _mmd2_u(x, z), rtol=1e-10)
    np.testing.assert_allclose([result.diff, result.variance], [diff, variance], rtol=1e-10)
    t = diff / np.sqrt(max(variance, 1e-5))
    np.testing.assert_allclose([result.statistic, result.p_value], [t, scipy.stats.norm.cdf(t)], rtol=1e-10)


def test_variance_estimate_matches_monte_carlo_variance(rng):
    # The estimate is consistent, not unbiased: at m = 30 it runs ~15 % low, at m = 100 it is
    # within Monte-Carlo noise. Bounded features keep that noise small (heavy tails inflate it).
    diffs, variances = [], []
    for _ in range(500):
        x, y, z = rng.uniform(-1, 1, (100, 8)), rng.uniform(-1, 1.2, (100, 8)), rng.uniform(-1, 1.4, (100, 8))
        result = _test(x, y, z)
        diffs.append(result.diff)
        variances.append(result.variance)
    ratio = np.mean(variances) / np.var(diffs, ddof=1)
    assert 0.85 < ratio < 1.15, ratio


def test_p_values_are_roughly_uniform_under_the_null(rng):
    p_values = np.array([_test(*rng.uniform(-1, 1, (3, 100, 8))).p_value for _ in range(300)])
    assert 0.44 < p_values.mean() < 0.56
    assert 0.05 < np.mean(p_values <= 0.1) < 0.17
    assert scipy.stats.kstest(p_values, "uniform").pvalue > 1e-3


def test_p_value_small_when_new_is_clearly_better(rng):
    x, y, z = rng.normal(size=(60, 4)), rng.normal(size=(60, 4)), rng.normal(0.8, 1, (60, 4))
    assert _test(x, y, z).p_value < 1e-3
    assert _test(x, z, y).p_value > 1 - 1e-3


def test_sums_round_trip_through_a_vector_and_bad_input(rng):
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    sums = similarity.candidate_sums(x, y)
    back = similarity.CandidateSums.from_vector(sums.to_vector())
    for field in ("kt_yy_sums", "k_xy_col_sums", "k_xy_row_sums", "kt_yy_2_sum", "k_xy_2_sum"):
        np.testing.assert_array_equal(getattr(back, field), getattr(sums, field))
    with pytest.raises(ValueError, match="fake_features"):
        similarity.candidate_sums(x, y[:5])
    with pytest.raises(ValueError, match="fake_features"):
        similarity.candidate_sums(x, rng.normal(size=(6, 3)))
    with pytest.raises(ValueError, match="real_features"):
        similarity.candidate_sums(x[:2], y[:2])
    with pytest.raises(ValueError, match="old"):
        similarity.relative_similarity_test(sums, similarity.candidate_sums(x[:5], y[:5]))
