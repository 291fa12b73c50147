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
