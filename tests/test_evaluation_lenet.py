"""mmd_keras.evaluation.lenet: paper 1's MNIST scorer, its cache, the registry and the CLI (issue 15)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mmd_keras.datasets import idx
from mmd_keras.evaluation import extractors, lenet, protocol, weights

REAL_MNIST = os.environ.get("MMD_KERAS_TEST_MNIST") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "mnist")
TINY_TRAINING = {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "dropout": 0.5, "seed": 0}


def test_architecture_is_the_tensorflow_tutorials():
    model = lenet.build_lenet()
    # conv 5x5x1x32 + b, conv 5x5x32x64 + b, dense 7*7*64 -> 512 + b, dense 512 -> 10 + b.
    expected = (25 * 32 + 32) + (25 * 32 * 64 + 64) + (7 * 7 * 64 * 512 + 512) + (512 * 10 + 10)
    assert model.count_params() == expected == 1_663_370
    out = model(np.zeros((2, 28, 28, 1), np.float32))
    assert out["features"].shape == (2, 512) and out["logits"].shape == (2, 10)
    kernels = [layer.kernel.shape for layer in model.layers if hasattr(layer, "kernel")]
    assert [tuple(k) for k in kernels] == [(5, 5, 1, 32), (5, 5, 32, 64), (3136, 512), (512, 10)]


def blobs(n, seed):
    """Class c = a bright 7×7 square in cell c of a 4×3 grid: learnable in one short epoch."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = np.full((n, 28, 28, 1), -1.0, np.float32)
    for i, c in enumerate(labels):
        r, col = divmod(int(c), 4)
        images[i, 7 * r + 1: 7 * r + 8, 7 * col: 7 * col + 7] = 1.0
    return images, labels


def test_training_is_deterministic_and_learns():
    images, labels = blobs(320, 0)
    first = lenet.train_lenet(images, labels, **TINY_TRAINING)
    second = lenet.train_lenet(images, labels, **TINY_TRAINING)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    test_images, test_labels = blobs(200, 1)
    assert lenet.LeNet(first).accuracy(test_images, test_labels) > 0.9


