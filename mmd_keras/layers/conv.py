"""Fast CPU convolutions: transposed convolutions and input gradients as stride-1 convolutions.

TensorFlow's CPU kernel ``Conv2DBackpropInput`` computes every ``conv2d_transpose`` and every
convolution's input gradient (a critic's backward pass, a gradient penalty, the generator's
step through the critic). With TF's Eigen CPU kernels (TF's default on CPUs without AVX-512/AMX,
or ``TF_ENABLE_ONEDNN_OPTS=0``) it runs at 1–85 % of a forward convolution of the same FLOPs at
the library's shapes (docs/performance.md). This module rewrites both with forward
convolutions, exactly (same sums, float32 round-off only):

**Phase decomposition** of a stride-``s`` transposed convolution (the "sub-kernel" trick):
output position ``o = s·m + r`` (phase ``r ∈ [0, s)``) receives
``y[s·m + r] = Σ_j x[m − j] · w[s·j + r + p]`` with ``p`` the forward convolution's leading
padding, i.e. a stride-1 correlation of ``x`` with the phase's sub-kernel
``w[r + p :: s]`` (reversed). Per spatial axis the phases' taps cover the offsets
``d = −j ∈ [d_min, d_max]``. Either one exact stride-1 VALID convolution per phase, or (when no
phase has zero taps) one convolution over the common window with the ``s²`` phase kernels
stacked on the output channels; then ``depth_to_space(s)`` and a crop give the transposed
convolution. :func:`conv2d_transpose` gathers the sub-kernels (``tf.gather``) from the layer's
own kernel, so everything is differentiable to any order by autodiff.

**Input gradients**: :func:`conv2d` is ``tf.nn.conv2d`` with a ``tf.custom_gradient`` whose
input gradient is :func:`conv2d_transpose` (itself made of :func:`conv2d`, so the gradient of
the gradient is fast too, as gradient penalties need) and whose filter gradient is TF's
``Conv2DBackpropFilter`` (fast, with TF's registered second-order gradient).

Both are the default only where they are faster (:func:`default_implementation`, decided at
build time): ``"native"`` where a GPU is visible (cuDNN's own transposed convolution is fast)
or TF's oneDNN CPU kernels are on (their backward kernel runs near the forward rate),
``"phases"`` on CPUs running TF's Eigen kernels, except on image-side layers (≤ 3 channels).
The switch: ``implementation=`` of the layers, or :func:`set_default_implementation`
(``"auto"``, ``"phases"``, ``"native"``) before building.
"""

import contextlib
import threading

import keras
import numpy as np
import tensorflow as tf

IMPLEMENTATIONS = ("auto", "phases", "native")
_default = {"implementation": "auto"}
_tracing = threading.local()


def set_default_implementation(implementation):
    """Sets the implementation layers with ``implementation="auto"`` resolve to at build time.

    Args:
        implementation: ``"auto"`` (see :func:`default_implementation`), ``"phases"`` or
            ``"native"`` (TF's own kernels).

    Returns:
        The previous setting (to restore it).
    """
    _check_implementation(implementation)
    previous, _default["implementation"] = _default["implementation"], implementation
    return previous


def _check_implementation(implementation):
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"Expected `implementation` to be one of {IMPLEMENTATIONS}. "
                         f"Received: `implementation={implementation!r}`")
    return implementation


