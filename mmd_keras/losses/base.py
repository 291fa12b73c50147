"""The GANLoss base class: the one forward pass every loss shares, and its contract.

A loss object is called as::

    out = loss(critic, real_images, fake_images, seed=seed, mode="both")
    out.critic_loss, out.generator_loss, out.metrics, out.state_updates

Conventions: ``x`` / ``real_*`` are data, ``y`` / ``fake_*`` generator samples; the
critic maps images [b, ...] -> features [b, s]. The critic runs **once** per call on
the stacked batch [real; fake (; fake₂) (; interpolates)], so spectral-norm state
advances once per call; penalized critics must not mix samples (no batch norm). In
"generator" mode without a real-batch Jacobian the real half runs apart, after the fakes,
with ``training=False`` and off the gradient path (its input gradient was wasted work).
``seed`` (int32 [2]) drives :func:`mmd_keras.rng.uniform01` for the interpolation
weights α ~ U(0, 1) (the same numbers with and without XLA), so a step is reproducible
from its seed. ``mode``: "critic" (penalties computed), "generator" (penalties
skipped; only the generator loss is meaningful), "both" (one forward pass, both
losses, paper 3's joint update). ``feature_gather`` (e.g. an all-gather across
replicas) is applied to the real and fake features before kernels and means;
gradient penalties and Jacobians are computed locally. All losses are float32
whatever the critic's dtype.

The contract between :class:`GANLoss` and a subclass
----------------------------------------------------
A subclass declares, as class attributes, what the forward pass must compute:

* ``name`` — its registry name; ``parameters`` — every constructor keyword it accepts
  (the registry checks ``losses.get(name, **params)`` against it).
* ``required_output_dim`` — 1 for losses of a scalar critic, else None.
* ``takes_kernel`` — True for the MMD family (constructor takes ``kernel``).
* ``num_fake_batches`` — 2 for the Cramér GAN, else 1.
* ``jacobian`` — None; "real" (per-sample ‖J_h(x)‖²_F at the real batch in every
  mode); "critic" (the same, critic modes only); "full" (the whole Jacobian, GC-MMD).
* ``needs_fake_gradients`` — per-sample ‖∇f(y)‖² at the fake batch (critic modes).
* ``legacy_gp_epsilon`` — the constant under paper 1's legacy gradient norm.

and implements ``_loss_terms(p, mode)`` on a :class:`CriticPass` ``p`` (fields it did not
request are None), returning ``(critic_loss, generator_loss, metrics, state_updates)``;
optionally ``_penalty_values(hat_features, p)``, the per-sample function whose input
gradient the gradient penalty constrains (default: the 1-d critic output). The base
class adds the weighted gradient and activation penalties to the critic loss.
"""

import collections
import dataclasses
import weakref
from typing import List, Optional

import keras
import numpy as np
import tensorflow as tf

from mmd_keras import catalog, rng
from mmd_keras.errors import ArgumentError
from mmd_keras.losses import inputs, penalties

MODES = ("critic", "generator", "both")
#: Layer classes that apply a nonlinearity and have no ``activation`` attribute.
_ACTIVATION_LAYERS = (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.PReLU,
                      keras.layers.Softmax)

LossOutput = collections.namedtuple("LossOutput", ["critic_loss", "generator_loss", "metrics", "state_updates"])


@dataclasses.dataclass
class CriticPass:
    """What one critic forward pass gives :meth:`GANLoss._loss_terms`.

    Attributes:
      real: [m, s] float32 real features (after ``feature_gather``).
      fakes: list of [n, s] float32 fake features (after ``feature_gather``), one per fake batch.
      real_local: [b, s] this replica's real features (before ``feature_gather``).
      real_jacobian_sq: [b] per-sample ‖J_h(x_i)‖²_F at the real batch (``jacobian`` "real"/"critic").
      real_jacobian: [b, s, d] the critic Jacobian at the real batch, inputs flattened (``jacobian="full"``).
      fake_gradient_sq: [b] per-sample ‖∇f(y_i)‖² at the first fake batch (``needs_fake_gradients``).
      gradient_penalty: scalar, the unweighted gradient penalty (critic modes, weight > 0).
      activation_penalty: scalar, the unweighted L2 activation penalty (critic modes, weight > 0).
    """

    real: tf.Tensor
    fakes: List[tf.Tensor]
    real_local: tf.Tensor
    real_jacobian_sq: Optional[tf.Tensor] = None
    real_jacobian: Optional[tf.Tensor] = None
    fake_gradient_sq: Optional[tf.Tensor] = None
    gradient_penalty: Optional[tf.Tensor] = None
    activation_penalty: Optional[tf.Tensor] = None


def _applies_nonlinearity(layer):
    if isinstance(layer, _ACTIVATION_LAYERS):
        return True
    activation = getattr(layer, "activation", None)
    return callable(activation) and activation is not keras.activations.linear


