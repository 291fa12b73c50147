"""Penalties vs closed forms on linear / tanh critics, written in NumPy float64."""

import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import kernels
from mmd_keras import losses
from mmd_keras.losses import penalties

RTOL = 1e-5


def close(actual, expected, rtol=RTOL, atol=1e-7):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol)


def linear_critic(w):
    """h(x) = W·vec(x) for images [b, H, W, C]; W is [s, D]."""
    w_tf = tf.constant(w, tf.float32)
    return lambda images: tf.matmul(tf.reshape(images, [tf.shape(images)[0], -1]), w_tf, transpose_b=True)


def np_witness_gradients(w, real, fake, hat, sigma):
    """∇_x̂ w(x̂) for h = Wx and a Gaussian kernel: Wᵀ mean_j[−(a−b_j)/σ² k(a,b_j)] (±)."""
    flat = lambda t: t.reshape(len(t), -1)  # noqa: E731
    a, hr, hf = flat(hat) @ w.T, flat(real) @ w.T, flat(fake) @ w.T

    def grad_a(b):
        diff = a[:, None, :] - b[None, :, :]
        k = np.exp(-(diff**2).sum(-1) / (2 * sigma**2))
        return (-diff / sigma**2 * k[..., None]).mean(1)

    return (grad_a(hr) - grad_a(hf)) @ w  # [b, D]


@pytest.mark.parametrize("legacy", [False, True])
def test_witness_gradient_penalty_on_linear_critic(rng, legacy):
    b, shape, s, sigma = 5, (3, 2, 2), 2, 1.5
    real = rng.normal(size=(b,) + shape)
    fake = rng.normal(size=(b,) + shape) + 0.3
    w = rng.normal(size=(s, int(np.prod(shape)))) * 0.5
    alpha = rng.uniform(size=b)
    hat = real + alpha[:, None, None, None] * (fake - real)
    g = np_witness_gradients(w, real, fake, hat, sigma)
    if legacy:  # paper 1's code: norm over axis 1 (height) only
        norms = np.sqrt((g.reshape((b,) + shape) ** 2).sum(1))
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


def test_clip_gradients_per_tensor(rng):
    grads = [rng.normal(size=(3, 4)) * 5, rng.normal(size=(2,)) * 0.01, None]
    clipped = losses.clip_gradients_per_tensor([None if g is None else tf.constant(g, tf.float32) for g in grads])
    close(clipped[0], grads[0] / np.linalg.norm(grads[0]))
    close(clipped[1], grads[1])
    assert clipped[2] is None
    with pytest.raises(ValueError, match="clip_norm"):
        losses.clip_gradients_per_tensor([], clip_norm=0)


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
    assert penalties.scalar_output(tf.zeros([3, 1])).shape == (3,)


def np_uniform_from_seed(seed, num):
    """NumPy uint32 reference of the counter-based hash."""
    def mix(x):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        return x ^ (x >> np.uint32(16))

    with np.errstate(over="ignore"):
        s = np.asarray(seed, np.int32).view(np.uint32)
        x = mix(np.arange(num, dtype=np.uint32) + mix(s[0] + np.uint32(0x9E3779B9)))
        x = mix(x ^ mix(s[1] + np.uint32(0x85EBCA6B)))
    return ((x >> np.uint32(8)).astype(np.float32) + np.float32(0.5)) * np.float32(2.0**-24)  # as in float32


def test_uniform_from_seed_matches_numpy_and_xla():
    for seed in ([0, 0], [4, 5], [-3, 2**31 - 1]):
        got = penalties.uniform_from_seed(tf.constant(seed, tf.int32), 7)
        close(got, np_uniform_from_seed(seed, 7), rtol=0, atol=0)
    compiled = tf.function(penalties.uniform_from_seed, jit_compile=True)(tf.constant([4, 5]), 7)
    close(compiled, np_uniform_from_seed([4, 5], 7), rtol=0, atol=0)
    u = np_uniform_from_seed([1, 2], 20000)
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005 and 0 < u.min() and u.max() < 1
    assert not np.allclose(np_uniform_from_seed([1, 2], 7), np_uniform_from_seed([2, 1], 7))


def test_gradient_penalty_gradient_is_finite_when_an_input_gradient_is_zero():
    # ReLU critic: the second sample sits where every unit is dead, so its input
    # gradient is exactly 0; tf.norm there has a NaN gradient (0·inf).
    from mmd_keras.losses import penalties

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
