"""Training diagnostics: the critic's weight spectrum and paper 2's σ⁻² ("rank collapse" watch).

Arbel et al. 2018 (paper 2), §3.3 "Spectral parametrization" and §4 "Rank collapse": an SMMD
critic can focus on a single direction in which the generator is wrong, choosing redundant
filters, so the condition numbers of its weight matrices diverge; Figure 2 (b–d) tracks the
singular values of a critic layer, σ⁻²_{µ,k,λ} and the first layer's condition number during
training. :class:`CriticSpectrumLogger` records the same quantities during ``fit``.

Weight matrices: every layer with a ``kernel`` of rank ≥ 2 (Dense, Conv2D, Conv2DTranspose and
their spectrally normalized versions) is read as a matrix by flattening all kernel axes but the
last — Dense ``[in, out]``; Conv2D ``[kh, kw, c_in, c_out] → [kh·kw·c_in, c_out]`` (Miyato's
reshape, the one PIM normalizes); Conv2DTranspose ``[kh, kw, c_out, c_in] → [kh·kw·c_out, c_in]``.
These are the singular values of the reshaped kernel, not of the convolution operator (whose
exact spectrum depends on the input size; its norm is what PICO estimates). For spectrally
normalized layers the *effective* kernel g·W/σ(W) of the forward pass is used by default
(σ is the layer's current power-iteration estimate, read without advancing it); condition
numbers are the same either way.

σ⁻² (paper 2, Prop. 4 with the losses' rescaling λ + g(0) → ``offset``, 2|g′(0)| → ``coefficient``):
``offset + coefficient · E_x‖J_h(x)‖²_F`` over real images x. The SMMD loss logs its scale
σ² as ``smmd_scale``; the logger stores 1/``smmd_scale`` from the logs when present, and can also
compute σ⁻² itself on a fixed batch of real images for any critic (e.g. an MMD-GP one, which
logs no scale), as paper 2's Figure 2(c) does for several methods.

SVDs run in NumPy (float64) on the host between steps: exact, and outside compiled code
(``tf.linalg.svd`` under XLA on CPU does not finish in reasonable time).
"""

import json
import math

import keras
import numpy as np
import tensorflow as tf

from mmd_keras import fileio, losses
from mmd_keras.callbacks import current_step


def kernel_matrix(layer, effective=True):
    """The layer's kernel as a float64 matrix ``[fan_in, fan_out]`` (all axes but the last flattened).

    Args:
        layer: a Keras layer with a ``kernel`` of rank ≥ 2.
        effective: for spectrally normalized layers (``normalized_kernel``), the kernel of the
            forward pass g·W/σ(W) instead of the raw variable.

    Returns:
        NumPy array ``[prod(kernel.shape[:-1]), kernel.shape[-1]]``.
    """
    kernel = getattr(layer, "kernel", None)
    if kernel is None or len(kernel.shape) < 2:
        raise ValueError(f"Expected a layer with a kernel of rank >= 2. Received: `layer={layer.name!r}` "
                         f"with kernel shape {None if kernel is None else tuple(kernel.shape)}")
    if effective and hasattr(layer, "normalized_kernel"):
        kernel = layer.normalized_kernel(training=False)
    kernel = np.asarray(keras.ops.convert_to_numpy(kernel), dtype=np.float64)
    return kernel.reshape(-1, kernel.shape[-1])


def singular_values(matrix):
    """Singular values of a 2-D array, descending, float64 ``[min(m, n)]``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"Expected a matrix of rank 2. Received: `matrix.shape={matrix.shape}`")
    return np.linalg.svd(matrix, compute_uv=False)


def condition_number(values):
    """σ_max/σ_min of descending singular values; ``inf`` for a singular matrix."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("Expected at least one singular value. Received: an empty array")
    return math.inf if values[-1] == 0.0 else float(values[0] / values[-1])


def _walk(layer):
    for child in getattr(layer, "layers", None) or []:
        yield child
        yield from _walk(child)


