"""GANLoss objects: what the model calls, one class per loss family.

Every object wraps the pure functions of :mod:`~mmd_keras.losses.mmd_losses`,
:mod:`~mmd_keras.losses.baselines`, :mod:`~mmd_keras.losses.penalties` and
:mod:`~mmd_keras.losses.gcmmd` and is called as::

    out = loss(critic, real_images, fake_images, seed=seed, mode="both")
    out.critic_loss, out.generator_loss, out.metrics, out.state_updates

Conventions: x = real, y = fake; the critic maps images [b, ...] -> features [b, s].
The critic runs **once** per call on the concatenation [real; fake (; fake₂)
(; interpolates)], so spectral-norm state advances once per call; penalized critics
must not mix samples (no batch norm). ``seed`` (int32 [2]) drives a stateless RNG for
the interpolation weights α ~ U(0, 1) (:func:`penalties.uniform_from_seed`, the same
numbers with and without XLA), so a step is reproducible from its seed.
``mode``: "critic" (penalties computed), "generator" (penalties skipped; only
the generator loss is meaningful), "both" (one forward pass, both losses, paper 3's
joint update). ``feature_gather`` (e.g. an all-gather across replicas) is applied to
the real and fake features before kernels and means; gradient penalties and Jacobians
are computed locally. All losses are float32 whatever the critic's dtype.
"""

import collections

import keras
import tensorflow as tf

from mmd_keras import kernels as kernels_lib
from mmd_keras.losses import baselines, gcmmd, mmd_losses, penalties
from mmd_keras.losses import mmd as mmd_lib

MODES = ("critic", "generator", "both")
#: Layers whose outputs are not new activations (skipped by the L2 activation penalty).
_NOT_ACTIVATIONS = (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Reshape, keras.layers.Dropout)

LossOutput = collections.namedtuple("LossOutput", ["critic_loss", "generator_loss", "metrics", "state_updates"])


def _non_negative(value, name):
    if not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"Expected `{name}` to be a non-negative number. Received: `{name}={value!r}`")
    return float(value)


def _call_critic(critic, images, training):
    if isinstance(critic, keras.Layer):
        return critic(images, training=training)
    return critic(images)


def _mean(t):
    return tf.reduce_mean(tf.cast(t, tf.float32))


