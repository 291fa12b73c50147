"""The MMD family: critic/generator losses as pure functions of critic features, and the
GANLoss classes wrapping them (attractive MMD, generalized repulsive, RBF-B, SMMD, SWGAN,
rep-gp). Formulas, papers and equations: docs/numerics.md, "Losses".

Conventions: ``real_features`` (x) [m, s] and ``fake_features`` (y) [n, s] are critic
outputs; every critic loss is **minimized** by the critic, every generator loss by the
generator. Kernels are :mod:`mmd_keras.kernels` objects or names; estimators are those
of :mod:`mmd_keras.losses.estimators` ("unbiased", "u_statistic", "biased"). All float32.

* Attractive MMD (papers 1–2): L_D = −MMD², L_G = MMD².
* Generalized repulsive loss (paper 3, Eq. 5): L_D,λ = λ·E k(x,x′) − (λ−1)·E k(x,y)
  − E k(y,y′); λ = −1 is −MMD², λ = 1 the repulsive E k(x,x′) − E k(y,y′); L_G = MMD².
* RBF-B (paper 3, Eqs. 6–7): squared distances clamped in the **critic** loss only.
  Attractive form (Eq. 6, used for λ < 0): d²_xx, d²_yy := max(d², b_l),
  d²_xy := min(d², b_u). Repulsive form (Eq. 7, λ ≥ 0): d²_yy := max(d², b_l),
  d²_xx := min(d², b_u), d²_xy unclamped. The generator loss uses the plain kernel.
* Scaled MMD (paper 2, §3.3, Eq. 7 and Prop. 4; §4): SMMD = MMD² / (offset + coefficient·E_x‖J_h(x)‖²_F)
  (+ E_x‖h(x)‖² inside the scale for a linear top kernel); paper 2: offset 1,
  coefficient 10, Gaussian σ = 1 on a 1-d critic. The critic minimizes −SMMD.
* SWGAN (paper 2): (E_x h − E_y h) / sqrt(offset + coefficient·(E_x h² + E_x‖J‖²_F)).
* MMD-rep-gp (paper 3, App. D.1, Eq. S8): (L_rep − 1) / (1 + λ·E_x‖J_h(x)‖²_F), λ = 0.1.

The weight of E‖J‖²_F is ``coefficient`` everywhere (SMMD, SWGAN, rep-gp).
"""

import keras
import tensorflow as tf

from mmd_keras import catalog
from mmd_keras import kernels as kernels_lib
from mmd_keras.losses import estimators, inputs, penalties
from mmd_keras.losses.base import GANLoss
from mmd_keras.losses.inputs import scalar_output

BOUND_FORMS = ("attractive", "repulsive")


def _kernel(kernel):
    return kernels_lib.get(kernel) if isinstance(kernel, (str, dict)) else kernel


def _matrices(real_features, fake_features, kernel, estimator):
    real, fake = estimators.validate_features(real_features, fake_features, estimator)
    return estimators.kernel_matrices(real, fake, _kernel(kernel))


def generalized_loss_from_matrices(k_xx, k_xy, k_yy, lam, estimator="unbiased", diagonal=None):
    """λ·E k(x,x′) − (λ−1)·E k(x,y) − E k(y,y′) from kernel matrices (paper 3, Eq. 5).

    ``diagonal``: None (the true diagonals) or the legacy constant (see
    :func:`~mmd_keras.losses.estimators.legacy_diagonal`).
    """
    e_xx, e_xy, e_yy = estimators.expectations(k_xx, k_xy, k_yy, estimator, diagonal, diagonal)
    lam = inputs.scalar(lam, "lam")
    return lam * e_xx - (lam - 1.0) * e_xy - e_yy


def mmd_critic_loss(real_features, fake_features, kernel="rbf", estimator="unbiased",
                    legacy_constant_diagonal=False):
    """Attractive critic loss −MMD² (papers 1–2; paper 3's L_att).

    Args:
      real_features: [m, s]; fake_features: [n, s].
      kernel: kernel name or object. estimator: see module doc.
      legacy_constant_diagonal: see :func:`mmd_keras.losses.estimators.mmd2`.

    Returns:
      Scalar float32.
    """
    return -mmd_generator_loss(real_features, fake_features, kernel, estimator, legacy_constant_diagonal)


