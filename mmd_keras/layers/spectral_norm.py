"""Spectrally normalized Conv2D / Dense / Conv2DTranspose: PIM, PICO and the learned gain.

``W_eff = g · W / σ(W)`` with

* ``sn_mode="pim"``: ``σ`` of the kernel reshaped to ``[kh·kw·c_in, c_out]`` (Miyato et al., 2018,
  used by papers 1–2), ``g = γ`` (learned gain) or 1;
* ``sn_mode="pico"``: ``σ`` of the convolution operator itself (paper 3 App. C), ``g = C·γ`` with the
  per-layer multiplier ``C = pico_multiplier`` (networks pass ``C = 64^(1/L)``, paper 3's code);
* ``sn_mode="none"``: the plain layer (use :class:`~mmd_keras.layers.SpectralNormConstraint` as
  ``kernel_constraint=`` for the projection variant).

``learned_gain=True`` is paper 2's *spectral parametrization*: a trainable scalar ``γ`` (init 1).

**Why not** ``keras.layers.SpectralNormalization``: that wrapper *assigns* ``W/σ`` into the kernel
variable on each training call, so the optimizer updates the already-normalized kernel and no
gradient flows through ``σ(W)``. Here the kernel variable stays unnormalized and ``W/σ(W)`` is
computed inside the forward pass, so ``∂ output/∂W`` contains the ``−W·∂σ/∂W/σ²`` term, as in
Miyato's formulation that the papers use (``u``, ``v`` / ``x`` are constants for the gradient).

State: the power-iteration vector is non-trainable, float32 even under mixed precision, and is advanced by
``power_iterations`` rounds once per call with ``training=True`` (inference reads it only).
It is created with ``aggregation="only_first_replica"`` — TF's setting for values computed
identically on every replica (like the optimizer's iteration counter): the update depends only on
the (mirrored) kernel and the previous vector, never on the inputs, so every replica computes the
same value and the first replica's value is written to all of them; every replica therefore ends
a step with the same state. Under mixed precision the kernel read inside ``call`` is the
autocast one, so ``σ`` is the norm of exactly the operator applied.

The vector: PIM keeps ``sn_u`` ``[1, c_out]``. PICO runs the power iteration on the operator
``A`` (paper 3 App. C.1: ``u = Av/‖Av‖``, ``v = Aᵀu/‖Aᵀu‖``) and must keep one of its two
vectors between steps; ``pico_vector`` chooses which: ``"input"`` keeps ``sn_x`` (one input
sample ``[1, H, W, c_in]``), ``"output"`` keeps ``sn_y`` (one output sample ``[1, H', W', c_out]``,
iterating on ``Aᵀ``, whose norm is the same), and ``"smaller"`` (default, as paper 3's code does)
the side with fewer entries, input on ties. Every stride-2 critic convolution has a smaller
output than input, and the last dense layer an ``output_dim``-sized one: for the paper-3 CIFAR
critic (Table S1, 32 px) the PICO state is 117,776 floats instead of 183,296 (−36%).
"""

import math

import keras
import tensorflow as tf

from mmd_keras.layers import conv, power_iteration

#: ``sn_mode`` of the SN layers. The network builders add "default" and "constraint"
#: (``mmd_keras.networks.SN_MODES``).
SN_LAYER_MODES = ("none", "pim", "pico")
#: Where PICO keeps its persistent vector (see the module docstring).
PICO_VECTORS = ("smaller", "input", "output")


def validate_sn_mode(sn_mode, accepted=SN_LAYER_MODES, arg="sn_mode"):
    """Raises ``ValueError`` naming ``arg`` unless ``sn_mode`` is one of ``accepted``."""
    if sn_mode not in accepted:
        raise ValueError(
            f"Expected `{arg}` to be one of {accepted}. Received: `{arg}={sn_mode!r}`"
        )
    return sn_mode