class _Pass:
    """Features and input-gradient quantities of one critic forward pass."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


class GANLoss:
    """Base class. Subclasses set ``name`` and implement :meth:`_losses`.

    Args:
      gradient_penalty_weight: weight of the two-sided gradient penalty at
        interpolates (the witness GP for MMD losses, the critic GP for the others).
      activation_penalty_weight: weight of paper 1's L2 activation penalty over the
        outputs of all critic layers, output included (Input/Flatten/Reshape/Dropout
        layers skipped), on the real and the fake batch; needs a functional Keras critic.
      legacy_gp_axis: take gradient norms over image height only (paper 1's code).
    """

    name = None
    num_fake_batches = 1
    required_output_dim = None
    #: "real" when the loss needs per-sample ‖J_h(x)‖²_F at the real batch in every mode,
    #: "critic" when only in critic mode, "full" for the whole Jacobian (GCMMD), None otherwise.
    jacobian = None
    default_gradient_penalty_weight = 0.0

    def __init__(self, gradient_penalty_weight=None, activation_penalty_weight=0.0, legacy_gp_axis=False):
        if gradient_penalty_weight is None:
            gradient_penalty_weight = self.default_gradient_penalty_weight
        self.gradient_penalty_weight = _non_negative(gradient_penalty_weight, "gradient_penalty_weight")
        self.activation_penalty_weight = _non_negative(activation_penalty_weight, "activation_penalty_weight")
        self.legacy_gp_axis = bool(legacy_gp_axis)
        self.variables = []
        self._state = {}
        self._views = {}

    # ---- state -------------------------------------------------------------------------
    def _add_state(self, name, value):
        var = tf.Variable(float(value), trainable=False, dtype=tf.float32, name=f"{self.name}_{name}",
                          aggregation=tf.VariableAggregation.MEAN)
        self._state[name] = var
        self.variables.append(var)
        return var

    def apply_state_updates(self, state_updates):
        """Assigns ``out.state_updates`` (dict name -> tensor) to the loss variables."""
        for key, value in state_updates.items():
            if key not in self._state:
                raise ValueError(f"Expected state names in {list(self._state)}. Received: `state_updates[{key!r}]`")
            self._state[key].assign(tf.cast(value, tf.float32))

    # ---- config -------------------------------------------------------------------------
    def get_config(self):
        return {
            "gradient_penalty_weight": self.gradient_penalty_weight,
            "activation_penalty_weight": self.activation_penalty_weight,
            "legacy_gp_axis": self.legacy_gp_axis,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}({self.get_config()})"

    # ---- forward pass -------------------------------------------------------------------
    def _activation_view(self, critic):
        key = id(critic)
        if key not in self._views:
            inputs = getattr(critic, "inputs", None)
            if not isinstance(critic, keras.Model) or not inputs:
                raise ValueError(
                    "Expected a functional keras.Model critic for `activation_penalty_weight > 0` "
                    f"(its layer outputs are penalized). Received: `critic={critic!r}`"
                )
            layers = [layer for layer in critic.layers if not isinstance(layer, _NOT_ACTIVATIONS)]
            outputs = [layer.output for layer in layers] + [critic.outputs[0]]
            self._views[key] = keras.Model(inputs, outputs, name=f"{critic.name}_activations")
        return self._views[key]

    def _penalty_values(self, hat_features, p):
        """Per-sample scalar function whose input gradient is penalized: [b]."""
        return penalties.scalar_output(hat_features, "critic output")

    def _forward(self, critic, real, fakes, seed, mode, feature_gather, training):
        critic_mode = mode != "generator"
        use_gp = critic_mode and self.gradient_penalty_weight > 0
        use_l2 = critic_mode and self.activation_penalty_weight > 0
        need_jac = self.jacobian in ("real", "full") or (self.jacobian == "critic" and critic_mode)
        need_fake_grads = critic_mode and getattr(self, "needs_fake_gradients", False)
        batch = tf.shape(real)[0]
        p = _Pass(gradient_penalty=None, activation_penalty=None, jacobian_columns=None)
        with tf.GradientTape(persistent=True) as tape:
            watched = [real] + (fakes[:1] if need_fake_grads else [])
            for t in watched:
                tape.watch(t)
            batches = [real] + list(fakes)
            if use_gp:
                alpha = penalties.uniform_from_seed(seed, batch)
                hat = penalties.interpolate(real, fakes[0], alpha)
                tape.watch(hat)
                batches.append(hat)
            x = tf.concat(batches, axis=0)
            if use_l2:
                outs = _call_critic(self._activation_view(critic), x, training)
                activations, features = outs[:-1], outs[-1]
            else:
                features = _call_critic(critic, x, training)
            features = tf.cast(features, tf.float32)
            if features.shape.rank != 2:
                raise ValueError(f"Expected critic features [batch, s]. Received: `features.shape={features.shape}`")
            if self.required_output_dim is not None and features.shape[1] != self.required_output_dim:
                raise ValueError(
                    f"Expected a critic with output_dim={self.required_output_dim} for loss {self.name!r}. "
                    f"Received: `features.shape={features.shape}`"
                )
            sizes = [tf.shape(t)[0] for t in batches]
            parts = tf.split(features, sizes, axis=0)
            gather = feature_gather or (lambda t: t)
            p.real_local = parts[0]
            p.real = gather(parts[0])
            p.fakes = [gather(f) for f in parts[1:1 + len(fakes)]]
            if need_jac:
                columns = [tf.reduce_sum(parts[0][:, k]) for k in range(features.shape[1])]
            if need_fake_grads:
                fake_column = tf.reduce_sum(parts[1])
            if use_gp:
                gp_sum = tf.reduce_sum(self._penalty_values(parts[-1], p))
        if need_jac:
            p.jacobian_columns = (tape, columns, real)
            if self.jacobian != "full":
                p.real_jacobian_sq = penalties.sum_squared_gradients(tape, columns, real)
        if need_fake_grads:
            p.fake_grad_sq = penalties.sum_squared_gradients(tape, [fake_column], fakes[0])
        if use_gp:
            p.gradient_penalty = penalties.gradient_penalty_from_gradients(
                tape.gradient(gp_sum, hat), legacy_gp_axis=self.legacy_gp_axis)
        if use_l2:
            split = [tf.split(tf.cast(a, tf.float32), sizes, axis=0) for a in activations]
            p.activation_penalty = sum(
                penalties.l2_activation_penalty([s[i] for s in split]) for i in range(1 + len(fakes)))
        p.tape = tape
        return p

    def __call__(self, critic, real_images, fake_images, *, seed, mode="both", fake_images_2=None,
                 feature_gather=None, training=True):
        """Computes both losses; see the module docstring and CONTRACTS.md.

        Args:
          critic: callable images [b, ...] -> features [b, s] (a keras.Model).
          real_images, fake_images: [b, ...] batches of the same sample shape.
          seed: int32 [2] seed of the stateless RNG (interpolation weights).
          mode: "critic", "generator" or "both".
          fake_images_2: the second fake batch (Cramér GAN only).
          feature_gather: optional fn applied to real and fake features.
          training: passed to a Keras critic.

        Returns:
          LossOutput(critic_loss, generator_loss, metrics, state_updates).
        """
        if mode not in MODES:
            raise ValueError(f"Expected `mode` to be one of {list(MODES)}. Received: `mode={mode!r}`")
        real, fake = penalties.check_image_pair(real_images, fake_images)
        fakes = [fake]
        if self.num_fake_batches == 2:
            if fake_images_2 is None:
                raise ValueError(f"Expected `fake_images_2` (a second fake batch) for loss {self.name!r}. "
                                 "Received: `fake_images_2=None`")
            fakes.append(penalties.check_image_pair(real_images, fake_images_2)[1])
        elif fake_images_2 is not None:
            raise ValueError(f"Expected `fake_images_2=None` for loss {self.name!r}, which uses one fake batch. "
                             "Received a tensor")
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
        if seed.shape != (2,):
            raise ValueError(f"Expected `seed` an int32 tensor of shape [2]. Received: `seed.shape={seed.shape}`")
        p = self._forward(critic, real, fakes, seed, mode, feature_gather, training)
        critic_loss, generator_loss, metrics, state_updates = self._losses(p, mode)
        metrics = dict(metrics)
        if p.gradient_penalty is not None:
            critic_loss += self.gradient_penalty_weight * p.gradient_penalty
            metrics["gradient_penalty"] = p.gradient_penalty
        if p.activation_penalty is not None:
            critic_loss += self.activation_penalty_weight * p.activation_penalty
            metrics["activation_penalty"] = p.activation_penalty
        del p.tape
        return LossOutput(tf.cast(critic_loss, tf.float32), tf.cast(generator_loss, tf.float32), metrics,
                          state_updates)

    def _losses(self, p, mode):
        raise NotImplementedError


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
    """

    name = "smmd"
    required_output_dim = 1
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


class WGANGPLoss(GANLoss):
    """WGAN-GP (Gulrajani et al.): critic E f(y) − E f(x) + 10·GP, generator −E f(y)."""

    name = "wgan_gp"
    required_output_dim = 1
    default_gradient_penalty_weight = 10.0

    def _losses(self, p, mode):
        critic_loss = baselines.wgan_critic_loss(p.real, p.fakes[0])
        return critic_loss, baselines.wgan_generator_loss(p.fakes[0]), {"wasserstein": -critic_loss}, {}


class HingeLoss(GANLoss):
    """Hinge loss (paper 3's baseline)."""

    name = "hinge"
    required_output_dim = 1

    def _losses(self, p, mode):
        return (baselines.hinge_critic_loss(p.real, p.fakes[0]), baselines.hinge_generator_loss(p.fakes[0]),
                {}, {})


class NonSaturatingLoss(GANLoss):
    """Non-saturating GAN loss with logits (paper 3's baseline)."""

    name = "non_saturating"
    required_output_dim = 1

    def _losses(self, p, mode):
        return (baselines.non_saturating_critic_loss(p.real, p.fakes[0]),
                baselines.non_saturating_generator_loss(p.fakes[0]), {}, {})


class CramerLoss(GANLoss):
    """Cramér GAN (paper 1's baseline): two fake batches, GP 10 on the surrogate critic."""

    name = "cramer"
    num_fake_batches = 2
    default_gradient_penalty_weight = 10.0

    def _penalty_values(self, hat_features, p):
        return baselines.cramer_surrogate(hat_features, p.fakes[1])

    def _losses(self, p, mode):
        critic_loss = baselines.cramer_critic_loss(p.real, p.fakes[0], p.fakes[1])
        generator_loss = baselines.cramer_generator_loss(p.real, p.fakes[0], p.fakes[1])
        return critic_loss, generator_loss, {"surrogate": -critic_loss}, {}


class SobolevLoss(GANLoss):
    """Sobolev GAN (paper 2's baseline), augmented Lagrangian with µ = (P + Q)/2.

    The multiplier lives in ``loss.variables`` ("multiplier"); ``out.state_updates``
    carries its new value, assigned by :meth:`apply_state_updates` after the critic step.
    """

    name = "sobolev"
    required_output_dim = 1
    jacobian = "critic"
    needs_fake_gradients = True

    def __init__(self, rho=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.rho = _non_negative(rho, "rho")
        self.multiplier = self._add_state("multiplier", 0.0)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho}

    def _losses(self, p, mode):
        generator_loss = baselines.sobolev_generator_loss(p.real, p.fakes[0])
        if mode == "generator":
            return -generator_loss, generator_loss, {"ipm": generator_loss}, {}
        critic_loss, new_multiplier = baselines.sobolev_critic_loss(
            p.real, p.fakes[0], p.real_jacobian_sq, p.fake_grad_sq, self.multiplier, self.rho)
        omega = baselines.sobolev_constraint(p.real_jacobian_sq, p.fake_grad_sq)
        metrics = {"ipm": generator_loss, "sobolev_constraint": omega, "sobolev_multiplier": new_multiplier}
        return critic_loss, generator_loss, metrics, {"multiplier": new_multiplier}


LOSSES = {
    cls.name: cls
    for cls in (MMDLoss, RepulsiveLoss, BoundedRepulsiveLoss, BoundedMMDLoss, SMMDLoss, SWGANLoss, RepGPLoss,
                GCMMDLoss, WGANGPLoss, CramerLoss, SobolevLoss, HingeLoss, NonSaturatingLoss)
}


def get(identifier, **params):
    """Returns a GANLoss.

    Args:
      identifier: a name in ``LOSSES``, a :class:`GANLoss` (returned as is), or a
        config dict ``{"class_name": name, "config": {...}}`` (see :func:`serialize`).
      **params: constructor arguments for a name.

    Raises:
      ValueError: unknown name (lists the accepted ones) or invalid parameters.
    """
    if isinstance(identifier, GANLoss):
        if params:
            raise ValueError(f"Expected no extra parameters with a GANLoss instance. Received: `params={params}`")
        return identifier
    if isinstance(identifier, dict):
        if not {"class_name", "config"} <= set(identifier):
            raise ValueError("Expected a loss config dict with keys 'class_name' and 'config'. "
                             f"Received: `identifier={identifier!r}`")
        return get(identifier["class_name"], **{**identifier["config"], **params})
    if not isinstance(identifier, str) or identifier not in LOSSES:
        raise ValueError(f"Expected `loss` to be one of {sorted(LOSSES)}. Received: `loss={identifier!r}`")
    try:
        return LOSSES[identifier](**params)
    except TypeError as error:
        raise ValueError(f"Invalid parameters for loss {identifier!r}: {error}. Received: `params={params}`") from None


def serialize(loss):
    """Config dict ``{"class_name": loss.name, "config": loss.get_config()}``."""
    return {"class_name": loss.name, "config": loss.get_config()}
