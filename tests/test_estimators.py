"""MMD² estimators (mmd_keras.losses.estimators) vs float64 NumPy references and closed forms."""

import math

import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import kernels
from mmd_keras.losses.estimators import expectations, mmd2, mmd2_from_matrices
from references import np_mmd2


def np_gauss(a, b, sigma=1.0):
    return np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * sigma**2))


@pytest.mark.parametrize("estimator", ["unbiased", "u_statistic", "biased"])
@pytest.mark.parametrize("m,n,d", [(2, 2, 1), (6, 6, 3), (9, 5, 8)])
def test_estimators_match_numpy(estimator, m, n, d, rng):
    if estimator == "u_statistic" and m != n:
        pytest.skip("u_statistic needs m = n")
    x = rng.normal(size=(m, d))
    y = rng.normal(size=(n, d)) + 0.5
    got = mmd2(x.astype(np.float32), y.astype(np.float32), kernels.RBF(sigmas=[1.0, 2.0]), estimator)
    ref = np_mmd2(x, y, estimator, kernel=lambda a, b: np_gauss(a, b, 1.0) + np_gauss(a, b, 2.0))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_true_diagonal_removed_for_rq_dot_and_legacy_constant(rng):
    x = (rng.normal(size=(5, 3)) * 2).astype(np.float32)
    y = rng.normal(size=(5, 3)).astype(np.float32)
    kernel = kernels.get("rq_dot", alphas=[1.0], linear_coefficient=1.0)
    k = lambda a, b: (1 + ((a[:, None] - b[None]) ** 2).sum(-1) / 2) ** -1 + a @ b.T  # noqa: E731
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    np.testing.assert_allclose(
        mmd2(x, y, kernel).numpy(), np_mmd2(x64, y64, "unbiased", kernel=k), rtol=1e-5, atol=1e-6
    )
    # Paper 1's code: subtract Σweights (= 1 here) per diagonal entry instead of 1 + ‖x‖².
    kxx, kxy, kyy = k(x64, x64), k(x64, y64), k(y64, y64)
    legacy = (kxx.sum() - 5) / 20 + (kyy.sum() - 5) / 20 - 2 * kxy.mean()
    got = mmd2(x, y, kernel, legacy_constant_diagonal=True).numpy()
    np.testing.assert_allclose(got, legacy, rtol=1e-5)
    assert abs(got - mmd2(x, y, kernel).numpy()) > 0.1  # the defect is visible


def test_dirac_gan_closed_form():
    # Paper 2, Example 1: MMD²_kψ(δ0, δθ) = 2(1 − exp(−ψ²θ²/2)) with a Gaussian kernel
    # on the linear critic output ψx; with point masses the biased estimator is exact.
    for psi, theta in [(1.0, 0.5), (2.0, 1.3), (0.3, -4.0)]:
        real = np.zeros((4, 1), np.float32)
        fake = np.full((4, 1), psi * theta, np.float32)
        got = mmd2(real, fake, kernels.RBF(sigmas=[1.0]), estimator="biased").numpy()
        np.testing.assert_allclose(got, 2 * (1 - math.exp(-(psi**2) * theta**2 / 2)), rtol=1e-6)


def test_unbiased_is_centred_and_biased_is_not():
    rng = np.random.default_rng(7)
    kernel = kernels.RBF(sigmas=[1.0])
    draws = rng.normal(size=(400, 2, 8, 2)).astype(np.float32)
    fn = tf.function(lambda x, y: (mmd2(x, y, kernel), mmd2(x, y, kernel, "biased")))
    values = np.array([[v.numpy() for v in fn(a, b)] for a, b in draws])
    unbiased, biased = values[:, 0], values[:, 1]
    stderr = unbiased.std() / math.sqrt(len(unbiased))
    assert abs(unbiased.mean()) < 3 * stderr
    assert biased.mean() > 10 * biased.std() / math.sqrt(len(biased))
    assert (biased > 0).all()


def test_expectations_are_the_three_terms(rng):
    x = rng.normal(size=(4, 2)).astype(np.float32)
    y = rng.normal(size=(4, 2)).astype(np.float32)
    kernel = kernels.Dot()
    kxx, kxy, kyy = kernel(x, x), kernel(x, y), kernel(y, y)
    e_xx, e_xy, e_yy = expectations(kxx, kxy, kyy, "u_statistic")
    g = x.astype(np.float64) @ y.T.astype(np.float64)
    np.testing.assert_allclose(e_xy.numpy(), (g.sum() - np.trace(g)) / 12, rtol=1e-5)
    np.testing.assert_allclose(
        mmd2_from_matrices(kxx, kxy, kyy, "u_statistic").numpy(),
        (e_xx + e_yy - 2 * e_xy).numpy(),
        rtol=1e-6,
    )


def test_runs_under_tf_function_and_xla(rng):
    x = rng.normal(size=(6, 3)).astype(np.float32)
    y = rng.normal(size=(6, 3)).astype(np.float32)
    kernel = kernels.get("rq_dot")
    eager = mmd2(x, y, kernel, "u_statistic").numpy()
    xla = tf.function(lambda a, b: mmd2(a, b, kernel, "u_statistic"), jit_compile=True)(x, y)
    np.testing.assert_allclose(xla.numpy(), eager, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        ((np.zeros((3,)), np.zeros((3, 2)), "rbf"), {}, "real_features"),
        ((np.zeros((3, 2)), np.zeros((3, 4)), "rbf"), {}, "feature width"),
        ((np.zeros((1, 2)), np.zeros((3, 2)), "rbf"), {}, "at least 2"),
        ((np.zeros((3, 2)), np.zeros((4, 2)), "rbf"), {"estimator": "u_statistic"}, "u_statistic"),
        ((np.zeros((3, 2)), np.zeros((3, 2)), "rbf"), {"estimator": "plugin"}, "estimator"),
        ((np.zeros((3, 2)), np.zeros((3, 2)), "energy"), {}, "kernel"),
        ((np.zeros((3, 2)), np.zeros((3, 2)), "dot"), {"legacy_constant_diagonal": True}, "constant"),
    ],
)
def test_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mmd2(*args, **kwargs)
