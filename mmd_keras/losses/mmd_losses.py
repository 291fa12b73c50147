"""MMD-family critic/generator losses as pure functions of critic features.

Conventions: ``real_features`` (x) [m, s] and ``fake_features`` (y) [n, s] are critic
outputs; every critic loss is **minimized** by the critic, every generator loss by the
generator. Kernels are :mod:`mmd_keras.kernels` objects or names; estimators are those
of :mod:`mmd_keras.losses.mmd` ("unbiased", "u_statistic", "biased"). All float32.

* Attractive MMD (papers 1–2): L_D = −MMD², L_G = MMD².
* Generalized repulsive loss (paper 3, Eq. 5): L_D,λ = λ·E k(x,x′) − (λ−1)·E k(x,y)
  − E k(y,y′); λ = −1 is −MMD², λ = 1 the repulsive E k(x,x′) − E k(y,y′); L_G = MMD².
* RBF-B (paper 3, Eqs. 6–7): squared distances clamped in the **critic** loss only.
  Attractive form (Eq. 6, used for λ < 0): d²_xx, d²_yy := max(d², b_l),
  d²_xy := min(d², b_u). Repulsive form (Eq. 7, λ ≥ 0): d²_yy := max(d², b_l),
  d²_xx := min(d², b_u), d²_xy unclamped. The generator loss uses the plain kernel.
* Scaled MMD (paper 2, §3.3 and §4): SMMD = MMD² / (offset + coefficient·E_x‖J_h(x)‖²_F)
  (+ E_x‖h(x)‖² inside the scale for a linear top kernel); paper 2: offset 1,
  coefficient 10, Gaussian σ = 1 on a 1-d critic. The critic minimizes −SMMD.
* SWGAN (paper 2): (E_x h − E_y h) / sqrt(offset + coefficient·(E_x h² + E_x‖J‖²_F)).
* MMD-rep-gp (paper 3, App. D.1, Eq. S8): (L_rep − 1) / (1 + λ·E_x‖J_h(x)‖²_F), λ = 0.1.
"""

import tensorflow as tf

from mmd_keras import kernels as kernels_lib
from mmd_keras.losses import mmd as mmd_lib
from mmd_keras.losses.penalties import scalar_output

BOUND_FORMS = ("attractive", "repulsive")


def _kernel(kernel):
    return kernels_lib.get(kernel) if isinstance(kernel, (str, dict)) else kernel


def _scalar(value, name):
    value = tf.convert_to_tensor(value)
    if value.shape.rank not in (0, None):
        raise ValueError(f"Expected `{name}` to be a scalar. Received: `{name}.shape={value.shape}`")
    return tf.cast(value, tf.float32)


def _matrices(real_features, fake_features, kernel, estimator):
    real, fake = mmd_lib.validate_features(real_features, fake_features, estimator)
    return mmd_lib.kernel_matrices(real, fake, _kernel(kernel))


def generalized_loss_from_matrices(k_xx, k_xy, k_yy, lam, estimator="unbiased"):
    """λ·E k(x,x′) − (λ−1)·E k(x,y) − E k(y,y′) from kernel matrices (paper 3, Eq. 5)."""
    e_xx, e_xy, e_yy = mmd_lib.expectations(k_xx, k_xy, k_yy, estimator)
    lam = _scalar(lam, "lam")
    return lam * e_xx - (lam - 1.0) * e_xy - e_yy


def mmd_critic_loss(real_features, fake_features, kernel="rbf", estimator="unbiased"):
    """Attractive critic loss −MMD² (papers 1–2; paper 3's L_att).

    Args:
      real_features: [m, s]; fake_features: [n, s].
      kernel: kernel name or object. estimator: see module doc.

    Returns:
      Scalar float32.
    """
    return -mmd_generator_loss(real_features, fake_features, kernel, estimator)


def mmd_generator_loss(real_features, fake_features, kernel="rbf", estimator="unbiased"):
    """Generator loss MMD² (all MMD-family losses; paper 3's L_G^mmd)."""
    return mmd_lib.mmd2_from_matrices(*_matrices(real_features, fake_features, kernel, estimator), estimator)


