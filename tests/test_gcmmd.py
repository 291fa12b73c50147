"""GCMMD (paper 2, Prop. 3) vs a brute-force NumPy build and solve of the same linear system.

The NumPy side builds K, G, H and ∇η by float64 finite differences of the composed kernel
k(x, y) = K(φ(x), φ(y)) on the inputs, never using the chain rule the library uses.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import kernels
from mmd_keras import losses
from references import close

H = 1e-4


def phi(x, w, c):
    """Toy critic φ(x) = tanh(x Wᵀ + c): [n, d] -> [n, s]."""
    return np.tanh(x @ w.T + c)


def top(a, b, kind):
    return np.exp(-((a - b) ** 2).sum() / 2) if kind == "rbf" else (a * b).sum()


def brute_force_gcmmd2(mu, real, fake, w, c, lam, kind):
    k = lambda x, y: top(phi(x[None], w, c)[0], phi(y[None], w, c)[0], kind)  # noqa: E731
    num, dim = mu.shape
    eye = np.eye(dim) * H

    def d_left(x, y, i):
        return (k(x + eye[i], y) - k(x - eye[i], y)) / (2 * H)

    def d_both(x, y, i, j):
        return (k(x + eye[i], y + eye[j]) - k(x + eye[i], y - eye[j]) - k(x - eye[i], y + eye[j])
                + k(x - eye[i], y - eye[j])) / (4 * H * H)

    kk = np.array([[k(a, b) for b in mu] for a in mu])
    g = np.array([[d_left(a, b, i) for b in mu] for a in mu for i in range(dim)])  # rows (m, i)
    hh = np.array([[d_both(a, b, i, j) for b in mu for j in range(dim)] for a in mu for i in range(dim)])
    eta = lambda x: np.mean([k(x, p) for p in real]) - np.mean([k(x, q) for q in fake])  # noqa: E731
    grad_eta = [(eta(a + eye[i]) - eta(a - eye[i])) / (2 * H) for a in mu for i in range(dim)]
    v = np.concatenate([[eta(a) for a in mu], grad_eta])
    system = np.block([[kk, g.T], [g, hh]]) + num * lam * np.eye(num + num * dim)
    mmd2 = (np.mean([[k(a, b) for b in real] for a in real]) + np.mean([[k(a, b) for b in fake] for a in fake])
            - 2 * np.mean([[k(a, b) for b in fake] for a in real]))
    return (mmd2 - v @ np.linalg.solve(system, v)) / lam, mmd2


def jacobians(x, w, c):
    """Closed-form J = diag(1 − tanh²) W per sample: [n, s, d]."""
    t = phi(x, w, c)
    return (1 - t**2)[:, :, None] * w[None]


@pytest.mark.parametrize("kind,dim", [("rbf", 1), ("dot", 1), ("rbf", 2)])
def test_gcmmd_matches_brute_force_solve(rng, kind, dim):
    s, lam = 2, 0.5
    w, c = rng.normal(size=(s, dim)), rng.normal(size=s) * 0.3
    real = rng.normal(size=(4, dim))
    fake = rng.normal(size=(5, dim)) + 0.8
    expected, mmd2 = brute_force_gcmmd2(real, real, fake, w, c, lam, kind)
    kernel = kernels.get("rbf", sigmas=(1.0,)) if kind == "rbf" else kernels.get("dot")
    got = losses.gcmmd2(phi(real, w, c), jacobians(real, w, c), phi(real, w, c), phi(fake, w, c), kernel, lam)
    close(got, expected, rtol=1e-5, atol=1e-7)
    assert expected < mmd2 / lam  # the constraint term is active, so the test can fail
    if kind == "rbf":  # paper 2: SMMD ≤ GCMMD, σ⁻² = λ + E k(x,x) + E‖J‖²_F (Gaussian, σ = 1)
        jac_sq = (jacobians(real, w, c) ** 2).sum((1, 2)).mean()
        assert mmd2 / (lam + 1 + jac_sq) <= expected + 1e-9


def tanh_keras_critic(w, c):
    """The Keras version of :func:`phi`: Dense(s, tanh) with kernel Wᵀ and bias c."""
    inputs = keras.Input((w.shape[1],))
    dense = keras.layers.Dense(w.shape[0], activation="tanh")
    critic = keras.Model(inputs, dense(inputs))
    dense.kernel.assign(w.T.astype(np.float32))
    dense.bias.assign(c.astype(np.float32))
    return critic


def test_gcmmd_loss_object_with_keras_critic(rng):
    w, c = rng.normal(size=(2, 1)), rng.normal(size=2) * 0.3
    critic = tanh_keras_critic(w, c)
    real, fake = rng.normal(size=(4, 1)), rng.normal(size=(4, 1)) + 1.0
    loss = losses.get("gcmmd", lam=1.0)
    out = loss(critic, tf.constant(real, tf.float32), tf.constant(fake, tf.float32), seed=[0, 0])
    expected, _ = brute_force_gcmmd2(real, real, fake, w, c, 1.0, "rbf")
    close(out.generator_loss, expected, rtol=1e-5, atol=1e-7)
    close(out.critic_loss, -expected, rtol=1e-5, atol=1e-7)
    with tf.GradientTape() as tape:
        value = loss(critic, tf.constant(real, tf.float32), tf.constant(fake, tf.float32), seed=[0, 0]).critic_loss
    assert all(float(tf.norm(g)) > 0 for g in tape.gradient(value, critic.trainable_variables))


def test_gcmmd_loss_under_xla_matches_brute_force(rng):
    """The linear solve and the per-output Jacobian columns compile with ``jit_compile=True``."""
    w, c = rng.normal(size=(2, 2)), rng.normal(size=2) * 0.3
    critic = tanh_keras_critic(w, c)
    real, fake = rng.normal(size=(4, 2)), rng.normal(size=(4, 2)) + 1.0
    loss = losses.get("gcmmd", lam=0.5)

    @tf.function(jit_compile=True)
    def step(real, fake):
        with tf.GradientTape() as tape:
            value = loss(critic, real, fake, seed=tf.constant([0, 0])).critic_loss
        return value, tape.gradient(value, critic.trainable_variables)

    value, grads = step(tf.constant(real, tf.float32), tf.constant(fake, tf.float32))
    expected, _ = brute_force_gcmmd2(real, real, fake, w, c, 0.5, "rbf")
    close(value, -expected, rtol=1e-5, atol=1e-7)
    with tf.GradientTape() as tape:
        eager = loss(critic, tf.constant(real, tf.float32), tf.constant(fake, tf.float32), seed=[0, 0]).critic_loss
    for got, want in zip(grads, tape.gradient(eager, critic.trainable_variables)):
        close(got, want.numpy(), rtol=1e-4, atol=1e-6)


def test_gcmmd_bad_inputs(rng):
    f = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="lam"):
        losses.gcmmd2(f, np.zeros((3, 2, 1), np.float32), f, f, "rbf", lam=0.0)
    with pytest.raises(ValueError, match="mu_jacobians"):
        losses.gcmmd2(f, np.zeros((3, 1, 1), np.float32), f, f, "rbf")
    with pytest.raises(ValueError, match="top kernel"):
        losses.gcmmd2(f, np.zeros((3, 2, 1), np.float32), f, f, "polynomial")
    with pytest.raises(ValueError, match="lam"):
        losses.get("gcmmd", lam=-1.0)
