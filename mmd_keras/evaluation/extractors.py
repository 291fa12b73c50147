"""The extractor registry: a name → an extractor (:func:`get`), and Keras's InceptionV3.

Available extractors (:data:`EXTRACTORS`):

* ``"fid_inception"`` — the FID Inception-v3 of pytorch-fid / torch-fidelity
  (:class:`mmd_keras.evaluation.inception.FIDInceptionExtractor`; weights by path, default
  the converted file in the cache, see :mod:`mmd_keras.evaluation.weights`).
* ``"inception_v3"`` — ``keras.applications.InceptionV3`` average-pooled features
  (:class:`KerasInceptionV3Extractor`, ImageNet weights by path or download). Not the FID
  network: its numbers are not comparable with published FID/KID.
* ``"digits"`` — a LeNet-like classifier trained on scikit-learn's digits, the offline
  stand-in for Inception on MNIST-like data (Bińkowski et al. 2018, §5)
  (:class:`mmd_keras.evaluation.digits_classifier.DigitsClassifierExtractor`).
* ``"lenet"`` — paper 1's MNIST scorer, the TensorFlow tutorial's LeNet trained on the 60,000
  MNIST training images: 512-d penultimate features, softmax for IS
  (:class:`mmd_keras.evaluation.lenet.LeNetExtractor`; trained and cached on first use).

Imports go one way: this module → the networks → :mod:`mmd_keras.evaluation.extractor_base`.
"""

import os

import keras
import tensorflow as tf

from mmd_keras.evaluation import digits_classifier, inception, lenet  # noqa: F401
from mmd_keras.evaluation.extractor_base import (  # noqa: F401 - re-exported interface
    RANGE_TOLERANCE, FeatureExtractor, FunctionExtractor, float32_policy, validate_images)
from mmd_keras.evaluation.digits_classifier import DigitsClassifierExtractor  # noqa: F401
from mmd_keras.evaluation.inception import FIDInceptionExtractor  # noqa: F401
from mmd_keras.evaluation.lenet import LeNetExtractor  # noqa: F401


class KerasInceptionV3Extractor(FeatureExtractor):
    """``keras.applications.InceptionV3`` average-pooled 2048-d features at 299×299.

    Images in ``[-1, 1]`` are what ``keras.applications.inception_v3.preprocess_input``
    produces, so they are resized (bilinear) and fed directly. This is Keras's ImageNet
    Inception, not the FID graph: use it for relative comparisons only.

    Args:
        weights: ``"imagenet"`` (downloads once into ``~/.keras``), a path to a
            ``.weights.h5``/``.h5`` file of ``InceptionV3(include_top=False)``, or None
            (random weights; for tests).
        batch_size: images per call.

    Raises:
        FileNotFoundError: ``weights`` is a path that does not exist.
        RuntimeError: ``"imagenet"`` weights cannot be downloaded (offline).
    """

    def __init__(self, weights="imagenet", batch_size=32):
        super().__init__("inception_v3", batch_size=batch_size, channels=3)
        if weights not in ("imagenet", None):
            weights = os.fspath(weights)
            if not os.path.isfile(weights):
                raise FileNotFoundError(
                    f"InceptionV3 weights file not found: `{weights}`. Pass a file saved from "
                    "`keras.applications.InceptionV3(include_top=False)`, or weights='imagenet'.")
        try:
            with float32_policy():
                base = keras.applications.InceptionV3(
                    include_top=False, weights=weights, input_shape=(299, 299, 3), pooling="avg")
        except Exception as error:  # noqa: BLE001 - download errors come in many types
            if weights != "imagenet":
                raise
            raise RuntimeError(
                "Could not download the ImageNet weights of keras.applications.InceptionV3 "
                f"({type(error).__name__}: {error}). Offline, pass `weights=<path>` to a "
                "weights file, or use the 'fid_inception' or 'digits' extractor.") from error
        self.weights = weights
        self._model = base
        self._compute = tf.function(self._compute_eager, reduce_retracing=True)

    def _compute_eager(self, batch):
        return self._model(tf.image.resize(batch, (299, 299), method="bilinear"), training=False)

    def _features(self, batch):
        return self._compute(batch)

    def get_config(self):
        return {**super().get_config(), "weights": self.weights}


#: Name → constructor of every named extractor; :func:`get` and the CLI's choices read it.
EXTRACTORS = {
    "digits": DigitsClassifierExtractor,
    "fid_inception": FIDInceptionExtractor,
    "inception_v3": KerasInceptionV3Extractor,
    "lenet": LeNetExtractor,
}


def get(identifier, **kwargs):
    """Returns an extractor from a name, an extractor instance or a callable.

    Args:
        identifier: ``"digits"`` (kwargs: ``cache_dir``), ``"fid_inception"`` (kwargs:
            ``weights_path``), ``"inception_v3"`` (kwargs: ``weights``), ``"lenet"`` (kwargs:
            ``data_dir``, ``cache_dir``, ``dataset``), a
            :class:`FeatureExtractor` (returned as is), or a callable ``images -> features``
            (wrapped in :class:`FunctionExtractor`).
        **kwargs: constructor arguments of the named extractor.

    Raises:
        ValueError: unknown name.
    """
    if isinstance(identifier, FeatureExtractor):
        return identifier
    if isinstance(identifier, str) and identifier in EXTRACTORS:
        return EXTRACTORS[identifier](**kwargs)
    if callable(identifier):
        return FunctionExtractor(identifier, **kwargs)
    raise ValueError(
        f"Expected `identifier` in {tuple(EXTRACTORS)}, a FeatureExtractor or a callable. "
        f"Received: `identifier={identifier!r}`")