def activation_layers(critic):
    """Names of the layers whose outputs paper 1's L2 activation penalty takes (footnote 19).

    The rule: every layer that applies a nonlinearity (a ReLU/LeakyReLU/ELU/PReLU/Softmax
    layer, or any layer whose ``activation`` is not linear), in layer order, then the
    critic's output layer unless it is already listed — so each activation after a
    nonlinearity and the final representation count once. Pre-activation outputs
    (convolutions, dense layers without activation), pooling, reshaping and linear
    layers are not activations. Nested models count as one layer.

    Args:
      critic: a functional ``keras.Model`` with one output.

    Returns:
      List of layer names.
    """
    names = [layer.name for layer in critic.layers if _applies_nonlinearity(layer)]
    output_name = _output_layer_name(critic)
    if output_name not in names:
        names.append(output_name)
    return names


def _output_layer_name(critic):
    return critic.outputs[0]._keras_history[0].name


def _call_critic(critic, images, training):
    if isinstance(critic, keras.Layer):
        return critic(images, training=training)
    return critic(images)


class GANLoss(keras.layers.Layer):
    """Base class of every loss; the subclass contract is in the module docstring.

    A loss is a Keras layer so that Keras tracks its state (the gradient-penalty weight, SMMD's
    ``coefficient``, Sobolev's ``multiplier``): as an attribute of a `keras.Model` (``MMDGAN``'s
    ``loss_object``) its variables are in ``model.variables`` and travel with ``model.save``,
    ``save_weights``, `keras.callbacks.BackupAndRestore` and ``tf.train.Checkpoint``. Like a
    `keras.metrics.Metric`, it creates its (scalar) variables in ``__init__``, in the
    distribution-strategy scope that is current then. It is called directly, not through
    ``Layer.__call__``: the critic is an argument, and the inputs keep their dtypes (no autocast).

    Args:
      gradient_penalty_weight: weight of the two-sided gradient penalty at
        interpolates (the witness GP for MMD losses, the critic GP for the others).
      activation_penalty_weight: weight of paper 1's L2 activation penalty
        (footnote 19) on the tensors :func:`activation_layers` names, for the real
        and the fake batch; needs a functional Keras critic.
      legacy_gp_axis: paper 1's code: gradient norms sqrt(Σg² + ε) over image height
        only (ε = 1e-5 for MMD and Cramér, 0 for WGAN-GP).
    """

    name = None
    parameters = catalog.PENALTY_KEYWORDS
    num_fake_batches = 1
    required_output_dim = None
    takes_kernel = False
    jacobian = None
    needs_fake_gradients = False
    legacy_gp_epsilon = penalties.LEGACY_GP_EPSILON
    default_gradient_penalty_weight = 0.0

    def __init__(self, gradient_penalty_weight=None, activation_penalty_weight=0.0, legacy_gp_axis=False):
        super().__init__(name=type(self).name, dtype="float32")
        if gradient_penalty_weight is None:
            gradient_penalty_weight = self.default_gradient_penalty_weight
        self._gradient_penalty_init = inputs.non_negative(gradient_penalty_weight, "gradient_penalty_weight")
        self.activation_penalty_weight = inputs.non_negative(activation_penalty_weight, "activation_penalty_weight")
        self.legacy_gp_axis = inputs.boolean(legacy_gp_axis, "legacy_gp_axis")
        self._state = {}
        # Activation views per critic. A WeakKeyDictionary is not a dict, so Keras does not track
        # the views as sub-layers (they share the critic's variables, which the critic owns).
        self._views = weakref.WeakKeyDictionary()
        # A positive gradient-penalty weight is a state variable (adjustable, e.g. by
        # mmd_keras.collapse); whether the penalty is computed at all is fixed at construction.
        self.gradient_penalty_weight_variable = None
        if self._gradient_penalty_init > 0:
            self.gradient_penalty_weight_variable = self._add_state(
                "gradient_penalty_weight", self._gradient_penalty_init, updatable=False)
        self.built = True  # no shape-dependent state: nothing to build

    @property
    def gradient_penalty_weight(self):
        """The current gradient-penalty weight: a Python float, the constructor's value until the
        state variable is changed (e.g. by :class:`mmd_keras.collapse.CollapseRecovery`)."""
        if self.gradient_penalty_weight_variable is None:
            return self._gradient_penalty_init
        value = float(self.gradient_penalty_weight_variable.numpy())
        # The variable is float32: report the exact constructor value while it is unchanged.
        return self._gradient_penalty_init if value == float(np.float32(self._gradient_penalty_init)) else value

    @property
    def regularization_coefficient(self):
        """``(name, variable)`` of the coefficient that scales this loss's regularization, or None.

        Losses with a ``coefficient`` state variable (SMMD, SWGAN: the weight of E‖J‖²_F) declare
        it; the others their gradient-penalty weight when it is a positive state variable (MMD-GP,
        WGAN-GP, ...); None for a loss without one (e.g. hinge, or a zero penalty weight).
        :class:`mmd_keras.collapse.CollapseRecovery` multiplies it.
        """
        if self.gradient_penalty_weight_variable is None:
            return None
        return "gradient_penalty_weight", self.gradient_penalty_weight_variable

    # ---- state -------------------------------------------------------------------------
    def _add_state(self, name, value, updatable=True):
        """A scalar float32 state variable (replicas hold its mean), tracked by Keras.

        ``updatable``: whether ``out.state_updates`` may assign it (:meth:`apply_state_updates`).
        """
        variable = self.add_weight(shape=(), dtype="float32", initializer=keras.initializers.Constant(float(value)),
                                   trainable=False, autocast=False, aggregation="mean", name=name)
        if updatable:
            self._state[name] = variable
        return variable

    def apply_state_updates(self, state_updates):
        """Assigns ``out.state_updates`` (dict name -> tensor) to the loss variables."""
        for key, value in state_updates.items():
            if key not in self._state:
                raise ValueError(f"Expected state names in {list(self._state)}. Received: `state_updates[{key!r}]`")
            self._state[key].assign(tf.cast(value, tf.float32))

    def save_own_variables(self, store):
        """Keras saving: the state variables by name (``gradient_penalty_weight``, ``coefficient``, ...)."""
        for variable in self.variables:
            store[variable.name] = variable

    def load_own_variables(self, store):
        """Keras loading: assigns the state variables by name; the names must match exactly."""
        variables = {variable.name: variable for variable in self.variables}
        saved = sorted(store.keys())
        if saved != sorted(variables):
            raise ValueError(f"Expected the saved state of loss {self.name!r} to hold {sorted(variables)}. "
                             f"Received: {saved} (was the model compiled with another loss?)")
        for name, variable in variables.items():
            variable.assign(store[name])

    # ---- config -------------------------------------------------------------------------
    def get_config(self):
        """The constructor arguments (exactly ``parameters``); state values are not config."""
        return {
            "gradient_penalty_weight": self._gradient_penalty_init,
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
        if not isinstance(critic, keras.Model) or not getattr(critic, "inputs", None):
            raise ValueError(
                "Expected a functional keras.Model critic for `activation_penalty_weight > 0` "
                f"(its layer activations are penalized). Received: `critic={critic!r}`"
            )
        if critic not in self._views:
            output_name = _output_layer_name(critic)
            # The critic's output is the view's last output: the features, penalized once.
            outputs = [critic.get_layer(name).output for name in activation_layers(critic) if name != output_name]
            self._views[critic] = keras.Model(critic.inputs, outputs + [critic.outputs[0]],
                                              name=f"{critic.name}_activations")
        return self._views[critic]

    def _penalty_values(self, hat_features, p):
        """Per-sample scalar function whose input gradient is penalized: [b]."""
        return inputs.scalar_output(hat_features, "critic output")

    def _forward(self, critic, real, fakes, seed, mode, feature_gather, training):
        critic_mode = mode != "generator"
        use_gp = critic_mode and self.gradient_penalty_weight_variable is not None
        use_l2 = critic_mode and self.activation_penalty_weight > 0
        need_jacobian = self.jacobian in ("real", "full") or (self.jacobian == "critic" and critic_mode)
        need_fake_gradients = critic_mode and self.needs_fake_gradients
        batches = [real] + list(fakes)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(real)
            if need_fake_gradients:
                tape.watch(fakes[0])
            if use_gp:
                alpha = rng.uniform01(tf.shape(real)[:1], seed)
                interpolates = penalties.interpolate(real, fakes[0], alpha)
                tape.watch(interpolates)
                batches.append(interpolates)
            if mode == "generator" and not need_jacobian:
                features = self._generator_pass(critic, real, fakes, training)
            elif use_l2:
                outputs = _call_critic(self._activation_view(critic), tf.concat(batches, axis=0), training)
                *activations, features = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            else:
                features = _call_critic(critic, tf.concat(batches, axis=0), training)
            features = self._check_features(tf.cast(features, tf.float32))
            sizes = [tf.shape(t)[0] for t in batches]
            parts = tf.split(features, sizes, axis=0)
            gather = feature_gather or (lambda t: t)
            p = CriticPass(real=gather(parts[0]), fakes=[gather(f) for f in parts[1:1 + len(fakes)]],
                           real_local=parts[0])
            if need_jacobian:
                columns = [tf.reduce_sum(parts[0][:, k]) for k in range(features.shape[1])]
            if need_fake_gradients:
                fake_column = tf.reduce_sum(parts[1])
            if use_gp:
                penalty_sum = tf.reduce_sum(self._penalty_values(parts[-1], p))
        if need_jacobian and self.jacobian == "full":
            jacobian = tf.stack([tf.cast(tape.gradient(c, real), tf.float32) for c in columns], axis=1)
            p.real_jacobian = tf.reshape(jacobian, [tf.shape(jacobian)[0], len(columns), -1])
        elif need_jacobian:
            p.real_jacobian_sq = penalties.sum_squared_gradients(tape, columns, real)
        if need_fake_gradients:
            p.fake_gradient_sq = penalties.sum_squared_gradients(tape, [fake_column], fakes[0])
        if use_gp:
            p.gradient_penalty = penalties.gradient_penalty_from_gradients(
                tape.gradient(penalty_sum, interpolates), legacy_gp_axis=self.legacy_gp_axis,
                legacy_epsilon=self.legacy_gp_epsilon)
        if use_l2:
            split = [tf.split(tf.cast(a, tf.float32), sizes, axis=0) for a in activations + [features]]
            p.activation_penalty = sum(
                penalties.l2_activation_penalty([s[i] for s in split]) for i in range(1 + len(fakes)))
        del tape
        return p

    @staticmethod
    def _generator_pass(critic, real, fakes, training):
        """Critic features ``[real; fakes]`` for the generator's loss, the real half off the gradient path.

        The generator's gradient never flows through the real half, but in one stacked pass every
        layer's input gradient is computed for the whole batch (half of it wasted). The fakes run
        first with ``training`` (spectral-norm vectors advance once, as in a stacked pass); the
        real half then reads the advanced state with ``training=False`` and stays off the tape.
        """
        fake_features = _call_critic(critic, tf.concat(list(fakes), axis=0) if len(fakes) > 1 else fakes[0],
                                     training)
        real_features = tf.stop_gradient(_call_critic(critic, real, False))
        return tf.concat([tf.cast(real_features, fake_features.dtype), fake_features], axis=0)

    def check_output_dim(self, output_dim):
        """The one rule on the critic's output width this loss needs (``required_output_dim``):
        checked here for the features it receives and by ``MMDGAN.compile`` for a functional
        critic before any step runs.

        Args:
          output_dim: the critic's output width s, or None when unknown (no check).

        Raises:
          ArgumentError: ``output_dim`` (owner "critic") differs from ``required_output_dim``.
        """
        required = self.required_output_dim
        if required is not None and output_dim is not None and int(output_dim) != required:
            raise ArgumentError("output_dim", f"Expected a critic with output dimension {required} "
                                f"for loss {self.name!r}. Received: critic output dimension "
                                f"{output_dim}", owner="critic")

    def _check_features(self, features):
        if features.shape.rank != 2:
            raise ValueError(f"Expected critic features [batch, s]. Received: `features.shape={features.shape}`")
        self.check_output_dim(features.shape[1])
        return features

    def call(self, critic, real_images, fake_images, *, seed, mode="both", fake_images_2=None,
             feature_gather=None, training=True):
        """Computes both losses (see the module docstring).

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
        real, fake = inputs.check_image_pair(real_images, fake_images)
        fakes = [fake]
        if self.num_fake_batches == 2:
            if fake_images_2 is None:
                raise ValueError(f"Expected `fake_images_2` (a second fake batch) for loss {self.name!r}. "
                                 "Received: `fake_images_2=None`")
            fakes.append(inputs.check_image_pair(real_images, fake_images_2, "fake_images_2")[1])
        elif fake_images_2 is not None:
            raise ValueError(f"Expected `fake_images_2=None` for loss {self.name!r}, which uses one fake batch. "
                             "Received a tensor")
        p = self._forward(critic, real, fakes, inputs.seed_pair(seed), mode, feature_gather, training)
        critic_loss, generator_loss, metrics, state_updates = self._loss_terms(p, mode)
        metrics = dict(metrics)
        if p.gradient_penalty is not None:
            critic_loss += self.gradient_penalty_weight_variable * p.gradient_penalty
            metrics["gradient_penalty"] = p.gradient_penalty
        if p.activation_penalty is not None:
            critic_loss += self.activation_penalty_weight * p.activation_penalty
            metrics["activation_penalty"] = p.activation_penalty
        return LossOutput(tf.cast(critic_loss, tf.float32), tf.cast(generator_loss, tf.float32), metrics,
                          state_updates)

    def __call__(self, *args, **kwargs):
        """:meth:`call`, directly: not through `Layer.__call__` (see the class docstring)."""
        return self.call(*args, **kwargs)

    def _loss_terms(self, p, mode):
        """Returns (critic_loss, generator_loss, metrics dict, state_updates dict); see the contract."""
        raise NotImplementedError