def mmd_generator_loss(real_features, fake_features, kernel="rbf", estimator="unbiased",
                       legacy_constant_diagonal=False):
    """Generator loss MMD² (all MMD-family losses; paper 3's L_G^mmd)."""
    return estimators.mmd2(real_features, fake_features, _kernel(kernel), estimator, legacy_constant_diagonal)


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
    real, fake = estimators.validate_features(real_features, fake_features, "biased")
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
                          bounds=None, legacy_constant_diagonal=False):
    """Generalized repulsive critic loss L_D,λ (paper 3, Eq. 5), optionally RBF-B bounded.

    Args:
      real_features: [m, s]; fake_features: [n, s].
      kernel: kernel name or object (paper 3: rbf with σ = 1).
      lam: λ, any real: −1 attractive (−MMD²), 1 repulsive (Eq. 4), paper 3 studies
        {−1, −0.5, 0, 0.5, 1, 2}.
      estimator: see module doc (paper 3's code: "u_statistic").
      bounds: None, or (b_l, b_u) for RBF-B: the attractive clamping (Eq. 6) when
        λ < 0, the repulsive one (Eq. 7) when λ ≥ 0 (paper 3, footnote 5).
      legacy_constant_diagonal: see :func:`mmd_keras.losses.estimators.mmd2`.

    Returns:
      Scalar float32.
    """
    if bounds is None:
        matrices = _matrices(real_features, fake_features, kernel, estimator)
    else:
        if len(bounds) != 2:
            raise ValueError(f"Expected `bounds=(lower, upper)`. Received: `bounds={bounds!r}`")
        form = "attractive" if float(lam) < 0 else "repulsive"
        estimators.validate_features(real_features, fake_features, estimator)
        matrices = bounded_kernel_matrices(real_features, fake_features, kernel, bounds[0], bounds[1], form)
    diagonal = estimators.legacy_diagonal(_kernel(kernel), legacy_constant_diagonal)
    return generalized_loss_from_matrices(*matrices, lam, estimator, diagonal)


def repulsive_generator_loss(real_features, fake_features, kernel="rbf", estimator="unbiased",
                             legacy_constant_diagonal=False):
    """Generator loss of the repulsive family: the unbounded MMD² (paper 3, Eq. 2)."""
    return mmd_generator_loss(real_features, fake_features, kernel, estimator, legacy_constant_diagonal)


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
    term = inputs.scalar(jacobian_sq_norm, "jacobian_sq_norm")
    if feature_sq_norm is not None:
        term += inputs.scalar(feature_sq_norm, "feature_sq_norm")
    return 1.0 / (inputs.scalar(offset, "offset") + inputs.scalar(coefficient, "coefficient") * term)


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
    real, fake = estimators.validate_features(real_features, fake_features, estimator)
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
    denominator = inputs.scalar(offset, "offset") + inputs.scalar(coefficient, "coefficient") * (
        tf.reduce_mean(tf.square(real)) + inputs.scalar(jacobian_sq_norm, "jacobian_sq_norm")
    )
    return (tf.reduce_mean(real) - tf.reduce_mean(fake)) / tf.sqrt(denominator)


def rep_gp_critic_loss(real_features, fake_features, jacobian_sq_norm, kernel="rbf", coefficient=0.1,
                       estimator="unbiased"):
    """MMD-rep-gp critic loss (paper 3, App. D.1, Eq. S8): (L_rep − 1)/(1 + λ·E_x‖J‖²_F).

    Args:
      real_features: [m, s]; fake_features: [n, s] (paper: s = 1, no SN).
      jacobian_sq_norm: scalar E_x‖∇h(x)‖²_F over the real batch.
      coefficient: λ (paper 3: 0.1).

    Returns:
      Scalar float32; the generator uses :func:`mmd_generator_loss`.
    """
    l_rep = repulsive_critic_loss(real_features, fake_features, kernel, 1.0, estimator)
    jacobian_term = inputs.scalar(coefficient, "coefficient") * inputs.scalar(jacobian_sq_norm, "jacobian_sq_norm")
    return (l_rep - 1.0) / (1.0 + jacobian_term)


