"""Penalties vs closed forms on linear / tanh critics, written in NumPy float64."""

import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import kernels
from mmd_keras import losses
from mmd_keras.losses import inputs, penalties
from references import close, linear_critic, np_gradient_penalty, np_witness_gradients


@pytest.mark.parametrize("legacy", [False, True])
def test_witness_gradient_penalty_on_linear_critic(rng, legacy):
    b, shape, s, sigma = 5, (3, 2, 2), 2, 1.5
    real = rng.normal(size=(b,) + shape)
    fake = rng.normal(size=(b,) + shape) + 0.3
    w = rng.normal(size=(s, int(np.prod(shape)))) * 0.5
    alpha = rng.uniform(size=b)
    hat = real + alpha[:, None, None, None] * (fake - real)
    g = np_witness_gradients(w, real, fake, hat, sigma)
    if legacy:  # paper 1's code: sqrt(Σ g² + 1e-5) over axis 1 (height) only
        norms = np.sqrt((g.reshape((b,) + shape) ** 2).sum(1) + 1e-5)
    else:
        norms = np.linalg.norm(g, axis=1)
    expected = ((norms - 1) ** 2).mean()
    got = losses.witness_gradient_penalty(
        linear_critic(w), tf.constant(real, tf.float32), tf.constant(fake, tf.float32),
        kernels.get("rbf", sigmas=(sigma,)), tf.constant(alpha, tf.float32), legacy_gp_axis=legacy)
    close(got, expected)


def test_wgan_gradient_penalty_on_linear_critic(rng):
    w = rng.normal(size=(1, 12)) * 0.2
    real, fake = rng.normal(size=(4, 2, 3, 2)), rng.normal(size=(4, 2, 3, 2))
    got = losses.wgan_gradient_penalty(linear_critic(w), real.astype(np.float32), fake.astype(np.float32),
                                       rng.uniform(size=4).astype(np.float32))
    close(got, (np.linalg.norm(w) - 1) ** 2)


def test_interpolate_matches_numpy(rng):
    real, fake, alpha = rng.normal(size=(3, 2, 2, 1)), rng.normal(size=(3, 2, 2, 1)), rng.uniform(size=3)
    close(losses.interpolate(real.astype(np.float32), fake.astype(np.float32), alpha.astype(np.float32)),
          real + alpha[:, None, None, None] * (fake - real))


def test_jacobian_squared_norms_linear_and_tanh(rng):
    s, d = 3, 8
    w = rng.normal(size=(s, d))
    x = rng.normal(size=(4, 2, 2, 2))
    feats, norms = losses.jacobian_squared_norms(linear_critic(w), tf.constant(x, tf.float32))
    close(norms, np.full(4, (w**2).sum()))
    close(feats, x.reshape(4, -1) @ w.T)
    # tanh critic: J(x) = diag(1 − tanh²(Wx)) W, ‖J‖²_F = Σ_k (1 − t_k²)² ‖W_k‖²
    critic = lambda t: tf.tanh(linear_critic(w)(t))  # noqa: E731
    _, norms = losses.jacobian_squared_norms(critic, tf.constant(x, tf.float32))
    t = np.tanh(x.reshape(4, -1) @ w.T)
    close(norms, ((1 - t**2) ** 2 * (w**2).sum(1)).sum(1))


def test_l2_activation_penalty_matches_numpy(rng):
    acts = [rng.normal(size=(4, 3, 3, 2)), rng.normal(size=(4, 5)), rng.normal(size=(4, 1))]
    expected = sum((a.reshape(4, -1) ** 2).mean(1).mean() for a in acts)
    close(losses.l2_activation_penalty([tf.constant(a, tf.float32) for a in acts]), expected)


