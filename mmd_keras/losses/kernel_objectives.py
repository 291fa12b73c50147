"""GANLoss objects of the MMD family: attractive, repulsive/generalized-λ, RBF-B, SMMD,
SWGAN, rep-gp and GC-MMD (papers 1–3).

Each class wraps the pure functions of :mod:`~mmd_keras.losses.mmd_losses` and
:mod:`~mmd_keras.losses.gcmmd`; the call protocol is :class:`~mmd_keras.losses.objectives.GANLoss`'s.
"""

import tensorflow as tf

from mmd_keras import kernels as kernels_lib
from mmd_keras.losses import gcmmd, mmd_losses, penalties
from mmd_keras.losses import mmd as mmd_lib
from mmd_keras.losses.objectives import GANLoss, _mean, _non_negative


class _KernelLoss(GANLoss):
    """Base of the MMD family: kernel + estimator; the GP is the witness GP (paper 1)."""

    default_kernel = ("rbf", {"sigmas": (1.0,)})
    default_estimator = "unbiased"

    def __init__(self, kernel=None, estimator=None, **kwargs):
        super().__init__(**kwargs)
        if kernel is None:
            kernel = kernels_lib.get(self.default_kernel[0], **self.default_kernel[1])
        self.kernel = kernels_lib.get(kernel)
        self.estimator = estimator or self.default_estimator
        mmd_lib._check_estimator(self.estimator)

    def get_config(self):
        return {**super().get_config(), "kernel": kernels_lib.serialize(self.kernel), "estimator": self.estimator}

    def _penalty_values(self, hat_features, p):
        return penalties.witness(hat_features, p.real, p.fakes[0], self.kernel)

    def _mmd2(self, p):
        return mmd_losses.mmd_generator_loss(p.real, p.fakes[0], self.kernel, self.estimator)

    def _jacobian_sq(self, p, mode):
        jac = _mean(p.real_jacobian_sq)
        return tf.stop_gradient(jac) if mode == "generator" else jac


class MMDLoss(_KernelLoss):
    """Attractive MMD GAN (papers 1–2): critic −MMD² (+ witness GP), generator MMD².

    Defaults follow paper 1: rq* kernel, unbiased estimator, witness GP weight 1.
    """

    name = "mmd"
    default_kernel = ("rq_dot", {})
    default_gradient_penalty_weight = 1.0

    def _losses(self, p, mode):
        mmd2 = self._mmd2(p)
        return -mmd2, mmd2, {"mmd2": mmd2}, {}


class RepulsiveLoss(_KernelLoss):
    """Generalized repulsive loss (paper 3): critic L_D,λ, generator MMD².

    Args:
      lam: λ (1 repulsive, −1 attractive). kernel: default rbf σ = 1.
      bounded: use RBF-B in the critic loss with ``lower_bound``/``upper_bound``
        (paper 3: 0.25, 4). The generator always uses the plain kernel.
    """

    name = "repulsive"
    default_lam = 1.0
    default_bounded = False

    def __init__(self, lam=None, bounded=None, lower_bound=0.25, upper_bound=4.0, **kwargs):
        super().__init__(**kwargs)
        self.lam = float(self.default_lam if lam is None else lam)
        self.bounded = bool(self.default_bounded if bounded is None else bounded)
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

    def _losses(self, p, mode):
        bounds = (self.lower_bound, self.upper_bound) if self.bounded else None
        critic_loss = mmd_losses.repulsive_critic_loss(p.real, p.fakes[0], self.kernel, self.lam, self.estimator,
                                                       bounds)
        mmd2 = self._mmd2(p)
        return critic_loss, mmd2, {"mmd2": mmd2}, {}


class BoundedRepulsiveLoss(RepulsiveLoss):
    """MMD-rep-b (paper 3): repulsive λ = 1 with RBF-B in the critic loss."""

    name = "rep_b"
    default_bounded = True


class BoundedMMDLoss(RepulsiveLoss):
    """MMD-rbf-b (paper 3): attractive (λ = −1) with RBF-B (Eq. 6) in the critic loss."""

    name = "mmd_rbf_b"
    default_lam = -1.0
    default_bounded = True


