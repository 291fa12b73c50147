"""Gradient-Constrained MMD (paper 2, Arbel et al. 2018, §3.2, Proposition 3): pure functions and
the GANLoss class.

Exact linear-system form, for small problems (toys, tiny images): the system has size
M + M·d for M samples of µ in input dimension d.

Conventions: the kernel on inputs is k(x, x′) = K(φ(x), φ(x′)) with φ the critic
(features [·, s]) and K a top kernel on features; x = real, y = fake; µ = the empirical
distribution of M real samples X_m (paper 2 uses µ = P), with Jacobians J_m = ∂φ(X_m)/∂X_m
of shape [s, d]. With η = mean_x k(x, ·) − mean_y k(y, ·):

    GCMMD² = (MMD² − P̄(η)) / λ,   P̄(η) = vᵀ ([[K, Gᵀ], [G, H]] + MλI)⁻¹ v,
    v = [η(X); ∇η(X)],  K_{m,m′} = k(X_m, X_m′),  G_{(m,i),m′} = ∂_i k(X_m, X_m′),
    H_{(m,i),(m′,j)} = ∂_i ∂_{j+d} k(X_m, X_m′),

where (m, i) indexes row m·d + i. By the chain rule G = Jᵀ ∂_aK and H = Jᵀ ∂_a∂_bK J, so
only derivatives of the top kernel are needed. Top kernels: distance-based ones
(K = f(‖a − b‖²): rbf, rq; then ∂_aK = 2f′(a − b), ∂_a∂_bᵀK = −2f′I − 4f″(a − b)(a − b)ᵀ)
and ``dot`` (∂_aK = b, ∂_a∂_bᵀK = I).

MMD² = ‖η̂‖² is the **biased** (V-statistic) estimate when η is the empirical η̂, which
is what Prop. 3 uses; other estimators are allowed. Paper 2's code reused the real
gradient term for the fake one (a bug not reproduced here).
"""

import keras
import tensorflow as tf

from mmd_keras import catalog
from mmd_keras import kernels as kernels_lib
from mmd_keras.losses import estimators
from mmd_keras.losses.mmd_family import KernelLoss


def _kernel(kernel):
    return kernels_lib.get(kernel) if isinstance(kernel, (str, dict)) else kernel


def top_kernel_derivatives(kernel, a, b):
    """Top-kernel values and derivatives for all pairs.

    Args:
      kernel: rbf, rq (distance-based) or dot kernel object.
      a: [n, s]; b: [m, s] float32 features.

    Returns:
      (k [n, m], d1 [n, m, s] = ∂K(a_i, b_j)/∂a_i, d2 [n, m, s, s] = ∂²K/∂a_i∂b_jᵀ).
    """
    a = tf.cast(a, tf.float32)
    b = tf.cast(b, tf.float32)
    s = tf.shape(a)[1]
    if isinstance(kernel, kernels_lib.Dot):
        n, m = tf.shape(a)[0], tf.shape(b)[0]
        k = tf.matmul(a, b, transpose_b=True)
        d1 = tf.broadcast_to(b[tf.newaxis], [n, m, s])
        d2 = tf.broadcast_to(tf.eye(s), [n, m, s, s])
        return k, d1, d2
    if not getattr(kernel, "is_distance_based", False):
        raise ValueError(
            "Expected a top kernel for GCMMD that is distance-based (rbf, rq) or `dot`. "
            f"Received: `kernel={kernel!r}`"
        )
    d2sq = kernels_lib.squared_distances(a, b)
    with tf.GradientTape() as outer:
        outer.watch(d2sq)
        with tf.GradientTape() as inner:
            inner.watch(d2sq)
            k = kernel.from_squared_distances(d2sq)
        f1 = inner.gradient(k, d2sq)  # elementwise f′ (the function is elementwise)
    f2 = outer.gradient(f1, d2sq)  # elementwise f″
    diff = a[:, tf.newaxis, :] - b[tf.newaxis, :, :]  # [n, m, s]
    d1 = 2.0 * f1[..., tf.newaxis] * diff
    d2 = -2.0 * f1[..., tf.newaxis, tf.newaxis] * tf.eye(s) - 4.0 * f2[..., tf.newaxis, tf.newaxis] * (
        diff[..., :, tf.newaxis] * diff[..., tf.newaxis, :]
    )
    return k, d1, d2