class _SpectralNormMixin:
    """Shared state, validation and normalization of the three SN layers."""

    def __init__(self, *args, sn_mode="pim", learned_gain=False, power_iterations=1,
                 pico_multiplier=1.0, pico_vector="smaller", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_sn(sn_mode, learned_gain, power_iterations, pico_multiplier)
        self.pico_vector = validate_sn_mode(pico_vector, PICO_VECTORS, "pico_vector")
        self.pico_side = None  # "input" or "output" once built under PICO

    def build(self, input_shape):
        super().build(input_shape)
        self._build_sn(input_shape)

    def get_config(self):
        return {**super().get_config(), **self._sn_config()}

    # Keras's Conv2D/Dense save only kernel and bias (their quantization-aware versions), so a
    # `.keras` file or `save_weights` would drop the learned gain and the power-iteration
    # vector. The generic Layer methods save every variable, in creation order.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def _init_sn(self, sn_mode, learned_gain, power_iterations, pico_multiplier):
        validate_sn_mode(sn_mode)
        if not isinstance(power_iterations, int) or power_iterations < 1:
            raise ValueError(
                "Expected `power_iterations` to be an int >= 1. "
                f"Received: `power_iterations={power_iterations!r}`"
            )
        if not pico_multiplier > 0:
            raise ValueError(
                "Expected `pico_multiplier` > 0. Received: "
                f"`pico_multiplier={pico_multiplier!r}`"
            )
        if learned_gain and sn_mode == "none":
            raise ValueError(
                "Expected `sn_mode` 'pim' or 'pico' with `learned_gain=True` (the gain "
                f"multiplies W/σ(W)). Received: `sn_mode={sn_mode!r}`"
            )
        if sn_mode != "none" and getattr(self, "data_format", "channels_last") != "channels_last":
            raise ValueError(
                "Expected `data_format='channels_last'` with spectral normalization. "
                f"Received: `data_format={self.data_format!r}`"
            )
        if sn_mode != "none" and getattr(self, "groups", 1) != 1:
            raise ValueError(
                f"Expected `groups=1` with spectral normalization. Received: `groups={self.groups}`"
            )
        self.sn_mode = sn_mode
        self.learned_gain = bool(learned_gain)
        self.power_iterations = power_iterations
        self.pico_multiplier = float(pico_multiplier)

    def _sn_config(self):
        return {
            "sn_mode": self.sn_mode,
            "learned_gain": self.learned_gain,
            "power_iterations": self.power_iterations,
            "pico_multiplier": self.pico_multiplier,
            "pico_vector": self.pico_vector,
        }

    def _build_sn(self, input_shape):
        if self.learned_gain:
            self.gain = self.add_weight(
                name="gain", shape=(), initializer="ones", trainable=True, dtype="float32",
                autocast=False,
            )
        normal = keras.initializers.RandomNormal(stddev=1.0)
        if self.sn_mode == "pim":
            self.sn_u = self.add_weight(
                name="sn_u", shape=(1, self.kernel.shape[-1]), initializer=normal,
                trainable=False, dtype="float32", autocast=False,
                aggregation="only_first_replica",
            )
        elif self.sn_mode == "pico":
            self._sn_input_shape = (1,) + tuple(input_shape[1:])
            if any(d is None for d in self._sn_input_shape):
                raise ValueError(
                    "Expected a fully known input shape (except batch) for `sn_mode='pico'` "
                    "(the power iteration runs on the operator of one sample). "
                    f"Received: `input_shape={input_shape}`"
                )
            output_shape = tuple(self.compute_output_shape(self._sn_input_shape))
            side = self.pico_vector
            if side == "smaller":
                fewer_inputs = math.prod(self._sn_input_shape) <= math.prod(output_shape)
                side = "input" if fewer_inputs else "output"
            self.pico_side = side
            name, shape = ("sn_x", self._sn_input_shape) if side == "input" else ("sn_y", output_shape)
            setattr(self, name, self.add_weight(
                name=name, shape=shape, initializer=normal, trainable=False,
                dtype="float32", autocast=False, aggregation="only_first_replica",
            ))

    @property
    def sn_vector(self):
        """The persistent power-iteration variable: ``sn_u`` (PIM), ``sn_x`` or ``sn_y`` (PICO)."""
        if self.sn_mode == "pim":
            return self.sn_u
        if self.sn_mode == "pico":
            return self.sn_x if self.pico_side == "input" else self.sn_y
        return None

    def _operator_fns(self, kernel):
        """``(operator, adjoint)`` of the layer's linear part; overridden per layer."""
        raise NotImplementedError

    def spectral_norm(self, training=False):
        """The current estimate ``σ(W)`` (float32 scalar) for the layer's ``sn_mode``.

        With ``training=True`` the vector is advanced ``power_iterations`` rounds and stored.
        """
        kernel = tf.cast(tf.convert_to_tensor(self.kernel), tf.float32)
        if self.sn_mode == "pim":
            matrix = tf.reshape(kernel, [-1, kernel.shape[-1]])
            u, v = power_iteration.matrix_power_iteration(
                matrix, self.sn_u, self.power_iterations if training else 0
            )
            if training:
                self.sn_u.assign(u)
            return power_iteration.matrix_sigma(matrix, u, v)
        if self.sn_mode == "pico":
            operator, adjoint = self._operator_fns(kernel)
            vector = self.sn_vector
            if self.pico_side == "output":  # iterate on Aᵀ: σ(Aᵀ) = σ(A)
                operator, adjoint = adjoint, operator
            x = power_iteration.operator_power_iteration(
                operator, adjoint, vector, self.power_iterations if training else 0
            )
            if training:
                vector.assign(x)
            return power_iteration.operator_sigma(operator, x)
        raise ValueError("`spectral_norm()` needs `sn_mode` 'pim' or 'pico'. Received: "
                         f"`sn_mode={self.sn_mode!r}`")

    def effective_gain(self):
        """``g`` of ``W_eff = g·W/σ``: ``γ`` (or 1) times ``C`` under PICO; float32 scalar."""
        gain = tf.constant(self.pico_multiplier if self.sn_mode == "pico" else 1.0, tf.float32)
        if self.learned_gain:
            gain = gain * tf.convert_to_tensor(self.gain)
        return gain

    def normalized_kernel(self, training=False):
        """The kernel used in the forward pass, in the layer's compute dtype."""
        kernel = tf.convert_to_tensor(self.kernel)
        if self.sn_mode == "none":
            return kernel
        sigma = self.spectral_norm(training=training)
        scale = self.effective_gain() / sigma
        return tf.cast(tf.cast(kernel, tf.float32) * scale, kernel.dtype)

    def _finish(self, outputs):
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


_SN_DOC = """
    Args (in addition to those of the Keras layer):
        sn_mode: "none", "pim" (reshaped-kernel power iteration) or "pico" (operator power
            iteration, paper 3).
        learned_gain: trainable scalar γ (init 1) multiplying W/σ(W) (paper 2).
        power_iterations: rounds per training call (default 1).
        pico_multiplier: C of paper 3 (W_eff = C·W/σ) under "pico"; networks pass 64^(1/L).
        pico_vector: "smaller" (default), "input" or "output": the side of the operator whose
            vector PICO keeps (``sn_x`` or ``sn_y``; see the module docstring).
"""


@keras.saving.register_keras_serializable(package="mmd_keras")
class SNConv2D(_SpectralNormMixin, keras.layers.Conv2D):
    __doc__ = "``keras.layers.Conv2D`` with spectral normalization of its kernel.\n" + _SN_DOC

    def _operator_fns(self, kernel):
        return power_iteration.conv2d_operator(
            kernel, self._sn_input_shape, self.strides, self.padding, self.dilation_rate
        )

    def call(self, inputs, training=False):
        return self._finish(conv.convolution(self, inputs, self.normalized_kernel(training)))


@keras.saving.register_keras_serializable(package="mmd_keras")
class SNConv2DTranspose(_SpectralNormMixin, keras.layers.Conv2DTranspose):
    __doc__ = ("``keras.layers.Conv2DTranspose`` with spectral normalization; PIM reshapes the "
               "``[kh, kw, c_out, c_in]`` kernel to ``[kh·kw·c_out, c_in]``.\n" + _SN_DOC)

    def _operator_fns(self, kernel):
        output_shape = self.compute_output_shape(self._sn_input_shape)
        return power_iteration.conv2d_transpose_operator(
            kernel, output_shape, self.strides, self.padding, self.dilation_rate
        )

    def call(self, inputs, training=False):
        return self._finish(conv.conv_transpose(self, inputs, self.normalized_kernel(training)))


@keras.saving.register_keras_serializable(package="mmd_keras")
class SNDense(_SpectralNormMixin, keras.layers.Dense):
    __doc__ = ("``keras.layers.Dense`` (2-D inputs) with spectral normalization; PIM and PICO "
               "estimate the same σ (the kernel is the operator), PIM keeping ``[1, c_out]``, "
               "PICO the side ``pico_vector`` says.\n" + _SN_DOC)

    def build(self, input_shape):
        if self.sn_mode != "none" and len(input_shape) != 2:
            raise ValueError(
                "Expected 2-D inputs [batch, features] for a normalized `SNDense`. "
                f"Received: `input_shape={input_shape}`"
            )
        super().build(input_shape)

    def _operator_fns(self, kernel):
        return power_iteration.dense_operator(kernel)

    def call(self, inputs, training=False):
        return self._finish(tf.matmul(inputs, self.normalized_kernel(training)))