def bounded_kernel_matrices(real_features, fake_features, kernel, lower_bound=0.25, upper_bound=4.0,
                            form="repulsive"):
    """Kernel matrices of the RBF-B kernel (paper 3, Eqs. 6–7).

    Args:
      real_features: [m, s]; fake_features: [n, s].
      kernel: a distance-based kernel (``is_distance_based``: rbf, rq).
      lower_bound: b_l, the floor of within-group squared distances.
      upper_bound: b_u, the ceiling of real–real (repulsive) or real–fake (attractive) ones.
      form: "attractive" (Eq. 6) or "repulsive" (Eq. 7); see module doc.

    Returns:
      (k_xx, k_xy, k_yy) float32.
    """
    kernel = _kernel(kernel)
    if not getattr(kernel, "is_distance_based", False):
        raise ValueError(
            "Expected a distance-based kernel (rbf or rq) for the bounded RBF-B loss. "
            f"Received: `kernel={kernel!r}`"
        )
    if form not in BOUND_FORMS:
        raise ValueError(f"Expected `form` to be one of {list(BOUND_FORMS)}. Received: `form={form!r}`")
    if not 0.0 <= float(lower_bound) <= float(upper_bound):
        raise ValueError(
            "Expected 0 ≤ `lower_bound` ≤ `upper_bound`. "
            f"Received: `lower_bound={lower_bound!r}`, `upper_bound={upper_bound!r}`"
        )
    real, fake = mmd_lib.validate_features(real_features, fake_features, "biased")
    d_xx = kernels_lib.squared_distances(real, real)
    d_xy = kernels_lib.squared_distances(real, fake)
    d_yy = kernels_lib.squared_distances(fake, fake)
    if form == "attractive":
        d_xx = tf.maximum(d_xx, lower_bound)
        d_xy = tf.minimum(d_xy, upper_bound)
    else:
        d_xx = tf.minimum(d_xx, upper_bound)
    d_yy = tf.maximum(d_yy, lower_bound)
    return tuple(kernel.from_squared_distances(d) for d in (d_xx, d_xy, d_yy))


def repulsive_critic_loss(real_features, fake_features, kernel="rbf", lam=1.0, estimator="unbiased",
                          bounds=None):
    """Generalized repulsive critic loss L_D,λ (paper 3, Eq. 5), optionally RBF-B bounded.

    Args:
      real_features: [m, s]; fake_features: [n, s].
      kernel: kernel name or object (paper 3: rbf with σ = 1).
      lam: λ, any real: −1 attractive (−MMD²), 1 repulsive (Eq. 4), paper 3 studies
        {−1, −0.5, 0, 0.5, 1, 2}.
      estimator: see module doc (paper 3's code: "u_statistic").
      bounds: None, or (b_l, b_u) for RBF-B: the attractive clamping (Eq. 6) when
        λ < 0, the repulsive one (Eq. 7) when λ ≥ 0 (paper 3, footnote 5).

    Returns:
      Scalar float32.
    """
    if bounds is None:
        matrices = _matrices(real_features, fake_features, kernel, estimator)
    else:
        if len(bounds) != 2:
            raise ValueError(f"Expected `bounds=(lower, upper)`. Received: `bounds={bounds!r}`")
        form = "attractive" if float(lam) < 0 else "repulsive"
        mmd_lib.validate_features(real_features, fake_features, estimator)
        matrices = bounded_kernel_matrices(real_features, fake_features, kernel, bounds[0], bounds[1], form)
    return generalized_loss_from_matrices(*matrices, lam, estimator)


def repulsive_generator_loss(real_features, fake_features, kernel="rbf", estimator="unbiased"):
    """Generator loss of the repulsive family: the unbounded MMD² (paper 3, Eq. 2)."""
    return mmd_generator_loss(real_features, fake_features, kernel, estimator)


