"""Extractor interface: batching, input checks, channel handling, registry, Keras InceptionV3."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras.evaluation import digits_classifier, extractors


def test_function_extractor_batches_with_padding_and_matches_numpy(rng):
    seen = []

    def features_fn(batch):
        seen.append(batch.shape[0])
        return tf.reduce_mean(batch, axis=(1, 2))  # [b, C]

    images = rng.uniform(-1, 1, size=(7, 5, 4, 3)).astype(np.float32)
    extractor = extractors.FunctionExtractor(features_fn, name="mean", batch_size=3)
    np.testing.assert_allclose(extractor(images), images.mean(axis=(1, 2)), atol=1e-6)
    assert seen == [3, 3, 3]  # the last batch of 1 is padded: one traced shape
    with pytest.raises(NotImplementedError, match="Inception Score"):
        extractor.probabilities(images)


def test_channel_conversion(rng):
    gray = rng.uniform(-1, 1, size=(2, 4, 4, 1)).astype(np.float32)
    to_rgb = extractors.FunctionExtractor(lambda b: tf.reshape(b, [b.shape[0], -1]), channels=3)
    np.testing.assert_array_equal(to_rgb(gray).reshape(2, 4, 4, 3), np.repeat(gray, 3, -1))
    rgb = rng.uniform(-1, 1, size=(2, 4, 4, 3)).astype(np.float32)
    to_gray = extractors.FunctionExtractor(lambda b: tf.reshape(b, [b.shape[0], -1]), channels=1)
    np.testing.assert_allclose(to_gray(rgb).reshape(2, 4, 4, 1), rgb.mean(-1, keepdims=True),
                               atol=1e-7)


@pytest.mark.parametrize("images, message", [
    (np.zeros((4, 4, 1)), r"shape \[N >= 1, H, W, C\]"),
    (np.zeros((0, 4, 4, 1)), "shape"),
    (np.zeros((1, 4, 4, 2)), "C in"),
    (np.full((1, 4, 4, 1), 255, np.uint8), r"in \[-1, 1\].*x / 127.5 - 1"),
    (np.full((1, 4, 4, 1), np.nan), "finite"),
])
def test_bad_images_are_rejected(images, message):
    extractor = extractors.FunctionExtractor(lambda b: b[:, 0, 0, :])
    with pytest.raises(ValueError, match=message):
        extractor(images)


def test_registry():
    custom = extractors.FunctionExtractor(lambda b: b)
    assert extractors.get(custom) is custom
    wrapped = extractors.get(lambda b: b[:, 0, 0, :], name="corner")
    assert isinstance(wrapped, extractors.FunctionExtractor) and wrapped.name == "corner"
    with pytest.raises(ValueError, match="Expected `identifier` in"):
        extractors.get("vgg")
    with pytest.raises(ValueError, match="batch_size"):
        extractors.FunctionExtractor(lambda b: b, batch_size=0)


def test_digits_extractor_uses_penultimate_features_and_softmax(rng):
    classifier = digits_classifier.DigitsClassifier(digits_classifier.build_digits_classifier())
    extractor = extractors.DigitsClassifierExtractor(classifier, batch_size=4)
    images = rng.uniform(-1, 1, size=(6, 32, 32, 1)).astype(np.float32)
    outputs = classifier.model(tf.image.resize(images, (16, 16)))
    np.testing.assert_allclose(extractor(images), outputs["features"].numpy(), atol=1e-5)
    logits = outputs["logits"].numpy()
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(extractor.probabilities(images),
                               expected / expected.sum(1, keepdims=True), atol=1e-6)
    # RGB input is averaged to one channel first.
    rgb = np.repeat(images, 3, axis=-1)
    np.testing.assert_allclose(extractor(rgb), extractor(images), atol=1e-6)
    assert extractor.get_config()["classifier"]["version"] == digits_classifier.VERSION


def test_keras_inception_v3_errors(tmp_path, monkeypatch):
    missing = tmp_path / "inception_v3.weights.h5"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        extractors.KerasInceptionV3Extractor(weights=missing)

    def offline(**kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    with pytest.raises(RuntimeError, match="Offline, pass `weights=<path>`"):
        extractors.KerasInceptionV3Extractor(weights="imagenet")


@pytest.mark.slow
def test_keras_inception_v3_loads_weights_by_path(tmp_path, rng):
    keras.utils.set_random_seed(0)
    base = keras.applications.InceptionV3(include_top=False, weights=None,
                                          input_shape=(299, 299, 3), pooling="avg")
    path = tmp_path / "inception_v3.weights.h5"
    base.save_weights(path)
    extractor = extractors.KerasInceptionV3Extractor(weights=path, batch_size=1)
    for loaded, saved in zip(extractor._model.weights, base.weights):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())
    images = rng.uniform(-1, 1, size=(1, 40, 40, 1)).astype(np.float32)
    expected = base(tf.image.resize(np.repeat(images, 3, -1), (299, 299)), training=False)
    features = extractor(images)
    assert features.shape == (1, 2048)
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_networks_are_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = digits_classifier.build_digits_classifier()
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert keras.config.dtype_policy().name == "mixed_bfloat16"  # restored afterwards