class KernelLoss(GANLoss):
    """Base of the MMD family: kernel + estimator; the GP is the witness GP (paper 1, §3).

    Args:
      kernel: a kernel name, object or config (default: the loss's paper default).
      estimator: "unbiased", "u_statistic" or "biased" (docs/numerics.md, "Estimators").
      legacy_constant_diagonal: remove the kernel's constant Σw instead of the true
        diagonal, as paper 1's code did (differs for rq* only); kernels rbf, rq, rq_dot.
      **kwargs: :class:`~mmd_keras.losses.base.GANLoss` arguments.
    """

    parameters = catalog.KERNEL_KEYWORDS
    takes_kernel = True
    default_kernel = ("rbf", {"sigmas": (1.0,)})
    default_estimator = "unbiased"

    def __init__(self, kernel=None, estimator=None, legacy_constant_diagonal=False, **kwargs):
        super().__init__(**kwargs)
        if kernel is None:
            kernel = kernels_lib.get(self.default_kernel[0], **self.default_kernel[1])
        self.kernel = kernels_lib.get(kernel)
        self.estimator = estimator or self.default_estimator
        estimators.check_estimator(self.estimator)
        self.legacy_constant_diagonal = inputs.boolean(legacy_constant_diagonal, "legacy_constant_diagonal")
        estimators.legacy_diagonal(self.kernel, self.legacy_constant_diagonal)  # checks the kernel has one

    def get_config(self):
        return {**super().get_config(), "kernel": kernels_lib.serialize(self.kernel), "estimator": self.estimator,
                "legacy_constant_diagonal": self.legacy_constant_diagonal}

    def _penalty_values(self, hat_features, p):
        return penalties.witness(hat_features, p.real, p.fakes[0], self.kernel)

    def _mmd2(self, p):
        return mmd_generator_loss(p.real, p.fakes[0], self.kernel, self.estimator, self.legacy_constant_diagonal)

    def _jacobian_sq(self, p, mode):
        jac = tf.reduce_mean(p.real_jacobian_sq)
        return tf.stop_gradient(jac) if mode == "generator" else jac


@keras.saving.register_keras_serializable(package="mmd_keras")
class MMDLoss(KernelLoss):
    """Attractive MMD GAN (papers 1–2): critic −MMD² (+ witness GP), generator MMD².

    Defaults follow paper 1: rq* kernel, unbiased estimator, witness GP weight 1.
    """

    name = "mmd"
    default_kernel = ("rq_dot", {})
    default_gradient_penalty_weight = 1.0

    def _loss_terms(self, p, mode):
        mmd2 = self._mmd2(p)
        return -mmd2, mmd2, {"mmd2": mmd2}, {}


@keras.saving.register_keras_serializable(package="mmd_keras")
class RepulsiveLoss(KernelLoss):
    """Generalized repulsive loss (paper 3): critic L_D,λ, generator MMD².

    Args:
      lam: λ (1 repulsive, −1 attractive). kernel: default rbf σ = 1.
      bounded: use RBF-B in the critic loss with ``lower_bound``/``upper_bound``
        (paper 3: 0.25, 4). The generator always uses the plain kernel.
    """

    name = "repulsive"
    parameters = catalog.LOSSES["repulsive"]
    default_lam = 1.0
    default_bounded = False

    def __init__(self, lam=None, bounded=None, lower_bound=0.25, upper_bound=4.0, **kwargs):
        super().__init__(**kwargs)
        self.lam = float(self.default_lam if lam is None else lam)
        self.bounded = inputs.boolean(self.default_bounded if bounded is None else bounded, "bounded")
        self.lower_bound, self.upper_bound = float(lower_bound), float(upper_bound)
        if self.bounded and not (0 <= self.lower_bound <= self.upper_bound):
            raise ValueError("Expected 0 ≤ `lower_bound` ≤ `upper_bound`. Received: "
                             f"`lower_bound={lower_bound!r}`, `upper_bound={upper_bound!r}`")
        if self.bounded and not self.kernel.is_distance_based:
            raise ValueError(f"Expected a distance-based kernel (rbf, rq) with `bounded=True`. "
                             f"Received: `kernel={self.kernel!r}`")

    def get_config(self):
        return {**super().get_config(), "lam": self.lam, "bounded": self.bounded,
                "lower_bound": self.lower_bound, "upper_bound": self.upper_bound}

    def _loss_terms(self, p, mode):
        bounds = (self.lower_bound, self.upper_bound) if self.bounded else None
        critic_loss = repulsive_critic_loss(p.real, p.fakes[0], self.kernel, self.lam, self.estimator, bounds,
                                            self.legacy_constant_diagonal)
        mmd2 = self._mmd2(p)
        return critic_loss, mmd2, {"mmd2": mmd2}, {}


@keras.saving.register_keras_serializable(package="mmd_keras")
class BoundedRepulsiveLoss(RepulsiveLoss):
    """MMD-rep-b (paper 3): repulsive λ = 1 with RBF-B in the critic loss."""

    name = "rep_b"
    default_bounded = True


