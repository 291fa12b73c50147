"""Pure loss functions vs NumPy float64 references written here (mmd_losses, baselines)."""

import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import kernels
from mmd_keras import losses

RTOL = 1e-5


# ---- NumPy references ---------------------------------------------------------------------
def np_sqdist(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def np_rbf_from_d2(d2, sigmas=(1.0,)):
    return sum(np.exp(-d2 / (2 * s * s)) for s in sigmas)


def np_rbf(a, b, sigmas=(1.0,)):
    return np_rbf_from_d2(np_sqdist(a, b), sigmas)


def np_expectations(k_xx, k_xy, k_yy, estimator):
    m, n = len(k_xx), len(k_yy)
    if estimator == "biased":
        return k_xx.mean(), k_xy.mean(), k_yy.mean()
    e_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    e_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    e_xy = k_xy.mean() if estimator == "unbiased" else (k_xy.sum() - np.trace(k_xy)) / (m * (m - 1))
    return e_xx, e_xy, e_yy


def np_mmd2(x, y, estimator, sigmas=(1.0,)):
    e_xx, e_xy, e_yy = np_expectations(np_rbf(x, x, sigmas), np_rbf(x, y, sigmas), np_rbf(y, y, sigmas), estimator)
    return e_xx + e_yy - 2 * e_xy


def features(rng, m=6, n=6, d=3, scale=1.0):
    return rng.normal(size=(m, d)) * scale, rng.normal(size=(n, d)) * scale + 0.5


def close(actual, expected, rtol=RTOL, atol=1e-7):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol)


# ---- MMD family ---------------------------------------------------------------------------
@pytest.mark.parametrize("estimator", ["unbiased", "u_statistic", "biased"])
def test_mmd_critic_and_generator_losses_match_numpy(rng, estimator):
    x, y = features(rng)
    kernel = kernels.get("rbf", sigmas=(1.0, 2.0))
    expected = np_mmd2(x, y, estimator, (1.0, 2.0))
    close(losses.mmd_generator_loss(x, y, kernel, estimator), expected)
    close(losses.mmd_critic_loss(x, y, kernel, estimator), -expected)


@pytest.mark.parametrize("psi,theta", [(1.0, 0.5), (2.0, 1.0), (0.3, -2.0)])
def test_dirac_gan_example_1_closed_form(psi, theta):
    """Paper 2, Example 1: MMD²_kψ(δ0, δθ) = 2(1 − exp(−ψ²θ²/2)) with k = Gaussian on ψx."""
    expected = 2 * (1 - np.exp(-(psi**2) * theta**2 / 2))
    real = np.zeros((3, 1)) * psi
    fake = np.full((3, 1), theta) * psi
    kernel = kernels.get("rbf", sigmas=(1.0,))
    for estimator in ("unbiased", "biased", "u_statistic"):
        close(losses.mmd_generator_loss(real, fake, kernel, estimator), expected)
    close(losses.mmd2(real[:1], fake[:1], kernel, "biased"), expected)