class SMMDLoss(_KernelLoss):
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
    jacobian = "real"

    def __init__(self, coefficient=10.0, offset=1.0, **kwargs):
        super().__init__(**kwargs)
        self.coefficient = self._add_state("coefficient", _non_negative(coefficient, "coefficient"))
        self._coefficient_init = float(coefficient)
        self.offset = _non_negative(offset, "offset")

    def get_config(self):
        return {**super().get_config(), "coefficient": self._coefficient_init, "offset": self.offset}

    def _losses(self, p, mode):
        jac = self._jacobian_sq(p, mode)
        feature_sq = None
        if isinstance(self.kernel, kernels_lib.Dot):
            feature_sq = tf.reduce_mean(tf.reduce_sum(tf.square(p.real), axis=1))
        scale = mmd_losses.smmd_scale(jac, self.coefficient, self.offset, feature_sq)
        mmd2 = self._mmd2(p)
        smmd = mmd2 * scale
        metrics = {"mmd2": mmd2, "smmd": smmd, "smmd_scale": scale, "jacobian_sq_norm": jac}
        return -smmd, mmd2 * tf.stop_gradient(scale), metrics, {}


class SWGANLoss(SMMDLoss):
    """Scaled WGAN (paper 2): SMMD with a linear top kernel, unsquared form."""

    name = "swgan"
    required_output_dim = 1

    def _losses(self, p, mode):
        jac = self._jacobian_sq(p, mode)
        value = mmd_losses.swgan(p.real, p.fakes[0], jac, self.coefficient, self.offset)
        generator = mmd_losses.swgan(p.real, p.fakes[0], tf.stop_gradient(jac), self.coefficient, self.offset)
        return -value, generator, {"swgan": value, "jacobian_sq_norm": jac}, {}


class RepGPLoss(_KernelLoss):
    """MMD-rep-gp (paper 3, App. D.1): (L_rep − 1)/(1 + λ E‖J‖²_F), generator MMD²."""

    name = "rep_gp"
    required_output_dim = 1
    jacobian = "critic"

    def __init__(self, penalty_weight=0.1, **kwargs):
        super().__init__(**kwargs)
        self.penalty_weight = _non_negative(penalty_weight, "penalty_weight")

    def get_config(self):
        return {**super().get_config(), "penalty_weight": self.penalty_weight}

    def _losses(self, p, mode):
        mmd2 = self._mmd2(p)
        if mode == "generator":
            return tf.constant(0.0), mmd2, {"mmd2": mmd2}, {}
        jac = _mean(p.real_jacobian_sq)
        critic_loss = mmd_losses.rep_gp_critic_loss(p.real, p.fakes[0], jac, self.kernel, self.penalty_weight,
                                                    self.estimator)
        return critic_loss, mmd2, {"mmd2": mmd2, "jacobian_sq_norm": jac}, {}


class GCMMDLoss(_KernelLoss):
    """Gradient-Constrained MMD (paper 2, Prop. 3), µ = the real batch; small scale only.

    Args:
      lam: λ > 0 of the Sobolev-norm regularizer.
      kernel: top kernel (rbf or dot; default rbf σ = 1). estimator: default "biased"
        (the empirical η̂ gives the V-statistic; paper 2's code also defaulted to it).
    """

    name = "gcmmd"
    jacobian = "full"
    default_estimator = "biased"

    def __init__(self, lam=1.0, **kwargs):
        super().__init__(**kwargs)
        self.lam = float(lam)
        if self.lam <= 0:
            raise ValueError(f"Expected `lam` > 0. Received: `lam={lam!r}`")

    def get_config(self):
        return {**super().get_config(), "lam": self.lam}

    def _losses(self, p, mode):
        tape, columns, real = p.jacobian_columns
        jac = tf.stack([tf.cast(tape.gradient(c, real), tf.float32) for c in columns], axis=1)
        jac = tf.reshape(jac, [tf.shape(jac)[0], len(columns), -1])
        value = gcmmd.gcmmd2(p.real_local, jac, p.real, p.fakes[0], self.kernel, self.lam, self.estimator)
        return -value, value, {"gcmmd2": value}, {}
