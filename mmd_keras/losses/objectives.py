"""The GANLoss base class: what the model calls; one subclass per loss family lives in
:mod:`~mmd_keras.losses.kernel_objectives` (MMD family) and
:mod:`~mmd_keras.losses.baseline_objectives`; :mod:`~mmd_keras.losses.registry` names them.

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

from mmd_keras.losses import penalties

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