@pytest.mark.parametrize("lam", [-1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("estimator", ["unbiased", "u_statistic"])
def test_repulsive_critic_loss_equals_reference_formula(rng, lam, estimator):
    """REFERENCE §3: L_D,λ = λ·E k(x,x′) − (λ−1)·E k(x,y) − E k(y,y′)."""
    x, y = features(rng)
    e_xx, e_xy, e_yy = np_expectations(np_rbf(x, x), np_rbf(x, y), np_rbf(y, y), estimator)
    expected = lam * e_xx - (lam - 1) * e_xy - e_yy
    close(losses.repulsive_critic_loss(x, y, kernels.get("rbf", sigmas=(1.0,)), lam, estimator), expected)
    if lam == -1.0:  # attractive special case
        close(expected, -np_mmd2(x, y, estimator))
    if lam == 1.0:
        close(expected, e_xx - e_yy)
    close(losses.repulsive_generator_loss(x, y, kernels.get("rbf", sigmas=(1.0,)), estimator),
          np_mmd2(x, y, estimator))


def np_bounded_matrices(x, y, lower, upper, form):
    d_xx, d_xy, d_yy = np_sqdist(x, x), np_sqdist(x, y), np_sqdist(y, y)
    if form == "attractive":  # paper 3, Eq. 6
        d_xx, d_yy, d_xy = np.maximum(d_xx, lower), np.maximum(d_yy, lower), np.minimum(d_xy, upper)
    else:  # Eq. 7
        d_yy, d_xx = np.maximum(d_yy, lower), np.minimum(d_xx, upper)
    return np_rbf_from_d2(d_xx), np_rbf_from_d2(d_xy), np_rbf_from_d2(d_yy)


@pytest.mark.parametrize("lam", [-1.0, -0.5, 0.0, 1.0, 2.0])
def test_rbf_b_clamps_only_the_paper_blocks(rng, lam):
    # spread features so some distances fall below b_l and some above b_u in every block
    x, y = features(rng, m=8, n=8, d=2, scale=1.3)
    y[1] = y[0] + 0.1  # a close fake pair (< b_l)
    x[1] = x[0] + 0.1  # a close real pair (< b_l)
    form = "attractive" if lam < 0 else "repulsive"
    lower, upper = 0.25, 4.0
    k = np_bounded_matrices(x, y, lower, upper, form)
    e_xx, e_xy, e_yy = np_expectations(*k, "unbiased")
    expected = lam * e_xx - (lam - 1) * e_xy - e_yy
    kernel = kernels.get("rbf", sigmas=(1.0,))
    got = losses.repulsive_critic_loss(x, y, kernel, lam, "unbiased", bounds=(lower, upper))
    close(got, expected)
    # the test can fail: clamping every block both ways gives a different value
    d = [np.clip(np_sqdist(a, b), lower, upper) for a, b in ((x, x), (x, y), (y, y))]
    e_all = np_expectations(*(np_rbf_from_d2(t) for t in d), "unbiased")
    wrong = lam * e_all[0] - (lam - 1) * e_all[1] - e_all[2]
    assert abs(wrong - expected) > 1e-3
    for got_block, want_block in zip(losses.bounded_kernel_matrices(x, y, kernel, lower, upper, form), k):
        close(got_block, want_block)


def test_rbf_b_generator_loss_is_unbounded(rng):
    x, y = features(rng, scale=2.0)
    loss = losses.get("rep_b")
    assert loss.bounded and loss.lam == 1.0
    out = loss(lambda t: t, tf.constant(x, tf.float32), tf.constant(y, tf.float32), seed=[0, 0])
    close(out.generator_loss, np_mmd2(x, y, "unbiased"))
    k = np_bounded_matrices(x, y, 0.25, 4.0, "repulsive")
    e_xx, _, e_yy = np_expectations(*k, "unbiased")
    close(out.critic_loss, e_xx - e_yy)
    out_att = losses.get("mmd_rbf_b")(lambda t: t, tf.constant(x, tf.float32), tf.constant(y, tf.float32),
                                       seed=[0, 0])
    close(out_att.generator_loss, np_mmd2(x, y, "unbiased"))
    e = np_expectations(*np_bounded_matrices(x, y, 0.25, 4.0, "attractive"), "unbiased")
    close(out_att.critic_loss, -(e[0] + e[2] - 2 * e[1]))


def test_smmd_swgan_rep_gp_match_numpy(rng):
    x, y = features(rng, d=1)
    jac = 0.7
    kernel = kernels.get("rbf", sigmas=(1.0,))
    mmd2 = np_mmd2(x, y, "unbiased")
    close(losses.smmd(x, y, jac, kernel, coefficient=10.0), mmd2 / (1 + 10 * jac))
    close(losses.smmd(x, y, jac, kernel, coefficient=3.0, offset=2.0), mmd2 / (2 + 3 * jac))
    # linear top kernel: E‖h‖² joins the scale (paper 2, Prop. 4), MMD² = unbiased dot MMD
    kxx, kxy, kyy = x @ x.T, x @ y.T, y @ y.T
    e = np_expectations(kxx, kxy, kyy, "unbiased")
    close(losses.smmd(x, y, jac, "dot"), (e[0] + e[2] - 2 * e[1]) / (1 + 10 * (np.mean(x[:, 0] ** 2) + jac)))
    expected_swgan = (x.mean() - y.mean()) / np.sqrt(1 + 10 * (np.mean(x**2) + jac))
    close(losses.swgan(x, y, jac), expected_swgan)
    close(losses.swgan(x[:, 0], y[:, 0], jac, coefficient=2.0), (x.mean() - y.mean()) / np.sqrt(1 + 2 * (np.mean(x**2) + jac)))
    e = np_expectations(np_rbf(x, x), np_rbf(x, y), np_rbf(y, y), "unbiased")
    close(losses.rep_gp_critic_loss(x, y, jac, kernel, 0.1), (e[0] - e[2] - 1) / (1 + 0.1 * jac))


# ---- baselines -----------------------------------------------------------------------------
def test_wgan_hinge_non_saturating_match_numpy(rng):
    fx, fy = rng.normal(size=(7, 1)), rng.normal(size=(7, 1))
    close(losses.wgan_critic_loss(fx, fy), fy.mean() - fx.mean())
    close(losses.wgan_generator_loss(fy), -fy.mean())
    close(losses.hinge_critic_loss(fx, fy), np.maximum(0, 1 - fx).mean() + np.maximum(0, 1 + fy).mean())
    close(losses.hinge_generator_loss(fy[:, 0]), -fy.mean())
    softplus = lambda t: np.log1p(np.exp(t))  # noqa: E731
    close(losses.non_saturating_critic_loss(fx, fy), softplus(-fx).mean() + softplus(fy).mean())
    close(losses.non_saturating_generator_loss(fy), -np.log(1 / (1 + np.exp(-fy))).mean())


def test_cramer_matches_numpy(rng):
    hx, hy, hy2 = (rng.normal(size=(5, 4)) for _ in range(3))
    norm = lambda t: np.sqrt((t**2).sum(1) + 1e-5)  # noqa: E731
    f = lambda h: norm(h - hy2) - norm(h)  # noqa: E731
    close(losses.cramer_critic_loss(hx, hy, hy2), -(f(hx).mean() - f(hy).mean()))
    close(losses.cramer_generator_loss(hx, hy, hy2), (norm(hx - hy) + norm(hx - hy2) - norm(hy - hy2)).mean())


def test_sobolev_augmented_lagrangian_matches_numpy(rng):
    fx, fy = rng.normal(size=(6,)), rng.normal(size=(6,))
    gx, gy = rng.uniform(0, 2, size=6), rng.uniform(0, 2, size=6)
    lam_l, rho = 0.3, 0.5
    omega = 0.5 * gx.mean() + 0.5 * gy.mean()
    ipm = fx.mean() - fy.mean()
    loss, new = losses.sobolev_critic_loss(fx, fy, gx, gy, lam_l, rho)
    close(loss, -(ipm + lam_l * (1 - omega) - rho / 2 * (omega - 1) ** 2))
    close(new, lam_l - rho * (1 - omega))
    close(losses.sobolev_generator_loss(fx, fy), ipm)


# ---- errors --------------------------------------------------------------------------------
def test_bad_inputs_raise_value_errors_naming_the_argument():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="real_features"):
        losses.mmd_critic_loss(np.zeros((4,)), x)
    with pytest.raises(ValueError, match="feature width"):
        losses.repulsive_critic_loss(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="estimator"):
        losses.mmd_generator_loss(x, x, "rbf", estimator="nope")
    with pytest.raises(ValueError, match="u_statistic"):
        losses.repulsive_critic_loss(x, np.zeros((5, 3)), estimator="u_statistic")
    with pytest.raises(ValueError, match="distance-based"):
        losses.repulsive_critic_loss(x, x, "dot", bounds=(0.25, 4.0))
    with pytest.raises(ValueError, match="lower_bound"):
        losses.bounded_kernel_matrices(x, x, "rbf", 5.0, 4.0)
    with pytest.raises(ValueError, match="form"):
        losses.bounded_kernel_matrices(x, x, "rbf", form="sideways")
    with pytest.raises(ValueError, match="1-d critic output"):
        losses.wgan_critic_loss(x, x)
    with pytest.raises(ValueError, match="fake_features_2"):
        losses.cramer_critic_loss(x, x, np.zeros((4,)))
    with pytest.raises(ValueError, match="kernel"):
        losses.mmd_generator_loss(x, x, "gaussian")