@keras.saving.register_keras_serializable(package="mmd_keras")
class BoundedMMDLoss(RepulsiveLoss):
    """MMD-rbf-b (paper 3): attractive (λ = −1) with RBF-B (Eq. 6) in the critic loss."""

    name = "mmd_rbf_b"
    default_lam = -1.0
    default_bounded = True


@keras.saving.register_keras_serializable(package="mmd_keras")
class SMMDLoss(KernelLoss):
    """Scaled MMD (paper 2): critic −SMMD, generator SMMD (scale held constant).

    Args:
      coefficient: weight of E‖J‖²_F in the scale (paper 2: 10); stored in a
        non-trainable variable ``loss.coefficient`` (checkpointed, adjustable).
      offset: constant of the scale (paper 2: 1).
      kernel: top kernel, default rbf σ = 1; ``dot`` adds E‖h‖² to the scale.

    The critic may output any number s of features: the scale's ‖J‖²_F sums over
    output dims (paper 2, §3 defines φ_ψ: X → R^s). The paper's experiments use
    s = 1 (the configs' default) and report that a larger s "didn't substantially
    change the performance"; on the 2-D toys s = 16 is markedly more stable across
    seeds than s = 1 (tests/test_toy_training.py).
    """

    name = "smmd"
    parameters = catalog.LOSSES["smmd"]
    jacobian = "real"

    def __init__(self, coefficient=10.0, offset=1.0, **kwargs):
        super().__init__(**kwargs)
        self.coefficient = self._add_state("coefficient", inputs.non_negative(coefficient, "coefficient"))
        self._coefficient_init = float(coefficient)
        self.offset = inputs.non_negative(offset, "offset")

    @property
    def regularization_coefficient(self):
        """``("coefficient", variable)``: the weight of E‖J‖²_F in the scale."""
        return "coefficient", self.coefficient

    def get_config(self):
        return {**super().get_config(), "coefficient": self._coefficient_init, "offset": self.offset}

    def _loss_terms(self, p, mode):
        jac = self._jacobian_sq(p, mode)
        feature_sq = None
        if isinstance(self.kernel, kernels_lib.Dot):
            feature_sq = tf.reduce_mean(tf.reduce_sum(tf.square(p.real), axis=1))
        scale = smmd_scale(jac, self.coefficient, self.offset, feature_sq)
        mmd2 = self._mmd2(p)
        smmd = mmd2 * scale
        metrics = {"mmd2": mmd2, "smmd": smmd, "smmd_scale": scale, "jacobian_sq_norm": jac}
        return -smmd, mmd2 * tf.stop_gradient(scale), metrics, {}


@keras.saving.register_keras_serializable(package="mmd_keras")
class SWGANLoss(SMMDLoss):
    """Scaled WGAN (paper 2): SMMD with a linear top kernel, unsquared form."""

    name = "swgan"
    required_output_dim = 1

    def _loss_terms(self, p, mode):
        jac = self._jacobian_sq(p, mode)
        value = swgan(p.real, p.fakes[0], jac, self.coefficient, self.offset)
        generator = swgan(p.real, p.fakes[0], tf.stop_gradient(jac), self.coefficient, self.offset)
        return -value, generator, {"swgan": value, "jacobian_sq_norm": jac}, {}


@keras.saving.register_keras_serializable(package="mmd_keras")
class RepGPLoss(KernelLoss):
    """MMD-rep-gp (paper 3, App. D.1, Eq. S8): (L_rep − 1)/(1 + λ E‖J‖²_F), generator MMD².

    Args:
      coefficient: λ, the weight of E‖J‖²_F (paper 3: 0.1); the same name as SMMD's.
    """

    name = "rep_gp"
    parameters = catalog.LOSSES["rep_gp"]
    required_output_dim = 1
    jacobian = "critic"

    def __init__(self, coefficient=0.1, **kwargs):
        super().__init__(**kwargs)
        self.coefficient = inputs.non_negative(coefficient, "coefficient")

    def get_config(self):
        return {**super().get_config(), "coefficient": self.coefficient}

    def _loss_terms(self, p, mode):
        mmd2 = self._mmd2(p)
        if mode == "generator":
            return tf.constant(0.0), mmd2, {"mmd2": mmd2}, {}
        jac = tf.reduce_mean(p.real_jacobian_sq)
        critic_loss = rep_gp_critic_loss(p.real, p.fakes[0], jac, self.kernel, self.coefficient, self.estimator)
        return critic_loss, mmd2, {"mmd2": mmd2, "jacobian_sq_norm": jac}, {}
