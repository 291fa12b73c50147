"""Feature extractors for KID / FID / IS: one interface, several networks.

A :class:`FeatureExtractor` maps images ``[N, H, W, C]`` in ``[-1, 1]`` (the generator's output
range) to NumPy features ``[N, d]``, in batches; extractors with a classifier head also give
``probabilities(images) -> [N, classes]`` for the Inception Score. Any object with that
interface can be passed where an extractor is expected (tests and users inject their own with
:class:`FunctionExtractor`).

Available extractors (:func:`get`):

* ``"fid_inception"`` — the FID Inception-v3 of pytorch-fid / torch-fidelity
  (:class:`mmd_keras.inception.FIDInceptionExtractor`, weights by path).
* ``"inception_v3"`` — ``keras.applications.InceptionV3`` average-pooled features
  (:class:`KerasInceptionV3Extractor`, ImageNet weights by path or download). Not the FID
  network: its numbers are not comparable with published FID/KID.
* ``"digits"`` — a LeNet-like classifier trained on scikit-learn's digits, the offline
  stand-in for Inception on MNIST-like data (Bińkowski et al. 2018, §5)
  (:class:`DigitsClassifierExtractor`).
"""

import contextlib
import os

import keras
import numpy as np
import tensorflow as tf

# Images may overshoot [-1, 1] by float rounding (tanh outputs, resizes); more is a range bug.
RANGE_TOLERANCE = 1e-3


def validate_images(images, arg_name="images"):
    """Checks a batch of images and returns it as float32 ``[N, H, W, C]``.

    Raises:
        ValueError: not 4-D, no images, channels not 1 or 3, non-finite values, or values
            outside ``[-1, 1]`` (e.g. uint8 ``[0, 255]`` images passed unconverted).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"Expected `{arg_name}` of shape [N >= 1, H, W, C] with C in (1, 3). "
            f"Received: `{arg_name}.shape={images.shape}`")
    images = images.astype(np.float32, copy=False)
    if not np.all(np.isfinite(images)):
        raise ValueError(f"Expected finite `{arg_name}`. Received: NaN or inf values.")
    low, high = float(images.min()), float(images.max())
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(
            f"Expected `{arg_name}` in [-1, 1] (convert uint8 with x / 127.5 - 1). "
            f"Received: values in [{low:.4g}, {high:.4g}]")
    return images


@contextlib.contextmanager
def float32_policy():
    """Builds evaluation networks in float32 whatever the training dtype policy is.

    Metrics must not change with ``mixed_bfloat16`` training; the previous global policy is
    restored on exit.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class FeatureExtractor:
    """Base class: batching, input checks, channel handling; subclasses give the network.

    Subclasses implement ``_features(batch) -> [b, d]`` and, when they have a classifier
    head, ``_probabilities(batch) -> [b, classes]`` (``has_probabilities = True``).

    Args:
        name: short name recorded in evaluation results.
        batch_size: images per network call; the last batch is zero-padded to this size so a
            compiled function traces once.
        channels: channels the network expects (1 or 3), or None for any; grayscale images
            are repeated to 3 channels, RGB images are averaged to 1.
    """

    has_probabilities = False

    def __init__(self, name, batch_size=64, channels=None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Expected `batch_size` >= 1. Received: `batch_size={batch_size!r}`")
        if channels not in (None, 1, 3):
            raise ValueError(
                f"Expected `channels` in (None, 1, 3). Received: `channels={channels!r}`")
        self.name = name
        self.batch_size = batch_size
        self.channels = channels

    def _prepare(self, images):
        images = validate_images(images)
        if self.channels == 3 and images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        elif self.channels == 1 and images.shape[-1] == 3:
            images = images.mean(axis=-1, keepdims=True)
        return images

    def _batched(self, fn, images):
        images = self._prepare(images)
        outputs = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size]
            size = len(batch)
            if size < self.batch_size:
                batch = np.concatenate(
                    [batch, np.zeros((self.batch_size - size,) + batch.shape[1:], np.float32)])
            outputs.append(np.asarray(fn(tf.constant(batch)), np.float32)[:size])
        return np.concatenate(outputs, axis=0)

    def __call__(self, images):
        """Features ``[N, d]`` float32 of images ``[N, H, W, C]`` in ``[-1, 1]``."""
        return self._batched(self._features, images)

    def probabilities(self, images):
        """Class probabilities ``[N, classes]`` (softmax of the classifier head)."""
        if not self.has_probabilities:
            raise NotImplementedError(
                f"Extractor `{self.name}` has no classifier head: the Inception Score needs one.")
        return self._batched(self._probabilities, images)

    def _features(self, batch):
        raise NotImplementedError

    def _probabilities(self, batch):
        raise NotImplementedError

    def get_config(self):
        """Parameters recorded with evaluation results."""
        return {"name": self.name, "batch_size": self.batch_size}


