"""MMD-family pure loss functions (mmd_keras.losses.mmd_family) vs NumPy float64 references."""

import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import kernels
from mmd_keras import losses
from references import close, np_bounded_matrices, np_expectations, np_mmd2, np_rbf, np_rbf_from_d2, np_sqdist

def features(rng, m=6, n=6, d=3, scale=1.0):
    return rng.normal(size=(m, d)) * scale, rng.normal(size=(n, d)) * scale + 0.5


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
    """Paper 3, Eq. 5 (docs/numerics.md, Losses): L_D,λ = λ·E k(x,x′) − (λ−1)·E k(x,y) − E k(y,y′)."""
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
    with pytest.raises(ValueError, match="kernel"):
        losses.mmd_generator_loss(x, x, "gaussian")
