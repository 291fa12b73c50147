"""Paper 1's MNIST scorer: a LeNet-like classifier trained on the 60,000 MNIST images.

Bińkowski et al. (ICLR 2018, §5 and Appendix E, Table 3) score MNIST models "on the basis
of a LeNet model" in place of Inception. The architecture is the TensorFlow tutorial's
``mnist/convolutional.py``: conv 5×5×32 (same, ReLU) → max-pool 2×2 → conv 5×5×64 (same,
ReLU) → max-pool 2×2 → dense 512 (ReLU) → dropout 0.5 → dense 10. KID and FID use the
512-d penultimate (ReLU) features, the Inception Score the softmax.

Inputs are ``[N, H, W, 1]`` images in ``[-1, 1]`` (ink +1); other sizes are resized to 28×28
(bilinear). They are halved on entry, which is the tutorial's ``pixel / 255 - 0.5`` scaling.

Training is deterministic (seeded initializers and dropout, NumPy-seeded batch order):
Adam 1e-3 cosine-decayed to 0, batch 128, :data:`DEFAULT_TRAINING` epochs on the training
split. The weights are cached in :func:`mmd_keras.evaluation.weights.default_cache_dir`
under a name holding a hash of the training code and recipe and a hash of the training
images and labels, so a change of either trains afresh. Measured on a 2-core CPU: see
:data:`MEASURED`.
"""

import glob
import hashlib
import inspect
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from mmd_keras import fileio
from mmd_keras.datasets import idx
from mmd_keras.evaluation.extractor_base import (FeatureExtractor, float32_policy,
                                                  resize_square, train_classifier)
from mmd_keras.evaluation.weights import default_cache_dir

INPUT_SIZE = 28
FEATURE_DIM = 512
NUM_CLASSES = 10
# Bump when the architecture or recipe changes (the code hash also catches edits).
VERSION = 1
DEFAULT_TRAINING = {"epochs": 3, "batch_size": 128, "learning_rate": 1e-3, "dropout": 0.5,
                    "seed": 0}
#: The default recipe on the real MNIST files, measured on a shared 2-core CPU (load ≈ 9):
#: accuracy on the 10,000 test images, process CPU seconds of training, wall seconds.
MEASURED = {"test_accuracy": 0.992, "train_cpu_seconds": 135, "wall_seconds": 398}


def build_lenet(seed=0, dropout=0.5):
    """The tutorial's network ``[N, 28, 28, 1] -> {"features": [N, 512], "logits": [N, 10]}``.

    Built in float32 whatever the global dtype policy (see ``extractor_base.float32_policy``).
    """
    with float32_policy():
        def init(i):
            return keras.initializers.GlorotUniform(seed=seed * 100 + i)

        inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="images")
        x = keras.layers.Rescaling(0.5)(inputs)  # [-1, 1] -> the tutorial's [-0.5, 0.5]
        for i, filters in enumerate((32, 64)):
            x = keras.layers.Conv2D(filters, 5, padding="same", activation="relu",
                                    kernel_initializer=init(i))(x)
            x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Flatten()(x)
        features = keras.layers.Dense(FEATURE_DIM, activation="relu",
                                      kernel_initializer=init(2), name="features")(x)
        dropped = keras.layers.Dropout(dropout, seed=seed)(features)
        logits = keras.layers.Dense(NUM_CLASSES, kernel_initializer=init(3),
                                    name="logits")(dropped)
        return keras.Model(inputs, {"features": features, "logits": logits}, name="lenet")


def _resize(images):
    return resize_square(images, INPUT_SIZE)


def train_lenet(images, labels, epochs=3, batch_size=128, learning_rate=1e-3, dropout=0.5,
                seed=0):
    """Trains the network deterministically.

    Args:
        images: float32 ``[N, 28, 28, 1]`` in ``[-1, 1]``.
        labels: int ``[N]`` in 0..9.
        epochs, batch_size: passes and images per Adam step (full batches only).
        learning_rate: initial Adam rate, cosine-decayed to 0 over the run.
        dropout: dropout rate before the logits (the tutorial's 0.5).
        seed: initializer, dropout and batch-order seed.

    Returns:
        The trained ``keras.Model`` (see :func:`build_lenet`).
    """
    return train_classifier(build_lenet(seed, dropout), images, labels, epochs=epochs,
                            batch_size=batch_size, learning_rate=learning_rate, seed=seed)


#: The code that builds and trains the network, as imported (part of the cache key).
_SOURCE = "".join(inspect.getsource(f) for f in (build_lenet, train_lenet, train_classifier))


def _code_digest():
    """Hash of the recipe and of the code that builds and trains the network."""
    recipe = json.dumps({"version": VERSION, **DEFAULT_TRAINING}, sort_keys=True)
    return hashlib.sha256((recipe + _SOURCE).encode()).hexdigest()[:10]


