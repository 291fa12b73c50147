"""mmd_keras: MMD GANs for TensorFlow 2 / Keras 3.

Implements, as one library,

1. Bińkowski et al., *Demystifying MMD GANs* (ICLR 2018),
2. Arbel et al., *On gradient regularizers for MMD GANs* (NeurIPS 2018),
3. Wang et al., *Improving MMD-GAN training with repulsive loss function* (ICLR 2019).

Conventions used throughout the package: ``x``/``real_*`` are samples of the data
distribution, ``y``/``fake_*`` samples of the generator; kernel matrices are named
``k_xx``, ``k_xy``, ``k_yy``; the network trained to tell them apart is the *critic*.
"""

import json as _json
import os as _os

__version__ = "0.1.0"


def _configured_backend():
    """The backend Keras will pick, read as Keras reads it, without importing Keras.

    ``KERAS_BACKEND`` wins; else ``"backend"`` of ``$KERAS_HOME/keras.json`` (default
    ``~/.keras/keras.json``); else Keras's default, TensorFlow. Importing Keras here would
    import TensorFlow (12-17 s) for ``import mmd_keras.config`` and ``launch --help``.
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


_check_backend()
