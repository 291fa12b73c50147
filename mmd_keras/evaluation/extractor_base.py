"""The feature-extractor interface of KID / FID / IS: input checks, batching, channels.

A :class:`FeatureExtractor` maps images ``[N, H, W, C]`` in ``[-1, 1]`` (the generator's output
range) to NumPy features ``[N, d]``, in batches; extractors with a classifier head also give
``probabilities(images) -> [N, classes]`` for the Inception Score. Any object with that
interface can be passed where an extractor is expected (tests and users inject their own with
:class:`FunctionExtractor`).

This module is the bottom of the extractor stack: the networks
(:mod:`mmd_keras.evaluation.inception`, :mod:`mmd_keras.evaluation.digits_classifier`) import
it, and the registry (:mod:`mmd_keras.evaluation.extractors`) imports them. It imports no
other evaluation module.
"""

import contextlib

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


def resize_square(images, size):
    """Images ``[N, H, W, C]`` as float32 ``[N, size, size, C]`` (bilinear; unchanged when
    already ``size`` × ``size``) — the input size of a feature network."""
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape[1] == size and images.shape[2] == size:
        return images
    return tf.image.resize(images, (size, size), method="bilinear")


def train_classifier(model, images, labels, *, epochs, batch_size, learning_rate, seed,
                     augment=None):
    """Trains a feature network's classifier head deterministically (Adam, cosine decay).

    Shared by the digits classifier and paper 1's MNIST LeNet. Each epoch draws a batch order
    from ``np.random.default_rng(seed)``, then (optionally) ``augment(images, rng)`` with the
    same generator, and takes one Adam step per full batch on the sparse cross-entropy of the
    model's ``"logits"`` output.

    Args:
        model: ``keras.Model`` whose outputs include ``"logits"`` ``[b, classes]``.
        images: float32 ``[N, H, W, C]``; labels: int ``[N]``.
        epochs, batch_size: passes and images per step (full batches only).
        learning_rate: initial Adam rate, cosine-decayed to 0 over the run.
        seed: batch-order (and augmentation) seed.
        augment: None or ``(images, rng) -> images`` applied once per epoch.

    Returns:
        ``model``, trained in place.
    """
    steps = epochs * (len(images) // batch_size)
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=False)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True)["logits"])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(images))
        epoch_images = images if augment is None else augment(images, rng)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            rows = order[start:start + batch_size]
            step(tf.constant(epoch_images[rows]), tf.constant(labels[rows]))
    return model