def gcmmd_system(mu_features, mu_jacobians, real_features, fake_features, kernel, estimator="biased"):
    """The pieces of Proposition 3 (before adding MλI).

    Args:
      mu_features: [M, s] features φ(X_m) of the µ samples.
      mu_jacobians: [M, s, d] Jacobians ∂φ(X_m)/∂X_m (inputs flattened to d).
      real_features: [m, s]; fake_features: [n, s] (for η and MMD²).
      kernel: top kernel. estimator: MMD² estimator (default "biased").

    Returns:
      (matrix [M + Md, M + Md] = [[K, Gᵀ], [G, H]], v [M + Md], mmd2 scalar).
    """
    kernel = _kernel(kernel)
    real, fake = estimators.validate_features(real_features, fake_features, estimator)
    mu = tf.cast(mu_features, tf.float32)
    jac = tf.cast(mu_jacobians, tf.float32)
    if mu.shape.rank != 2:
        raise ValueError(f"Expected `mu_features` of shape [M, s]. Received: `mu_features.shape={mu.shape}`")
    if jac.shape.rank != 3 or (jac.shape[:2].is_fully_defined() and mu.shape.is_fully_defined()
                               and jac.shape[:2] != mu.shape):
        raise ValueError(
            "Expected `mu_jacobians` of shape [M, s, d] matching `mu_features` [M, s]. "
            f"Received: `mu_jacobians.shape={jac.shape}`, `mu_features.shape={mu.shape}`"
        )
    num, dim = tf.shape(jac)[0], tf.shape(jac)[2]
    k_mm, d1_mm, d2_mm = top_kernel_derivatives(kernel, mu, mu)
    g = tf.einsum("aki,abk->aib", jac, d1_mm)  # [M, d, M]: ∂_i k(X_a, X_b)
    h = tf.einsum("aki,abkl,blj->aibj", jac, d2_mm, jac)  # [M, d, M, d]
    g = tf.reshape(g, [num * dim, num])
    h = tf.reshape(h, [num * dim, num * dim])
    matrix = tf.concat([tf.concat([k_mm, tf.transpose(g)], axis=1), tf.concat([g, h], axis=1)], axis=0)
    k_p, d1_p, _ = top_kernel_derivatives(kernel, mu, real)
    k_q, d1_q, _ = top_kernel_derivatives(kernel, mu, fake)
    eta = tf.reduce_mean(k_p, axis=1) - tf.reduce_mean(k_q, axis=1)  # [M]
    grad_eta = tf.einsum("aki,ak->ai", jac, tf.reduce_mean(d1_p, axis=1) - tf.reduce_mean(d1_q, axis=1))
    v = tf.concat([eta, tf.reshape(grad_eta, [-1])], axis=0)
    mmd2 = estimators.mmd2_from_matrices(*estimators.kernel_matrices(real, fake, kernel), estimator)
    return matrix, v, mmd2


def gcmmd2(mu_features, mu_jacobians, real_features, fake_features, kernel="rbf", lam=1.0, estimator="biased"):
    """Squared Gradient-Constrained MMD (paper 2, Prop. 3); see the module doc.

    Args:
      mu_features: [M, s]; mu_jacobians: [M, s, d]; real_features: [m, s];
      fake_features: [n, s]; kernel: top kernel; lam: λ > 0; estimator: for MMD².

    Returns:
      Scalar float32 GCMMD² (the critic maximizes it, the generator minimizes it).
    """
    if not float(lam) > 0:
        raise ValueError(f"Expected `lam` > 0. Received: `lam={lam!r}`")
    matrix, v, mmd2 = gcmmd_system(mu_features, mu_jacobians, real_features, fake_features, kernel, estimator)
    num = tf.cast(tf.shape(mu_features)[0], tf.float32)
    size = tf.shape(matrix)[0]
    system = matrix + num * float(lam) * tf.eye(size)
    penalty = tf.reduce_sum(v * tf.linalg.solve(system, v[:, tf.newaxis])[:, 0])
    return (mmd2 - penalty) / float(lam)


@keras.saving.register_keras_serializable(package="mmd_keras")
class GCMMDLoss(KernelLoss):
    """Gradient-Constrained MMD (paper 2, Prop. 3), µ = the real batch; small scale only.

    Args:
      lam: λ > 0 of the Sobolev-norm regularizer.
      kernel: top kernel (rbf or dot; default rbf σ = 1). estimator: default "biased"
        (the empirical η̂ gives the V-statistic; paper 2's code also defaulted to it).
    """

    name = "gcmmd"
    parameters = catalog.LOSSES["gcmmd"]
    jacobian = "full"
    default_estimator = "biased"

    def __init__(self, lam=1.0, **kwargs):
        if kwargs.get("legacy_constant_diagonal"):
            raise ValueError("Expected `legacy_constant_diagonal=False` for loss 'gcmmd' (its MMD² has no "
                             "legacy form). Received: `legacy_constant_diagonal=True`")
        super().__init__(**kwargs)
        self.lam = float(lam)
        if self.lam <= 0:
            raise ValueError(f"Expected `lam` > 0. Received: `lam={lam!r}`")

    def get_config(self):
        config = {**super().get_config(), "lam": self.lam}
        del config["legacy_constant_diagonal"]
        return config

    def _loss_terms(self, p, mode):
        value = gcmmd2(p.real_local, p.real_jacobian, p.real, p.fakes[0], self.kernel, self.lam, self.estimator)
        return -value, value, {"gcmmd2": value}, {}
