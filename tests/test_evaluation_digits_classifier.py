"""The offline digits classifier: held-out accuracy, cache, determinism, outputs."""

import numpy as np
import pytest

from mmd_keras import datasets
from mmd_keras.evaluation import digits_classifier


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("cache")
    return cache_dir, digits_classifier.load_digits_classifier(cache_dir=str(cache_dir))


@pytest.mark.slow
def test_held_out_accuracy_above_97_percent(trained):
    _, classifier = trained
    accuracy_32, accuracy_16 = classifier.accuracy(32), classifier.accuracy(16)
    print("held-out accuracy", accuracy_32, accuracy_16)
    assert accuracy_32 > 0.97 and accuracy_16 > 0.97


@pytest.mark.slow
def test_cached_classifier_is_reloaded_without_training(trained, monkeypatch):
    cache_dir, classifier = trained
    path = digits_classifier.cache_path(str(cache_dir))
    assert classifier.path == path
    monkeypatch.setattr(digits_classifier, "train_digits_classifier",
                        lambda **kw: pytest.fail("retrained although cached"))
    reloaded = digits_classifier.load_digits_classifier(cache_dir=str(cache_dir))
    images, _ = datasets.digits_images("test", 32)
    np.testing.assert_array_equal(reloaded.compute(images[:50])["logits"].numpy(),
                                  classifier.compute(images[:50])["logits"].numpy())


@pytest.mark.slow
def test_outputs_are_features_and_softmax(trained):
    _, classifier = trained
    images, labels = datasets.digits_images("test", 16)
    logits = classifier.compute(images)["logits"].numpy()
    features, probabilities = classifier.features(images), classifier.probabilities(images)
    assert features.shape == (len(images), digits_classifier.FEATURE_DIM)
    assert features.min() >= 0.0  # ReLU features
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probabilities, expected / expected.sum(1, keepdims=True), atol=1e-6)
    # Confident and mostly right: argmax agrees with the labels on > 97 %.
    assert np.mean(probabilities.argmax(1) == labels) > 0.97


@pytest.mark.slow
def test_training_is_deterministic_and_uses_the_training_split():
    first = digits_classifier.train_digits_classifier(epochs=1)
    second = digits_classifier.train_digits_classifier(epochs=1)
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    train, test = datasets.digits_split()
    images, labels = digits_classifier.training_data()
    assert len(images) == 2 * len(train) and len(set(train) & set(test)) == 0
    expected16, expected_labels = datasets.digits_images("train", 16)
    np.testing.assert_array_equal(images[: len(train)], expected16)
    np.testing.assert_array_equal(labels[: len(train)], expected_labels)


def test_cache_dir_defaults_to_env_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MMD_KERAS_CACHE", str(tmp_path))
    assert digits_classifier.cache_path().startswith(str(tmp_path))
    monkeypatch.delenv("MMD_KERAS_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert digits_classifier.default_cache_dir() == str(tmp_path / "home" / ".cache" / "mmd_keras")
