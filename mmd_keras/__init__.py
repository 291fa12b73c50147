"""mmd_keras: MMD GANs for TensorFlow 2 / Keras 3.

Implements, as one library,

1. Bińkowski et al., *Demystifying MMD GANs* (ICLR 2018),
2. Arbel et al., *On gradient regularizers for MMD GANs* (NeurIPS 2018),
3. Wang et al., *Improving MMD-GAN training with repulsive loss function* (ICLR 2019).

Conventions used throughout the package: ``x``/``real_*`` are samples of the data
distribution, ``y``/``fake_*`` samples of the generator; kernel matrices are named
``k_xx``, ``k_xy``, ``k_yy``; the network trained to tell them apart is the *critic*.
"""

import os as _os

__version__ = "0.1.0"


def _check_backend():
    """Fails early, with the fix, when Keras is not running on TensorFlow."""
    backend = _os.environ.get("KERAS_BACKEND")
    if backend is not None and backend != "tensorflow":
        raise ImportError(
            "mmd_keras needs Keras on the TensorFlow backend. Received: "
            f"`KERAS_BACKEND={backend}`. Fix: `export KERAS_BACKEND=tensorflow` "
            "(or unset it) before importing mmd_keras."
        )
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ImportError(
            "mmd_keras needs Keras on the TensorFlow backend. Received: "
            f"`keras.backend.backend()={keras.backend.backend()!r}`. Fix: set "
            '"backend": "tensorflow" in ~/.keras/keras.json or '
            "`export KERAS_BACKEND=tensorflow` before importing keras."
        )


_check_backend()
