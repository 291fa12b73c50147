"""mmd_keras: MMD GANs for TensorFlow 2 / Keras 3.

Implements, as one library,

1. Bińkowski et al., *Demystifying MMD GANs* (ICLR 2018),
2. Arbel et al., *On gradient regularizers for MMD GANs* (NeurIPS 2018),
3. Wang et al., *Improving MMD-GAN training with repulsive loss function* (ICLR 2019).

Conventions used throughout the package: ``x``/``real_*`` are samples of the data
distribution, ``y``/``fake_*`` samples of the generator; kernel matrices are named
``k_xx``, ``k_xy``, ``k_yy``; the network trained to tell them apart is the *critic*.
"""

import importlib.util as _importlib_util
import json as _json
import os as _os

__version__ = "0.1.0"


def _configured_backend():
    """The backend Keras will pick, read as Keras reads it, without importing Keras.

    ``KERAS_BACKEND`` wins; else ``"backend"`` of ``$KERAS_HOME/keras.json`` (default
    ``~/.keras/keras.json``); else Keras's default, TensorFlow. Importing Keras here would
    import TensorFlow (12-17 s) for ``import mmd_keras.app.config`` and ``launch --help``.
    """
    backend = _os.environ.get("KERAS_BACKEND")
    if backend is not None:
        return backend, f"`KERAS_BACKEND={backend}`"
    home = _os.environ.get("KERAS_HOME") or _os.path.join(
        _os.path.expanduser("~"), ".keras")
    path = _os.path.join(home, "keras.json")
    try:
        with open(path) as f:
            backend = _json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):
        return "tensorflow", None
    return (backend or "tensorflow"), f'"backend": "{backend}" in {path}'


def _check_backend():
    """Fails early, with the fix, when Keras is configured for another backend than TF."""
    backend, source = _configured_backend()
    if backend != "tensorflow":
        raise ImportError(
            f"mmd_keras needs Keras on the TensorFlow backend. Received: {source}. Fix: "
            "`export KERAS_BACKEND=tensorflow` (or set \"backend\": \"tensorflow\" in "
            "keras.json) before importing mmd_keras."
        )


def _check_tensorflow():
    """Fails early, with the install commands, when no TensorFlow build is installed.

    ``MMD_KERAS_TENSORFLOW=none pip install .`` (or a wheel built with it) requires none, and
    ``tensorflow-tpu``/``-cpu`` can be uninstalled under the package; ``find_spec`` looks for the
    module without importing it (TensorFlow takes 12-17 s to import).
    """
    if _importlib_util.find_spec("tensorflow") is None:
        raise ImportError(
            "mmd_keras needs TensorFlow >= 2.16, and this Python environment has none. Install "
            "the build for the hardware: `pip install tensorflow` (CPUs; NVIDIA GPUs through the "
            "system's CUDA), `pip install \"tensorflow[and-cuda]\"` (GPUs, CUDA from pip), "
            "`pip install tensorflow-cpu`, or `pip install tensorflow-tpu` (Cloud TPU VMs) — or "
            "reinstall mmd_keras with `MMD_KERAS_TENSORFLOW=tensorflow|cuda|cpu|tpu pip install -e .`"
        )


_check_backend()
_check_tensorflow()