def data_digest(images, labels):
    """Hash of the training images and labels (the other half of the cache key)."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()[:10]


def cache_path(data_hash, dataset="mnist", cache_dir=None):
    """``<cache>/lenet_<dataset>_v<VERSION>_<code hash>_<data hash>.weights.h5``."""
    return os.path.join(cache_dir or default_cache_dir(),
                        f"lenet_{dataset}_v{VERSION}_{_code_digest()}_{data_hash}.weights.h5")


class LeNet:
    """A trained LeNet: features, logits, probabilities and its test accuracy.

    Args:
        model: a :func:`build_lenet` model with trained weights.
        path: the weights file (recorded with evaluation results), or None.
        info: JSON-able training record (dataset, data hash, accuracy, seconds).
    """

    def __init__(self, model, path=None, info=None):
        self.model = model
        self.path = path
        self.info = dict(info or {})
        self._compute = tf.function(lambda x: self.model(_resize(x), training=False),
                                    reduce_retracing=True)

    def compute(self, images):
        """``{"features": [N, 512], "logits": [N, 10]}`` tensors of images in ``[-1, 1]``."""
        return self._compute(tf.convert_to_tensor(images, tf.float32))

    def predict(self, images, batch_size=1000):
        """Predicted classes ``[N]`` (int64)."""
        return np.concatenate([np.argmax(self.compute(images[i:i + batch_size])["logits"], -1)
                               for i in range(0, len(images), batch_size)])

    def accuracy(self, images, labels):
        """Fraction of ``images`` classified as ``labels``."""
        return float(np.mean(self.predict(images) == np.asarray(labels)))

    def describe(self):
        """JSON-able description recorded with evaluation results."""
        return {"version": VERSION, "path": self.path, "input_size": INPUT_SIZE,
                "feature_dim": FEATURE_DIM, "training": DEFAULT_TRAINING, **self.info}


def load_lenet(data_dir=None, dataset="mnist", cache_dir=None, retrain=False):
    """The cached LeNet for ``dataset``, trained on its training split on first use.

    With the data available (TFDS or files in ``data_dir``, see
    :func:`mmd_keras.datasets.idx.load_arrays`) the cache entry of exactly that data is
    used; without it, the newest entry of this code version is used.

    Args:
        data_dir: where the MNIST files are (see :mod:`mmd_keras.datasets.idx`).
        dataset: ``"mnist"`` or ``"fashion_mnist"``.
        cache_dir: cache folder; default ``$MMD_KERAS_CACHE`` or ``~/.cache/mmd_keras``.
        retrain: train again and replace the cached file.

    Returns:
        :class:`LeNet`.

    Raises:
        DatasetNotAvailableError: nothing cached and no data to train on.
    """
    try:
        images, labels, source = idx.load_arrays(dataset, "train", data_dir)
    except idx.DatasetNotAvailableError:
        pattern = cache_path("*", dataset, cache_dir)
        cached = sorted(glob.glob(pattern), key=os.path.getmtime)
        if not cached or retrain:
            raise
        return _load_cached(cached[-1])
    path = cache_path(data_digest(images, labels), dataset, cache_dir)
    if os.path.isfile(path) and not retrain:
        return _load_cached(path)
    start = time.process_time()
    model = train_lenet(idx.pipeline_to_unit(images), labels.astype(np.int64),
                        **DEFAULT_TRAINING)
    seconds = time.process_time() - start
    test_images, test_labels = idx.mnist_images("test", data_dir, dataset)
    lenet = LeNet(model, path, {"dataset": dataset, "source": source.get("format"),
                                "train_cpu_seconds": round(seconds, 1)})
    lenet.info["test_accuracy"] = lenet.accuracy(test_images, test_labels)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stem = path[:-len(".weights.h5")]
    # The record first, the weights last: a weights file always has its record.
    fileio.atomic_write(stem + ".json", json.dumps(lenet.info, sort_keys=True))
    with fileio.atomic_path(path, suffix=".weights.h5") as tmp_path:
        model.save_weights(tmp_path)
    return lenet


def _load_cached(path):
    model = build_lenet(DEFAULT_TRAINING["seed"], DEFAULT_TRAINING["dropout"])
    model.load_weights(path)
    record = path[:-len(".weights.h5")] + ".json"
    info = {}
    if os.path.isfile(record):
        with open(record) as handle:
            info = json.load(handle)
    return LeNet(model, path, info)


class LeNetExtractor(FeatureExtractor):
    """Paper 1's MNIST features (512-d penultimate layer) and softmax (Inception Score).

    Args:
        lenet: a :class:`LeNet`; default the cached one (:func:`load_lenet`).
        data_dir: MNIST files for training on first use (see :func:`load_lenet`).
        cache_dir: cache folder of the trained weights.
        dataset: ``"mnist"`` (paper 1) or ``"fashion_mnist"``.
        batch_size: images per call.
    """

    has_probabilities = True

    def __init__(self, lenet=None, data_dir=None, cache_dir=None, dataset="mnist",
                 batch_size=500):
        super().__init__("lenet", batch_size=batch_size, channels=1)
        self.lenet = lenet if lenet is not None else load_lenet(data_dir, dataset, cache_dir)

    def _features(self, batch):
        return self.lenet.compute(batch)["features"]

    def _probabilities(self, batch):
        return tf.nn.softmax(self.lenet.compute(batch)["logits"], axis=-1)

    def get_config(self):
        return {**super().get_config(), "classifier": self.lenet.describe()}