def smmd_scale(jacobian_sq_norm, coefficient=10.0, offset=1.0, feature_sq_norm=None):
    """σ² of the Scaled MMD: 1 / (offset + coefficient·(E‖J‖²_F [+ E‖h‖²])).

    Args:
      jacobian_sq_norm: scalar E_x‖J_h(x)‖²_F over the real batch.
      coefficient: weight of the gradient term (paper 2: 10).
      offset: λ + g(0) after the paper's overall rescaling (paper 2: 1).
      feature_sq_norm: scalar E_x‖h(x)‖² for a linear top kernel, else None.

    Returns:
      Scalar float32 scale (multiplies MMD²).
    """
    term = _scalar(jacobian_sq_norm, "jacobian_sq_norm")
    if feature_sq_norm is not None:
        term += _scalar(feature_sq_norm, "feature_sq_norm")
    return 1.0 / (_scalar(offset, "offset") + _scalar(coefficient, "coefficient") * term)


def smmd(real_features, fake_features, jacobian_sq_norm, kernel="rbf", coefficient=10.0, offset=1.0,
         estimator="unbiased"):
    """Scaled MMD² (paper 2, §4): MMD² · :func:`smmd_scale`.

    For a linear top kernel (``kernel`` is ``dot``) E_x‖h(x)‖² joins the scale
    (paper 2, Prop. 4's linear case).

    Args:
      real_features: [m, s]; fake_features: [n, s].
      jacobian_sq_norm: scalar E_x‖J_h(x)‖²_F at the real batch.
      kernel: top kernel (paper 2: rbf σ = 1). coefficient, offset: see smmd_scale.

    Returns:
      Scalar float32 SMMD (the critic minimizes its negative; the generator minimizes it).
    """
    kernel = _kernel(kernel)
    real, fake = mmd_lib.validate_features(real_features, fake_features, estimator)
    feature_sq = None
    if isinstance(kernel, kernels_lib.Dot):
        feature_sq = tf.reduce_mean(tf.reduce_sum(tf.square(real), axis=1))
    scale = smmd_scale(jacobian_sq_norm, coefficient, offset, feature_sq)
    return mmd_generator_loss(real, fake, kernel, estimator) * scale


def swgan(real_output, fake_output, jacobian_sq_norm, coefficient=10.0, offset=1.0):
    """Scaled WGAN objective (paper 2, §4): (E_x h − E_y h)/sqrt(offset + c·(E_x h² + E_x‖J‖²_F)).

    Args:
      real_output: [m] or [m, 1] critic outputs; fake_output: [n] or [n, 1].
      jacobian_sq_norm: scalar E_x‖∇h(x)‖² at the real batch.

    Returns:
      Scalar float32 (critic minimizes its negative, generator minimizes it).
    """
    real = scalar_output(real_output, "real_output")
    fake = scalar_output(fake_output, "fake_output")
    denominator = _scalar(offset, "offset") + _scalar(coefficient, "coefficient") * (
        tf.reduce_mean(tf.square(real)) + _scalar(jacobian_sq_norm, "jacobian_sq_norm")
    )
    return (tf.reduce_mean(real) - tf.reduce_mean(fake)) / tf.sqrt(denominator)


def rep_gp_critic_loss(real_features, fake_features, jacobian_sq_norm, kernel="rbf", penalty_weight=0.1,
                       estimator="unbiased"):
    """MMD-rep-gp critic loss (paper 3, App. D.1, Eq. S8): (L_rep − 1)/(1 + λ·E_x‖J‖²_F).

    Args:
      real_features: [m, s]; fake_features: [n, s] (paper: s = 1, no SN).
      jacobian_sq_norm: scalar E_x‖∇h(x)‖²_F over the real batch.
      penalty_weight: λ (paper 3: 0.1).

    Returns:
      Scalar float32; the generator uses :func:`mmd_generator_loss`.
    """
    l_rep = repulsive_critic_loss(real_features, fake_features, kernel, 1.0, estimator)
    return (l_rep - 1.0) / (1.0 + _scalar(penalty_weight, "penalty_weight") * _scalar(jacobian_sq_norm,
                                                                                       "jacobian_sq_norm"))