class FunctionExtractor(FeatureExtractor):
    """Wraps plain callables ``images [b, H, W, C] -> [b, d]`` as an extractor.

    Args:
        features_fn: maps a float32 batch in ``[-1, 1]`` to features.
        name: name recorded with results.
        probabilities_fn: optional batch → probabilities (enables the Inception Score).
        batch_size, channels: see :class:`FeatureExtractor`.
    """

    def __init__(self, features_fn, name="custom", probabilities_fn=None, batch_size=64,
                 channels=None):
        if not callable(features_fn):
            raise ValueError(f"Expected a callable `features_fn`. Received: {features_fn!r}")
        super().__init__(name, batch_size=batch_size, channels=channels)
        self._features_fn = features_fn
        self._probabilities_fn = probabilities_fn
        self.has_probabilities = probabilities_fn is not None

    def _features(self, batch):
        return self._features_fn(batch)

    def _probabilities(self, batch):
        return self._probabilities_fn(batch)


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


class DigitsClassifierExtractor(FeatureExtractor):
    """Penultimate features and softmax of the offline digits classifier.

    Args:
        classifier: a :class:`mmd_keras.digits_classifier.DigitsClassifier`; by default the
            cached one (trained on first use, < 1 min on CPU).
        cache_dir: where the trained classifier is cached (see ``load_digits_classifier``).
        batch_size: images per call.
    """

    has_probabilities = True

    def __init__(self, classifier=None, cache_dir=None, batch_size=256):
        super().__init__("digits", batch_size=batch_size, channels=1)
        if classifier is None:
            from mmd_keras import digits_classifier

            classifier = digits_classifier.load_digits_classifier(cache_dir=cache_dir)
        self.classifier = classifier

    def _features(self, batch):
        return self.classifier.compute(batch)["features"]

    def _probabilities(self, batch):
        return tf.nn.softmax(self.classifier.compute(batch)["logits"], axis=-1)

    def get_config(self):
        return {**super().get_config(), "classifier": self.classifier.describe()}


EXTRACTORS = ("digits", "fid_inception", "inception_v3")


def get(identifier, **kwargs):
    """Returns an extractor from a name, an extractor instance or a callable.

    Args:
        identifier: ``"digits"``, ``"fid_inception"`` (kwargs: ``weights_path``),
            ``"inception_v3"`` (kwargs: ``weights``), a :class:`FeatureExtractor` (returned
            as is), or a callable ``images -> features`` (wrapped in
            :class:`FunctionExtractor`).
        **kwargs: constructor arguments of the named extractor.

    Raises:
        ValueError: unknown name.
    """
    if isinstance(identifier, FeatureExtractor):
        return identifier
    if identifier == "digits":
        return DigitsClassifierExtractor(**kwargs)
    if identifier == "fid_inception":
        from mmd_keras import inception

        return inception.FIDInceptionExtractor(**kwargs)
    if identifier == "inception_v3":
        return KerasInceptionV3Extractor(**kwargs)
    if callable(identifier):
        return FunctionExtractor(identifier, **kwargs)
    raise ValueError(
        f"Expected `identifier` in {EXTRACTORS}, a FeatureExtractor or a callable. "
        f"Received: `identifier={identifier!r}`")