def write_tiny_mnist(folder, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", 64), ("test", 32)):
        arrays[f"x_{split}"] = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        arrays[f"y_{split}"] = rng.integers(0, 10, n).astype(np.uint8)
    os.makedirs(folder, exist_ok=True)
    np.savez(os.path.join(folder, "mnist.npz"), **arrays)
    return arrays


def test_cache_is_keyed_by_data_and_code(tmp_path, monkeypatch):
    monkeypatch.setitem(idx.SPLIT_SIZES, "train", 64)
    monkeypatch.setitem(idx.SPLIT_SIZES, "test", 32)
    monkeypatch.setattr(lenet, "DEFAULT_TRAINING", TINY_TRAINING)
    arrays = write_tiny_mnist(tmp_path / "a")
    cache = str(tmp_path / "cache")
    trained = lenet.load_lenet(str(tmp_path / "a"), cache_dir=cache)
    digest = lenet.data_digest(arrays["x_train"], arrays["y_train"])
    assert trained.path == lenet.cache_path(digest, cache_dir=cache) and os.path.isfile(trained.path)
    assert 0.0 <= trained.info["test_accuracy"] <= 1.0 and trained.info["source"] == "npz"

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although cached")

    monkeypatch.setattr(lenet, "train_lenet", no_training)
    again = lenet.load_lenet(str(tmp_path / "a"), cache_dir=cache)
    assert again.path == trained.path and again.info == trained.info
    for a, b in zip(again.model.get_weights(), trained.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # No data at hand: the newest entry of this code version.
    assert lenet.load_lenet(str(tmp_path / "empty"), cache_dir=cache).path == trained.path
    # Other data: another key, so a new training.
    write_tiny_mnist(tmp_path / "b", seed=1)
    with pytest.raises(AssertionError, match="trained again"):
        lenet.load_lenet(str(tmp_path / "b"), cache_dir=cache)
    # The code is part of the key too.
    monkeypatch.setattr(lenet, "VERSION", lenet.VERSION + 1)
    assert lenet.cache_path(digest, cache_dir=cache) != trained.path


def test_extractor_is_registered_and_gives_features_and_softmax():
    assert "lenet" in extractors.EXTRACTORS and "lenet" in weights.EXTRACTOR_NAMES
    network = lenet.LeNet(lenet.build_lenet(seed=3))
    extractor = extractors.get("lenet", lenet=network, batch_size=7)
    images = np.random.default_rng(0).uniform(-1, 1, (10, 28, 28, 1)).astype(np.float32)
    outputs = network.model(images)
    np.testing.assert_allclose(extractor(images), outputs["features"].numpy(), rtol=1e-5, atol=1e-6)
    logits = outputs["logits"].numpy().astype(np.float64)
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    np.testing.assert_allclose(extractor.probabilities(images), softmax, rtol=1e-5, atol=1e-6)
    # RGB is averaged to one channel, and 32 px is resized to 28 (bilinear).
    rgb32 = np.repeat(np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1), 3, -1)
    import tensorflow as tf
    resized = tf.image.resize(rgb32[..., :1], (28, 28), method="bilinear").numpy()
    np.testing.assert_allclose(extractor(rgb32), network.model(resized)["features"].numpy(),
                               rtol=1e-5, atol=1e-5)
    assert extractor.get_config()["classifier"]["feature_dim"] == 512


@pytest.mark.slow
def test_cli_scores_against_mnist_with_lenet_and_paper1_protocol(tmp_path):
    """``python -m mmd_keras.evaluation`` (subprocess) with a LeNet placed in the cache by hand."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (60_000, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 60_000).astype(np.uint8),
              "x_test": rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, 10_000).astype(np.uint8)}
    np.savez(tmp_path / "mnist.npz", **arrays)
    cache = tmp_path / "cache"
    network = lenet.build_lenet(seed=4)
    path = lenet.cache_path(lenet.data_digest(arrays["x_train"], arrays["y_train"]),
                            cache_dir=str(cache))
    os.makedirs(cache)
    network.save_weights(path)
    samples = rng.integers(0, 256, (300, 28, 28, 1), dtype=np.uint8)
    np.savez(tmp_path / "samples.npz", images=samples)
    out = tmp_path / "scores.json"
    command = [sys.executable, "-m", "mmd_keras.evaluation", f"--samples={tmp_path / 'samples.npz'}",
               "--reference=mnist", f"--data_dir={tmp_path}", "--extractor=lenet",
               f"--cache_dir={cache}", "--protocol=paper1", "--bootstraps=3", "--kid_subsets=5",
               "--num_reference=500", f"--output={out}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["reference"]["dataset"] == "mnist" and report["reference"]["split"] == "test"
    extractor = lenet.LeNetExtractor(lenet.LeNet(network))
    reference = arrays["x_test"][:500, :, :, None].astype(np.float32) / 127.5 - 1
    generated = samples.astype(np.float32) / 127.5 - 1
    expected = protocol.paper1_scores(generated, reference, extractor, kid_subsets=5,
                                      kid_subset_size=300, bootstraps=3, seed=0)
    np.testing.assert_allclose(report["metrics"]["kid"]["mean"], expected["kid"]["mean"], rtol=1e-4)
    np.testing.assert_allclose(report["metrics"]["fid"]["values"], expected["fid"]["values"], rtol=1e-4)
    np.testing.assert_allclose(report["metrics"]["inception_score"]["mean"],
                               expected["inception_score"]["mean"], rtol=1e-4)
    assert report["extractor"]["name"] == "lenet"
    bad = subprocess.run(command[:-1] + ["--protocol=paper2", f"--output={tmp_path / 'x.json'}"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--protocol" in bad.stderr


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(REAL_MNIST), reason="no <repo>/../shared/data/mnist")
def test_real_mnist_lenet_reaches_99_percent():
    """Trains (minutes; cached afterwards) on the 60,000 images; ≥ 99.0 % on the 10,000."""
    network = lenet.load_lenet(REAL_MNIST)
    images, labels = idx.mnist_images("test", REAL_MNIST)
    assert network.accuracy(images, labels) >= 0.99
