"""NumPy float64 references shared by the loss and kernel tests (written independently of the library).

Conventions as in the library: ``x`` real, ``y`` fake; kernel matrices k_xx, k_xy, k_yy.
"""

import numpy as np
import tensorflow as tf

RTOL = 1e-5


def close(actual, expected, rtol=RTOL, atol=1e-7):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol)


# ---- kernels --------------------------------------------------------------------------------
def np_sqdist(a, b):
    """‖a_i − b_j‖² by broadcasting (no matmul identity), [n, m]."""
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def np_rbf_from_d2(d2, sigmas=(1.0,), weights=None):
    weights = (1.0,) * len(sigmas) if weights is None else weights
    return sum(w * np.exp(-d2 / (2 * s * s)) for s, w in zip(sigmas, weights))


def np_rbf(a, b, sigmas=(1.0,), weights=None):
    return np_rbf_from_d2(np_sqdist(a, b), sigmas, weights)


def np_rq(a, b, alphas, weights=None):
    weights = (1.0,) * len(alphas) if weights is None else weights
    d2 = np_sqdist(a, b)
    return sum(w * (1 + d2 / (2 * al)) ** (-al) for al, w in zip(alphas, weights))


def np_distance(a, b, beta=1.0, eps=0.0, scale=1.0):
    """(s/2)(ρ(a,0) + ρ(b,0) − ρ(a,b)), ρ = (‖·‖² + eps)^(β/2) (paper 1, Eq. 8 for s = 1)."""
    rho = lambda d2: (d2 + eps) ** (beta / 2)  # noqa: E731
    return 0.5 * scale * (rho((a**2).sum(1))[:, None] + rho((b**2).sum(1))[None, :] - rho(np_sqdist(a, b)))


def np_poly(a, b, degree, gamma, coef0):
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    return (gamma * a @ b.T + coef0) ** degree


# ---- estimators -----------------------------------------------------------------------------
def np_expectations(k_xx, k_xy, k_yy, estimator, diagonal=None):
    """(E k(x,x′), E k(x,y), E k(y,y′)); ``diagonal`` replaces the traces (legacy constant)."""
    m, n = len(k_xx), len(k_yy)
    if estimator == "biased":
        return k_xx.mean(), k_xy.mean(), k_yy.mean()
    trace_xx = np.trace(k_xx) if diagonal is None else m * diagonal
    trace_yy = np.trace(k_yy) if diagonal is None else n * diagonal
    e_xx = (k_xx.sum() - trace_xx) / (m * (m - 1))
    e_yy = (k_yy.sum() - trace_yy) / (n * (n - 1))
    e_xy = k_xy.mean() if estimator == "unbiased" else (k_xy.sum() - np.trace(k_xy)) / (m * (m - 1))
    return e_xx, e_xy, e_yy


def np_mmd2(x, y, estimator="unbiased", sigmas=(1.0,), kernel=None):
    """MMD² with a Gaussian mixture of ``sigmas``, or with ``kernel(a, b) -> [n, m]`` when given."""
    k = kernel or (lambda a, b: np_rbf(a, b, sigmas))
    e_xx, e_xy, e_yy = np_expectations(k(x, x), k(x, y), k(y, y), estimator)
    return e_xx + e_yy - 2 * e_xy


def np_bounded_matrices(x, y, lower, upper, form):
    """RBF-B (σ = 1) matrices: paper 3, Eq. 6 (attractive) or Eq. 7 (repulsive)."""
    d_xx, d_xy, d_yy = np_sqdist(x, x), np_sqdist(x, y), np_sqdist(y, y)
    if form == "attractive":
        d_xx, d_yy, d_xy = np.maximum(d_xx, lower), np.maximum(d_yy, lower), np.minimum(d_xy, upper)
    else:
        d_yy, d_xx = np.maximum(d_yy, lower), np.minimum(d_xx, upper)
    return np_rbf_from_d2(d_xx), np_rbf_from_d2(d_xy), np_rbf_from_d2(d_yy)


# ---- critics and penalties ------------------------------------------------------------------
def linear_critic(w):
    """h(x) = W·vec(x) for images [b, ...]; W is [s, D] (a plain TF callable)."""
    w_tf = tf.constant(w, tf.float32)
    return lambda images: tf.matmul(tf.reshape(images, [tf.shape(images)[0], -1]), w_tf, transpose_b=True)


def np_witness_gradients(w, real, fake, hat, sigma):
    """∇_x̂ w(x̂) for h = Wx and a Gaussian kernel: Wᵀ mean_j[−(a−b_j)/σ² k(a,b_j)] (±), [b, D]."""
    flat = lambda t: t.reshape(len(t), -1)  # noqa: E731
    a, hr, hf = flat(hat) @ w.T, flat(real) @ w.T, flat(fake) @ w.T

    def grad_a(b):
        diff = a[:, None, :] - b[None, :, :]
        k = np.exp(-(diff**2).sum(-1) / (2 * sigma**2))
        return (-diff / sigma**2 * k[..., None]).mean(1)

    return (grad_a(hr) - grad_a(hf)) @ w


def np_gradient_penalty(gradients, legacy_axis=False, epsilon=0.0):
    """E(‖g‖ − 1)²: norm over all entries, or sqrt(Σ_axis1 g² + epsilon) (paper 1's code)."""
    g = np.asarray(gradients, np.float64)
    if legacy_axis:
        norms = np.sqrt((g**2).sum(axis=1) + epsilon)
    else:
        norms = np.sqrt((g.reshape(len(g), -1) ** 2).sum(1))
    return ((norms - 1) ** 2).mean()