def onednn_enabled():
    """Whether TensorFlow runs its oneDNN CPU kernels (``TF_ENABLE_ONEDNN_OPTS``, x86 default)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - TF builds without the port module
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


def default_implementation():
    """``"phases"`` or ``"native"``: the fast choice for this process (or the set default).

    ``"native"`` where a GPU is visible (cuDNN) or TF's oneDNN CPU kernels are on (their
    ``Conv2DBackpropInput`` runs at the forward convolution's rate); ``"phases"`` on CPUs with
    TF's Eigen kernels (``TF_ENABLE_ONEDNN_OPTS=0``, non-x86 builds), whose
    ``Conv2DBackpropInput`` runs at 1–70 % of the forward rate (docs/performance.md).
    """
    if _default["implementation"] != "auto":
        return _default["implementation"]
    if tf.config.list_logical_devices("GPU") or onednn_enabled():
        return "native"
    return "phases"


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(int(v) for v in value)


def _leading_pad(in_size, out_size, kernel, stride, padding):
    """Leading zero padding of the forward conv ``in_size → out_size`` (TF's SAME/VALID rule)."""
    if padding == "VALID":
        return 0
    return max((out_size - 1) * stride + kernel - in_size, 0) // 2


def _phase_taps(kernel, stride, pad):
    """Per axis: offsets ``[d_min, d_max]`` and tap index ``[D, stride]`` (``kernel`` = no tap).

    Phase ``r`` reads ``x[m + d]`` with tap ``t = r + pad − s·d`` for every ``0 ≤ t < kernel``.
    """
    taps = {(r, (r + pad - t) // stride): t for r in range(stride) for t in range(kernel)
            if (r + pad - t) % stride == 0}
    offsets = [d for _, d in taps]
    d_min, d_max = min(offsets), max(offsets)
    index = np.full([d_max - d_min + 1, stride], kernel, np.int32)
    for (r, d), t in taps.items():
        index[d - d_min, r] = t
    return d_min, d_max, index


def _axis_plan(in_size, out_size, kernel, stride, padding):
    """Per axis: phase windows and tap indices of the decomposition (see the module docstring)."""
    pad = _leading_pad(out_size, in_size, kernel, stride, padding)
    d_min, d_max, index = _phase_taps(kernel, stride, pad)
    m = -(-out_size // stride)  # outputs per phase (ceil)
    lo, hi = max(0, -d_min), max(0, m - 1 + d_max - (in_size - 1))
    return {"pad": (lo, hi), "window": (d_min + lo, m + d_max + lo), "index": index,
            "phases": [_phase_window(index[:, r], d_min + lo, m, kernel) for r in range(stride)]}


def _phase_window(taps, start, m, kernel):
    """(slice start, slice stop, tap indices) of one phase: its own contiguous taps only."""
    used = np.flatnonzero(taps != kernel)
    first, last = int(used[0]), int(used[-1])
    return start + first, start + last + m, taps[first:last + 1]


def conv2d_transpose(inputs, kernel, output_shape, strides, padding, fused=None):
    """``tf.nn.conv2d_transpose`` (NHWC, no dilation) as stride-1 convolutions + depth_to_space.

    Args:
        inputs: ``[b, h, w, c_in]`` with static ``h, w``.
        kernel: ``[kh, kw, c_out, c_in]`` (``tf.nn.conv2d_transpose`` / Keras layout).
        output_shape: ``(b, H, W, c_out)`` with static ``H, W``.
        strides: int or pair of equal ints.
        padding: ``"SAME"`` or ``"VALID"`` (any case).
        fused: True → one convolution over the union of the phases' windows with the ``s²``
            phase kernels stacked on the output channels (zero taps where a phase has none);
            False → one exact convolution per phase, concatenated; None → fused when every
            phase has the same taps window (no zero taps), else per phase.

    Returns:
        ``[b, H, W, c_out]``, equal to ``tf.nn.conv2d_transpose`` up to float round-off.
    """
    padding = padding.upper()
    strides = _pair(strides)
    if strides[0] != strides[1]:
        raise ValueError(f"Expected equal strides. Received: `strides={strides}`")
    kh, kw, c_out, c_in = (int(d) for d in kernel.shape)
    plans = [_axis_plan(int(inputs.shape[1 + a]), int(output_shape[1 + a]), k, s, padding)
             for a, (k, s) in enumerate(zip((kh, kw), strides))]
    if fused is None:
        fused = all((plan["index"] != k).all() for plan, k in zip(plans, (kh, kw)))
    w = tf.transpose(kernel, [0, 1, 3, 2])           # [kh, kw, c_in, c_out]
    x = tf.pad(inputs, [[0, 0], list(plans[0]["pad"]), list(plans[1]["pad"]), [0, 0]])
    if fused:
        # Stacked phase kernels [D0, D1, c_in, s²·c_out], channel order (r0, r1, c) of depth_to_space.
        w = tf.pad(w, [[0, 1], [0, 1], [0, 0], [0, 0]])  # tap index kh / kw = the zero tap
        w = tf.gather(tf.gather(w, plans[0]["index"], axis=0), plans[1]["index"], axis=2)
        d0, d1 = plans[0]["index"].shape[0], plans[1]["index"].shape[0]
        w = tf.reshape(tf.transpose(w, [0, 2, 4, 1, 3, 5]), [d0, d1, c_in, -1])
        (a0, b0), (a1, b1) = plans[0]["window"], plans[1]["window"]
        y = conv2d(x[:, a0:b0, a1:b1, :], w, 1, "VALID")
    else:
        outputs = []
        for a0, b0, taps0 in plans[0]["phases"]:
            for a1, b1, taps1 in plans[1]["phases"]:
                sub = tf.gather(tf.gather(w, taps0, axis=0), taps1, axis=1)
                outputs.append(conv2d(x[:, a0:b0, a1:b1, :], sub, 1, "VALID"))
        y = outputs[0] if len(outputs) == 1 else tf.concat(outputs, axis=-1)
    if strides[0] > 1:
        y = tf.nn.depth_to_space(y, strides[0])
    return y[:, :int(output_shape[1]), :int(output_shape[2]), :]


@contextlib.contextmanager
def forward_only():
    """Within it, :func:`conv2d` traces as a plain ``tf.nn.conv2d``, without its custom gradient.

    For graphs that are never differentiated, e.g. an exported generator's serving signatures:
    a SavedModel cannot store a ``tf.custom_gradient``'s gradient of the gradient, so every
    load of a graph holding one warns (once per function) that a gradient "will likely fail".
    The forward values are the same; a gradient requested anyway is TF's registered one.
    """
    previous = getattr(_tracing, "forward_only", False)
    _tracing.forward_only = True
    try:
        yield
    finally:
        _tracing.forward_only = previous


def conv2d(inputs, kernel, strides, padding):
    """``tf.nn.conv2d`` (NHWC, no dilation) whose input gradient is :func:`conv2d_transpose`.

    Args:
        inputs: ``[b, h, w, c_in]`` with static ``h, w``.
        kernel: ``[kh, kw, c_in, c_out]``.
        strides: int or pair; padding: ``"SAME"`` or ``"VALID"``.

    Returns:
        ``[b, h', w', c_out]``; gradients of any order by autodiff, the input gradient through
        stride-1 forward convolutions, the filter gradient through ``Conv2DBackpropFilter``.
    """
    strides, padding = list(_pair(strides)), padding.upper()
    if getattr(_tracing, "forward_only", False):
        return tf.nn.conv2d(inputs, kernel, strides=strides, padding=padding)

    @tf.custom_gradient
    def forward(x, w):
        def grad(upstream):
            d_x = conv2d_transpose(upstream, w, x.shape, strides, padding)
            d_w = tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=tf.shape(w), out_backprop=upstream,
                strides=[1, *strides, 1], padding=padding)
            return d_x, d_w

        return tf.nn.conv2d(x, w, strides=strides, padding=padding), grad

    return forward(inputs, kernel)


def _phases_supported(layer):
    """Whether a Keras conv layer's configuration is one the phase decomposition covers."""
    return (layer.data_format == "channels_last" and tuple(layer.dilation_rate) == (1, 1)
            and getattr(layer, "groups", 1) == 1 and getattr(layer, "output_padding", None) is None
            and layer.strides[0] == layer.strides[1])


#: "auto" keeps TF's kernel for layers with this few channels on the image side (a generator's
#: output layer, a critic's first layer): there Eigen's Conv2DBackpropInput is fast (1.5× the
#: forward rate for 64 → 1 channel, 16 → 32 px) and the phases slow (0.3×).
IMAGE_CHANNELS = 3
#: "auto" keeps TF's kernel for layers with fewer channels than this on either side: the
#: phases' extra ops (one convolution per phase, pads, depth_to_space) cost more than Eigen's
#: kernel loses on small layers. Measured with Eigen kernels, one process, round-robin
#: (docs/performance.md): threshold 0 / 64 / 128 — digits default step 67 → 46 ms (0 → 64), paper 1's
#: MNIST step 1.17 → 1.01 s (0 → 64) and 0.79 → 1.05 s (64 → 128). 0 = no threshold.
PHASES_MIN_CHANNELS = 64


def _image_side_channels(layer):
    """Channels of the larger-resolution side: ``kernel.shape[2]`` for Conv2D (c_in) and
    Conv2DTranspose (c_out) alike; large when the layer is not built yet."""
    kernel = getattr(layer, "kernel", None)
    return int(kernel.shape[2]) if kernel is not None else IMAGE_CHANNELS + 1


def _min_channels(layer):
    """The smaller of a built conv layer's input and output channels (large when not built)."""
    kernel = getattr(layer, "kernel", None)
    return min(int(kernel.shape[2]), int(kernel.shape[3])) if kernel is not None else 1 << 30


def layer_implementation(layer, implementation="auto"):
    """``"phases"`` or ``"native"`` for a Keras ``Conv2D``/``Conv2DTranspose``-like ``layer``.

    ``"auto"`` resolves with :func:`default_implementation`, then falls back to ``"native"``
    for image-side layers (≤ :data:`IMAGE_CHANNELS` channels, measured faster natively) and
    for configurations the decomposition does not cover (dilation, groups, output_padding,
    channels_first); an explicit ``"phases"`` on the latter raises ``ValueError``.
    """
    choice = default_implementation() if implementation == "auto" else implementation
    if implementation == "auto" and choice == "phases" and (
            _image_side_channels(layer) <= IMAGE_CHANNELS or _min_channels(layer) < PHASES_MIN_CHANNELS):
        choice = "native"
    if choice == "phases" and not _phases_supported(layer):
        if implementation == "phases":
            raise ValueError(
                "Expected channels_last, dilation_rate=1, groups=1, output_padding=None and "
                f"equal strides with `implementation='phases'`. Received: the config of {layer.name!r}")
        choice = "native"
    return choice


def convolution(layer, inputs, kernel, implementation="auto"):
    """The linear part of a Keras ``Conv2D`` ``layer`` (no bias) with ``kernel``, fast on every device.

    For layers that compute their own kernel (e.g. spectral normalization): equals
    ``layer.convolution_op(inputs, kernel)``; under ``"phases"`` its input gradient runs
    through :func:`conv2d`.
    """
    if layer_implementation(layer, implementation) == "phases":
        return conv2d(inputs, kernel, layer.strides, layer.padding)
    return layer.convolution_op(inputs, kernel)


def conv_transpose(layer, inputs, kernel, implementation="auto"):
    """The linear part of a Keras ``Conv2DTranspose`` ``layer`` (no bias) with ``kernel``."""
    if layer_implementation(layer, implementation) == "phases":
        return conv2d_transpose(inputs, kernel, layer.compute_output_shape(inputs.shape),
                                layer.strides, layer.padding)
    return keras.ops.conv_transpose(
        inputs, kernel, strides=list(layer.strides), padding=layer.padding,
        output_padding=layer.output_padding, dilation_rate=layer.dilation_rate,
        data_format=layer.data_format)


class _ImplementationMixin:
    """``implementation=`` argument, resolved at build time (see :func:`default_implementation`)."""

    def __init__(self, *args, implementation="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.implementation = _check_implementation(implementation)
        self.resolved_implementation = None

    def build(self, input_shape):
        super().build(input_shape)
        self.resolved_implementation = layer_implementation(self, self.implementation)

    def get_config(self):
        config = super().get_config()
        if self.implementation != "auto":
            config["implementation"] = self.implementation
        return config

    def _finish(self, outputs):
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
        return outputs if self.activation is None else self.activation(outputs)


_LAYER_DOC = """
    Same constructor, weights (``kernel``, ``bias``) and ``get_config`` as the Keras layer (the
    class name is the same too, so ``.keras`` / ``.weights.h5`` files load either way), plus

    Args:
        implementation: ``"auto"`` (default; :func:`default_implementation` at build time),
            ``"phases"`` (stride-1 convolutions, see the module docstring) or ``"native"``.
"""


@keras.saving.register_keras_serializable(package="mmd_keras")
class Conv2D(_ImplementationMixin, keras.layers.Conv2D):
    __doc__ = ("``keras.layers.Conv2D`` whose input gradient runs as stride-1 forward convolutions "
               "(:func:`conv2d`) under ``implementation='phases'``.\n" + _LAYER_DOC)

    def call(self, inputs, training=False):
        if self.resolved_implementation != "phases":
            return super().call(inputs)
        kernel = tf.convert_to_tensor(self.kernel)
        return self._finish(convolution(self, inputs, kernel, self.resolved_implementation))


@keras.saving.register_keras_serializable(package="mmd_keras")
class Conv2DTranspose(_ImplementationMixin, keras.layers.Conv2DTranspose):
    __doc__ = ("``keras.layers.Conv2DTranspose`` computed by :func:`conv2d_transpose` under "
               "``implementation='phases'``.\n" + _LAYER_DOC)

    def call(self, inputs, training=False):
        if self.resolved_implementation != "phases":
            return super().call(inputs)
        kernel = tf.convert_to_tensor(self.kernel)
        return self._finish(conv_transpose(self, inputs, kernel, self.resolved_implementation))