def spectrum_layers(network, layer_names=None):
    """The layers of ``network`` (nested models included) whose kernel has rank ≥ 2, in order.

    Args:
        network: a Keras model, or a single layer.
        layer_names: optional names to keep (every name must exist).

    Returns:
        list of layers.
    """
    candidates = [network, *_walk(network)]
    found = [layer for layer in candidates
             if getattr(layer, "kernel", None) is not None and len(layer.kernel.shape) >= 2]
    if layer_names is None:
        return found
    by_name = {layer.name: layer for layer in found}
    missing = [name for name in layer_names if name not in by_name]
    if missing:
        raise ValueError(f"Expected `layer_names` among the layers with a kernel {sorted(by_name)}. "
                         f"Received: `layer_names={list(layer_names)!r}`")
    return [by_name[name] for name in layer_names]


def network_spectrum(network, effective=True, layer_names=None):
    """Singular values and condition number of every weight matrix of ``network``.

    Returns:
        dict ``layer name -> {"shape": [fan_in, fan_out], "singular_values": [...] (descending),
        "sigma_max", "sigma_min", "condition_number" (inf when singular)}``.
    """
    spectrum = {}
    for layer in spectrum_layers(network, layer_names):
        matrix = kernel_matrix(layer, effective)
        values = singular_values(matrix)
        spectrum[layer.name] = {
            "shape": list(matrix.shape), "singular_values": values.tolist(),
            "sigma_max": float(values[0]), "sigma_min": float(values[-1]),
            "condition_number": condition_number(values),
        }
    return spectrum