def test_penalty_bad_inputs():
    x = np.zeros((4, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match="fake_images"):
        losses.interpolate(x, np.zeros((4, 3, 2, 1), np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="alpha"):
        losses.interpolate(x, x, np.zeros((4, 1), np.float32))
    with pytest.raises(ValueError, match="real_images"):
        losses.interpolate(np.zeros((4,), np.float32), x, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="activations"):
        losses.l2_activation_penalty([])
    with pytest.raises(ValueError, match="1-d critic output"):
        losses.wgan_gradient_penalty(linear_critic(np.ones((2, 4))), x, x, np.zeros(4, np.float32))
    assert inputs.scalar_output(tf.zeros([3, 1])).shape == (3,)


def test_gradient_penalty_gradient_is_finite_when_an_input_gradient_is_zero():
    # ReLU critic: the second sample sits where every unit is dead, so its input
    # gradient is exactly 0; tf.norm there has a NaN gradient (0·inf).

    w = tf.Variable([[1.0], [1.0]])
    x = tf.constant([[1.0, 2.0], [-1.0, -2.0]])
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            out = tf.reduce_sum(tf.nn.relu(tf.matmul(x, w)))
        g = inner.gradient(out, x)
        penalty = penalties.gradient_penalty_from_gradients(g)
    grad = outer.gradient(penalty, w).numpy()
    # Sample 1: g = wᵀ (norm √2), sample 2: g = 0 → penalty ((√2−1)² + 1)/2; its w-gradient
    # comes from sample 1 only: (√2 − 1)·w/‖w‖.
    np.testing.assert_allclose(penalty.numpy(), ((2**0.5 - 1) ** 2 + 1) / 2, rtol=1e-6)
    np.testing.assert_allclose(grad[:, 0], (2**0.5 - 1) / 2**0.5 * np.ones(2), rtol=1e-5)


# ---- issue 14 item 2: legacy_gp_axis is paper 1's code exactly ----------------------------------
def test_legacy_gradient_norm_is_sqrt_of_height_sum_plus_1e_5(rng):
    # Small gradients, where sqrt(Σg² + 1e-5) and sqrt(Σg²) differ most.
    g = rng.normal(size=(3, 4, 2, 2)) * 1e-3
    got = penalties.gradient_penalty_from_gradients(tf.constant(g, tf.float32), legacy_gp_axis=True)
    close(got, np_gradient_penalty(g, legacy_axis=True, epsilon=1e-5))
    plain = penalties.gradient_penalty_from_gradients(tf.constant(g, tf.float32), legacy_gp_axis=True,
                                                      legacy_epsilon=0.0)
    close(plain, np_gradient_penalty(g, legacy_axis=True, epsilon=0.0))
    assert abs(float(got) - float(plain)) > 1e-3


def _alpha(seed, b):
    from mmd_keras import rng as rng_lib

    return rng_lib.uniform01([b], tf.constant(seed, tf.int32)).numpy().astype(np.float64)


def test_legacy_gp_axis_through_the_losses_mmd_with_epsilon_wgan_gp_without(rng):
    import keras

    shape, b = (3, 2, 2), 4
    real, fake = rng.normal(size=(b,) + shape), rng.normal(size=(b,) + shape) + 0.5
    hat = real + _alpha([2, 3], b)[:, None, None, None] * (fake - real)
    inputs_ = keras.Input(shape)
    dense = keras.layers.Dense(1, use_bias=False)
    critic = keras.Model(inputs_, dense(keras.layers.Flatten()(inputs_)))
    w = rng.normal(size=(1, 12)) * 1e-2
    dense.kernel.assign(w.T.astype(np.float32))
    args = (critic, tf.constant(real, tf.float32), tf.constant(fake, tf.float32))
    # MMD (witness GP, Gaussian σ = 1 on h = Wx): paper 1's safer_norm, 1e-5 under the sqrt.
    mmd = losses.get("mmd", kernel=kernels.get("rbf", sigmas=(1.0,)), legacy_gp_axis=True)
    g = np_witness_gradients(w, real, fake, hat, 1.0).reshape((b,) + shape)
    close(mmd(*args, seed=[2, 3], mode="critic").metrics["gradient_penalty"],
          np_gradient_penalty(g, legacy_axis=True, epsilon=1e-5), rtol=1e-5)
    # WGAN-GP: ∇f = W everywhere; its official code takes a plain sqrt.
    wgan = losses.get("wgan_gp", legacy_gp_axis=True)
    g = np.broadcast_to(w.reshape(shape), (b,) + shape)
    close(wgan(*args, seed=[2, 3], mode="critic").metrics["gradient_penalty"],
          np_gradient_penalty(g, legacy_axis=True, epsilon=0.0), rtol=1e-5)
    assert losses.get("cramer").legacy_gp_epsilon == 1e-5
