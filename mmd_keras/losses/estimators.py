"""MMD² estimators over kernel matrices (docs/numerics.md, "Estimators").

Conventions: ``x`` / ``real_features`` [m, d] are critic features of data samples,
``y`` / ``fake_features`` [n, d] of generator samples; ``k_xx`` [m, m], ``k_xy``
[m, n], ``k_yy`` [n, n]. All math is float32.

Estimators:

* ``"unbiased"`` (papers 1–2, KID): within-group sums drop the diagonal,
  Σ_{i≠j} k(x_i,x_j)/(m(m−1)) + Σ_{i≠j} k(y_i,y_j)/(n(n−1)) − 2 Σ_{i,j} k(x_i,y_j)/(mn).
* ``"u_statistic"`` (paper 3, App. B, and its code): as unbiased, and the cross term also drops
  i = j and divides by m(m−1); needs m = n.
* ``"biased"``: every term averaged over all pairs including the diagonal (the
  V-statistic; MMD² of the empirical distributions).

The diagonal removed is the **true** diagonal of the kernel matrix. Paper 1's code
subtracted a per-kernel constant instead, which is wrong for rq* (its diagonal is
Σw + c‖x‖²); ``legacy_constant_diagonal=True`` reproduces that code.
"""

import tensorflow as tf

from mmd_keras import kernels as kernels_lib

ESTIMATORS = ("unbiased", "u_statistic", "biased")


def check_estimator(estimator):
    """ValueError unless ``estimator`` is one of ``ESTIMATORS``."""
    if estimator not in ESTIMATORS:
        raise ValueError(
            f"Expected `estimator` to be one of {list(ESTIMATORS)}. "
            f"Received: `estimator={estimator!r}`"
        )


def validate_features(real_features, fake_features, estimator="unbiased"):
    """Checks ranks, widths and batch sizes; returns both as float32 tensors.

    Raises:
      ValueError: rank ≠ 2, different feature widths, fewer than 2 samples for the
        unbiased estimators, or m ≠ n for ``u_statistic`` (static shapes only).
    """
    check_estimator(estimator)
    tensors = []
    for name, t in (("real_features", real_features), ("fake_features", fake_features)):
        t = tf.convert_to_tensor(t)
        if t.shape.rank != 2:
            raise ValueError(
                f"Expected `{name}` of rank 2 with shape [batch, features]. "
                f"Received: `{name}.shape={t.shape}`"
            )
        if estimator != "biased" and t.shape[0] is not None and t.shape[0] < 2:
            raise ValueError(
                f"Expected `{name}` with at least 2 samples for the {estimator!r} "
                f"estimator. Received: `{name}.shape={t.shape}`"
            )
        tensors.append(tf.cast(t, tf.float32))
    real, fake = tensors
    if real.shape[1] is not None and fake.shape[1] is not None and real.shape[1] != fake.shape[1]:
        raise ValueError(
            "Expected `real_features` and `fake_features` with the same feature width. "
            f"Received: `real_features.shape={real.shape}`, `fake_features.shape={fake.shape}`"
        )
    if estimator == "u_statistic" and None not in (real.shape[0], fake.shape[0]):
        if real.shape[0] != fake.shape[0]:
            raise ValueError(
                "Expected equal batch sizes for `estimator='u_statistic'`. Received: "
                f"`real_features.shape={real.shape}`, `fake_features.shape={fake.shape}`"
            )
    return real, fake


def kernel_matrices(real_features, fake_features, kernel):
    """The three kernel matrices.

    Args:
      real_features: [m, d].
      fake_features: [n, d].
      kernel: a kernel name, :class:`mmd_keras.kernels.Kernel` or callable
        ``k(x[n,d], y[m,d]) -> [n,m]``.

    Returns:
      (k_xx [m, m], k_xy [m, n], k_yy [n, n]) float32.
    """
    kernel = kernels_lib.get(kernel) if isinstance(kernel, (str, dict)) else kernel
    return (
        kernel(real_features, real_features),
        kernel(real_features, fake_features),
        kernel(fake_features, fake_features),
    )


def _count(matrix, axis):
    return tf.cast(tf.shape(matrix)[axis], tf.float32)


