"""A LeNet-like digits classifier: the offline stand-in for Inception on MNIST-like data.

Bińkowski et al. (ICLR 2018, §5) score MNIST models with the features of a small trained
LeNet instead of Inception. Offline, the library's default data is scikit-learn's digits, so
this module trains such a network on the digits *training* split
(:func:`mmd_keras.datasets.digits_split`, the same split the default run trains on) and
caches it; KID/FID use its 128-d penultimate features, the Inception Score its softmax.

Inputs are images ``[N, H, W, 1]`` in ``[-1, 1]`` of any size (the dataset gives 16 or 32
px); they are resized to 16×16 (bilinear, half-pixel centres). Training sees the training
split rendered at 16 px and at 32 px resized to 16, so both dataset sizes are in
distribution. Training is deterministic (seeded initializers, NumPy-seeded batch order,
no dropout) and takes ~20 s of CPU time; held-out accuracy 98.3 %.
"""

import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from mmd_keras import datasets, fileio
from mmd_keras.evaluation.extractor_base import (FeatureExtractor, float32_policy,
                                                  resize_square, train_classifier)
from mmd_keras.evaluation.weights import default_cache_dir  # noqa: F401 - public here too

INPUT_SIZE = 16
FEATURE_DIM = 128
NUM_CLASSES = 10
# Bump when the architecture or training recipe changes: it is part of the cache key.
VERSION = 1
DEFAULT_TRAINING = {"epochs": 20, "batch_size": 64, "learning_rate": 1e-3, "seed": 0}


def build_digits_classifier(seed=0):
    """LeNet-like network ``[N, 16, 16, 1] -> {"features": [N, 128], "logits": [N, 10]}``.

    Built in float32 whatever the global dtype policy (see ``extractor_base.float32_policy``).
    """
    with float32_policy():
        return _build(seed)


def _build(seed):
    def init(i):
        return keras.initializers.GlorotUniform(seed=seed * 100 + i)

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="images")
    x = inputs
    for i, filters in enumerate((32, 64)):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                kernel_initializer=init(i))(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    features = keras.layers.Dense(FEATURE_DIM, activation="relu", kernel_initializer=init(2),
                                  name="features")(x)
    logits = keras.layers.Dense(NUM_CLASSES, kernel_initializer=init(3), name="logits")(features)
    return keras.Model(inputs, {"features": features, "logits": logits}, name="digits_classifier")


def _resize(images):
    return resize_square(images, INPUT_SIZE)


def training_data(seed=0):
    """Training split at 16 px and at 32 px resized to 16: ``(images, labels)``."""
    x16, y16 = datasets.digits_images("train", 16, seed=seed)
    x32, y32 = datasets.digits_images("train", 32, seed=seed)
    return np.concatenate([x16, _resize(x32).numpy()]), np.concatenate([y16, y32])


def _random_shifts(images, rng):
    """Rolls each image by its own (dy, dx) in {-1, 0, 1}² (borders are background)."""
    shifts = rng.integers(-1, 2, size=(len(images), 2))
    out = np.empty_like(images)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            rows = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            out[rows] = np.roll(images[rows], (dy, dx), axis=(1, 2))
    return out


def train_digits_classifier(epochs=20, batch_size=64, learning_rate=1e-3, seed=0):
    """Trains the classifier deterministically on the digits training split.

    Each epoch shifts every image by its own random (dy, dx) in {-1, 0, 1}² so the
    classifier tolerates generated digits that are slightly off-centre.

    Args:
        epochs: passes over the training data.
        batch_size: images per Adam step.
        learning_rate: initial Adam learning rate, cosine-decayed to 0.
        seed: initializer seed and batch-order seed (the split itself is seed 0).

    Returns:
        The trained ``keras.Model`` (see :func:`build_digits_classifier`).
    """
    images, labels = training_data()
    return train_classifier(build_digits_classifier(seed), images, labels, epochs=epochs,
                            batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                            augment=_random_shifts)


class DigitsClassifier:
    """A trained digits classifier: features, logits, probabilities and its accuracy.

    Args:
        model: a :func:`build_digits_classifier` model with trained weights.
        path: the weights file it came from (recorded in evaluation results), or None.
    """

    def __init__(self, model, path=None):
        self.model = model
        self.path = path
        self._compute = tf.function(self._compute_eager, reduce_retracing=True)
        self._accuracy = None

    def _compute_eager(self, images):
        return self.model(_resize(images), training=False)

    def compute(self, images):
        """``{"features": [N, 128], "logits": [N, 10]}`` tensors of images in ``[-1, 1]``."""
        return self._compute(tf.convert_to_tensor(images, tf.float32))

    def features(self, images):
        """Penultimate (ReLU) features ``[N, 128]`` as NumPy."""
        return self.compute(images)["features"].numpy()

    def probabilities(self, images):
        """Softmax ``[N, 10]`` as NumPy."""
        return tf.nn.softmax(self.compute(images)["logits"]).numpy()

    def accuracy(self, image_size=32):
        """Accuracy on the held-out digits split at ``image_size`` (16 or 32)."""
        images, labels = datasets.digits_images("test", image_size)
        return float(np.mean(np.argmax(self.compute(images)["logits"], -1) == labels))

    def describe(self):
        """JSON-able description recorded with evaluation results."""
        return {"version": VERSION, "path": self.path, "input_size": INPUT_SIZE,
                "feature_dim": FEATURE_DIM, "training": DEFAULT_TRAINING}


def cache_path(cache_dir=None):
    """Path of the cached weights; the file name encodes the version and recipe."""
    recipe = json.dumps({"version": VERSION, **DEFAULT_TRAINING}, sort_keys=True)
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:10]
    return os.path.join(cache_dir or default_cache_dir(),
                        f"digits_classifier_v{VERSION}_{digest}.weights.h5")


def load_digits_classifier(cache_dir=None, retrain=False):
    """The cached classifier, trained and cached on first use (atomic write).

    Args:
        cache_dir: folder of the cache; default :func:`default_cache_dir`
            (``$MMD_KERAS_CACHE`` or ``~/.cache/mmd_keras``).
        retrain: train again even when a cached file exists (and replace it).

    Returns:
        :class:`DigitsClassifier`.
    """
    path = cache_path(cache_dir)
    if os.path.isfile(path) and not retrain:
        model = build_digits_classifier(DEFAULT_TRAINING["seed"])
        model.load_weights(path)
        return DigitsClassifier(model, path)
    model = train_digits_classifier(**DEFAULT_TRAINING)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with fileio.atomic_path(path, suffix=".weights.h5") as tmp_path:
        model.save_weights(tmp_path)
    return DigitsClassifier(model, path)


class DigitsClassifierExtractor(FeatureExtractor):
    """Penultimate features and softmax of the offline digits classifier.

    Args:
        classifier: a :class:`DigitsClassifier`; by default the
            cached one (trained on first use, < 1 min on CPU).
        cache_dir: where the trained classifier is cached (see ``load_digits_classifier``).
        batch_size: images per call.
    """

    has_probabilities = True

    def __init__(self, classifier=None, cache_dir=None, batch_size=256):
        super().__init__("digits", batch_size=batch_size, channels=1)
        if classifier is None:
            classifier = load_digits_classifier(cache_dir=cache_dir)
        self.classifier = classifier

    def _features(self, batch):
        return self.classifier.compute(batch)["features"]

    def _probabilities(self, batch):
        return tf.nn.softmax(self.classifier.compute(batch)["logits"], axis=-1)

    def get_config(self):
        return {**super().get_config(), "classifier": self.classifier.describe()}