def sigma_inv_sq(critic, real_images, coefficient=10.0, offset=1.0):
    """σ⁻² = offset + coefficient·E_x‖J_h(x)‖²_F on ``real_images`` (paper 2, Prop. 4; see module doc).

    Args:
        critic: callable images ``[b, ...]`` → features ``[b, s]`` (inference mode).
        real_images: ``[b, ...]`` batch.
        coefficient, offset: as the SMMD loss (paper 2: 10 and 1).

    Returns:
        Python float.
    """
    _, norms = losses.jacobian_squared_norms(critic, tf.convert_to_tensor(real_images, tf.float32))
    return float(offset + coefficient * float(tf.reduce_mean(norms)))


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(obj):
    """Copy of ``obj`` with non-finite floats as None (strict JSON has no inf/NaN)."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return _finite_or_none(obj)


class CriticSpectrumLogger(keras.callbacks.Callback):
    """Records the critic's per-layer spectra and σ⁻² every N generator steps during ``fit``.

    Each record of :attr:`history` is ``{"step", "layers": network_spectrum(...),
    "smmd_sigma_inv_sq": 1/logs["smmd_scale"] or None, "sigma_inv_sq": σ⁻² on real_images or None}``.
    A record is taken when training starts, every ``every`` generator steps and when it ends
    (once per step). The step is the model's ``step`` counter when it has one (``MMDGAN``),
    else the number of batches seen by this callback.

    Args:
        every: generator steps between records (int ≥ 1).
        network: attribute of the model to watch (default ``"critic"``) or a Keras model.
        effective: use the effective kernel g·W/σ(W) of spectrally normalized layers.
        layer_names: optional subset of layer names.
        real_images: optional fixed batch ``[b, ...]`` of real images for :func:`sigma_inv_sq`.
        coefficient, offset: constants of σ⁻² (paper 2: 10 and 1).
        writer: optional ``tf.summary`` writer: scalars ``spectrum/<layer>/{condition_number,
            sigma_max,sigma_min}``, ``spectrum/sigma_inv_sq``, ``spectrum/smmd_sigma_inv_sq`` and
            a histogram ``spectrum/<layer>/singular_values``.
        path: optional JSON file rewritten (atomically) after each record.
    """

    def __init__(self, every=100, network="critic", effective=True, layer_names=None, real_images=None,
                 coefficient=10.0, offset=1.0, writer=None, path=None):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"Expected `every` an int >= 1. Received: `every={every!r}`")
        if not isinstance(network, (str, keras.Layer)):
            raise ValueError("Expected `network` a model attribute name or a Keras model. "
                             f"Received: `network={network!r}`")
        self.every, self.network, self.effective = every, network, bool(effective)
        self.layer_names = None if layer_names is None else list(layer_names)
        self.real_images = None if real_images is None else tf.convert_to_tensor(real_images, tf.float32)
        self.coefficient, self.offset = float(coefficient), float(offset)
        self.writer, self.path = writer, path
        self.history = []
        self._batches = 0
        self._last_logs = None
        self._sigma_fn = None

    def _network(self):
        if not isinstance(self.network, str):
            return self.network
        network = getattr(self.model, self.network, None)
        if network is None:
            raise ValueError(f"Expected the model to have a `{self.network}` network. Received: "
                             f"`network={self.network!r}` on model {self.model.name!r}")
        return network

    def _step(self):
        return current_step(self.model) if hasattr(self.model, "step") else self._batches

    def record(self, step, logs=None):
        """Takes one record at ``step`` (skipped if that step is already recorded); returns it."""
        if self.history and self.history[-1]["step"] == step:
            return self.history[-1]
        network = self._network()
        scale = (logs or {}).get("smmd_scale")
        scale = None if scale is None else float(np.asarray(keras.ops.convert_to_numpy(scale)).reshape(-1)[0])
        entry = {
            "step": int(step),
            "layers": network_spectrum(network, self.effective, self.layer_names),
            "smmd_sigma_inv_sq": None if scale is None or scale == 0 else 1.0 / scale,
            "sigma_inv_sq": None if self.real_images is None else self._sigma_inv_sq(network),
        }
        self.history.append(entry)
        self._write_summaries(entry)
        if self.path is not None:
            self.save(self.path)
        return entry

    def _sigma_inv_sq(self, network):
        # Compiled once: one backward pass per critic output, on a fixed batch.
        if self._sigma_fn is None or self._sigma_fn[0] is not network:
            self._sigma_fn = (network, tf.function(
                lambda images: tf.reduce_mean(losses.jacobian_squared_norms(network, images)[1])))
        return float(self.offset + self.coefficient * float(self._sigma_fn[1](self.real_images)))

    def _write_summaries(self, entry):
        if self.writer is None:
            return
        step = entry["step"]
        with self.writer.as_default():
            for name, layer in entry["layers"].items():
                for key in ("condition_number", "sigma_max", "sigma_min"):
                    tf.summary.scalar(f"spectrum/{name}/{key}", layer[key], step=step)
                tf.summary.histogram(f"spectrum/{name}/singular_values", layer["singular_values"], step=step)
            for key in ("sigma_inv_sq", "smmd_sigma_inv_sq"):
                if entry[key] is not None:
                    tf.summary.scalar(f"spectrum/{key}", entry[key], step=step)
        self.writer.flush()

    def series(self, layer, key="condition_number"):
        """``(steps [n], values [n])`` of one layer's ``key`` over the records (NumPy)."""
        steps = np.array([e["step"] for e in self.history], dtype=np.int64)
        values = np.array([e["layers"][layer][key] for e in self.history], dtype=np.float64)
        return steps, values

    def to_json(self):
        """The history as strict-JSON-able data (non-finite numbers as None)."""
        return _jsonable({"every": self.every, "effective": self.effective, "coefficient": self.coefficient,
                          "offset": self.offset, "history": self.history})

    def save(self, path):
        """Writes :meth:`to_json` to ``path`` atomically (any filesystem)."""
        fileio.atomic_write(path, json.dumps(self.to_json(), allow_nan=False))

    def on_train_begin(self, logs=None):
        self.record(self._step())

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        step = self._step()
        if step % self.every == 0:
            self.record(step, logs)
        self._last_logs = logs

    def on_train_end(self, logs=None):
        self.record(self._step(), self._last_logs)