def _mean_off_diagonal(matrix, diagonal=None):
    """Σ_{i≠j} K_ij / (m(m−1)) for a square [m, m] matrix."""
    if diagonal is None:
        diagonal = tf.linalg.diag_part(matrix)
    m = _count(matrix, 0)
    return (tf.reduce_sum(matrix) - tf.reduce_sum(diagonal)) / (m * (m - 1.0))


def expectations(k_xx, k_xy, k_yy, estimator="unbiased", diag_x=None, diag_y=None):
    """The three averaged kernel terms every MMD-family loss is built from.

    Args:
      k_xx: [m, m]; k_xy: [m, n]; k_yy: [n, n] float32 kernel matrices.
      estimator: one of ``ESTIMATORS``.
      diag_x, diag_y: the diagonals to remove (default: the matrices' own, i.e. the
        true diagonals); a scalar broadcasts (``legacy_constant_diagonal``).

    Returns:
      (e_xx, e_xy, e_yy) scalars: estimates of E k(x,x′), E k(x,y), E k(y,y′).
    """
    check_estimator(estimator)
    k_xx, k_xy, k_yy = (tf.cast(k, tf.float32) for k in (k_xx, k_xy, k_yy))
    if estimator == "biased":
        return tf.reduce_mean(k_xx), tf.reduce_mean(k_xy), tf.reduce_mean(k_yy)

    def broadcast(diag, matrix):
        if diag is None:
            return None
        return tf.broadcast_to(tf.cast(diag, tf.float32), tf.shape(matrix)[:1])

    e_xx = _mean_off_diagonal(k_xx, broadcast(diag_x, k_xx))
    e_yy = _mean_off_diagonal(k_yy, broadcast(diag_y, k_yy))
    if estimator == "u_statistic":
        e_xy = _mean_off_diagonal(k_xy)
    else:
        e_xy = tf.reduce_mean(k_xy)
    return e_xx, e_xy, e_yy


def mmd2_from_matrices(k_xx, k_xy, k_yy, estimator="unbiased", diag_x=None, diag_y=None):
    """MMD² = E k(x,x′) + E k(y,y′) − 2 E k(x,y) from kernel matrices (see module doc).

    Returns:
      Scalar float32.
    """
    e_xx, e_xy, e_yy = expectations(k_xx, k_xy, k_yy, estimator, diag_x, diag_y)
    return e_xx + e_yy - 2.0 * e_xy


def mmd2(real_features, fake_features, kernel, estimator="unbiased", legacy_constant_diagonal=False):
    """Squared maximum mean discrepancy between two feature samples.

    Args:
      real_features: [m, d] features of data samples.
      fake_features: [n, d] features of generator samples.
      kernel: kernel name, :class:`mmd_keras.kernels.Kernel` or config dict.
      estimator: "unbiased" (default), "u_statistic" (m = n) or "biased".
      legacy_constant_diagonal: remove the kernel's constant "diagonal" (Σ weights)
        as paper 1's code did, instead of the true diagonal. Only differs for rq*;
        only for kernels that have such a constant.

    Returns:
      Scalar float32 MMD² estimate (the unbiased ones can be negative).

    Raises:
      ValueError: see :func:`validate_features`; an unknown kernel; or
        ``legacy_constant_diagonal`` with a kernel that has no constant diagonal.
    """
    real, fake = validate_features(real_features, fake_features, estimator)
    kernel = kernels_lib.get(kernel) if isinstance(kernel, (str, dict)) else kernel
    diag = legacy_diagonal(kernel, legacy_constant_diagonal)
    k_xx, k_xy, k_yy = kernel_matrices(real, fake, kernel)
    return mmd2_from_matrices(k_xx, k_xy, k_yy, estimator, diag_x=diag, diag_y=diag)


def legacy_diagonal(kernel, legacy_constant_diagonal):
    """The diagonal to remove: None (the true one) or, when legacy, the kernel's constant Σw.

    Raises:
      ValueError: ``legacy_constant_diagonal`` with a kernel that has no such constant.
    """
    if not legacy_constant_diagonal:
        return None
    diag = getattr(kernel, "constant_diagonal", None)
    if diag is None:
        raise ValueError(
            "Expected a kernel with a constant diagonal (rbf, rq, rq_dot) for "
            f"`legacy_constant_diagonal=True`. Received: `kernel={kernel!r}`"
        )
    return diag
