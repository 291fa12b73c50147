"""mmd_keras.diagnostics: kernel matrices, spectra against numpy.linalg.svd, the callback."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import diagnostics, losses
from mmd_keras.layers import SNDense
from mmd_keras.models import MMDGAN


def _numpy_conv_matrix(kernel):
    """[kh, kw, c_in, c_out] -> rows indexed (i, j, c) in C order, by explicit loops."""
    kh, kw, cin, cout = kernel.shape
    rows = []
    for i in range(kh):
        for j in range(kw):
            for c in range(cin):
                rows.append(kernel[i, j, c, :])
    return np.array(rows)


def test_kernel_matrix_reshapes_conv_dense_and_transpose():
    conv = keras.layers.Conv2D(5, 3)
    conv.build((None, 8, 8, 2))
    dense = keras.layers.Dense(4)
    dense.build((None, 7))
    deconv = keras.layers.Conv2DTranspose(3, 2)
    deconv.build((None, 4, 4, 6))
    conv_kernel = conv.kernel.numpy()
    np.testing.assert_array_equal(diagnostics.kernel_matrix(conv), _numpy_conv_matrix(conv_kernel))
    np.testing.assert_array_equal(diagnostics.kernel_matrix(dense), dense.kernel.numpy())
    # Transposed conv kernels are [kh, kw, c_out, c_in]: rows (i, j, c_out), columns c_in.
    assert diagnostics.kernel_matrix(deconv).shape == (2 * 2 * 3, 6)
    with pytest.raises(ValueError, match="kernel of rank >= 2"):
        diagnostics.kernel_matrix(keras.layers.LeakyReLU())


def test_spectrum_matches_numpy_svd(rng):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, name="c")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, name="d")(x)
    model = keras.Model(inputs, outputs)
    spectrum = diagnostics.network_spectrum(model)
    assert list(spectrum) == ["c", "d"]
    for name, matrix in (("c", _numpy_conv_matrix(model.get_layer("c").kernel.numpy())),
                         ("d", model.get_layer("d").kernel.numpy())):
        expected = np.linalg.svd(matrix.astype(np.float64), compute_uv=False)
        np.testing.assert_allclose(spectrum[name]["singular_values"], expected, rtol=1e-12)
        assert spectrum[name]["shape"] == list(matrix.shape)
        assert spectrum[name]["condition_number"] == pytest.approx(expected[0] / expected[-1], rel=1e-12)
    assert list(diagnostics.network_spectrum(model, layer_names=["d"])) == ["d"]
    with pytest.raises(ValueError, match="layer_names"):
        diagnostics.network_spectrum(model, layer_names=["nope"])


def test_condition_number_hand_values():
    assert diagnostics.condition_number([3.0, 1.5]) == 2.0
    assert diagnostics.condition_number(diagnostics.singular_values(np.diag([4.0, 0.5]))) == 8.0
    assert diagnostics.condition_number([1.0, 0.0]) == float("inf")
    with pytest.raises(ValueError, match="rank 2"):
        diagnostics.singular_values(np.ones(3))


def test_effective_kernel_of_a_spectrally_normalized_layer():
    layer = SNDense(3, sn_mode="pim", learned_gain=True)
    layer.build((None, 5))
    layer.gain.assign(2.0)
    for _ in range(50):  # converge the power iteration
        layer(tf.ones([1, 5]), training=True)
    raw = np.linalg.svd(layer.kernel.numpy().astype(np.float64), compute_uv=False)
    effective = diagnostics.network_spectrum(layer)[layer.name]
    # g·W/σ(W) with σ the converged estimate of the top singular value: top value = g.
    np.testing.assert_allclose(effective["singular_values"], 2.0 * raw / raw[0], rtol=1e-4)
    np.testing.assert_allclose(diagnostics.network_spectrum(layer, effective=False)[layer.name]["singular_values"],
                               raw, rtol=1e-6)
    assert effective["condition_number"] == pytest.approx(raw[0] / raw[-1], rel=1e-4)


def _linear_gan(seed=0):
    keras.utils.set_random_seed(seed)
    z = keras.Input((3,))
    images = keras.layers.Reshape((2, 2, 1))(keras.layers.Dense(4, activation="tanh")(z))
    generator = keras.Model(z, images)
    x = keras.Input((2, 2, 1))
    critic = keras.Model(x, keras.layers.Dense(1, name="head")(keras.layers.Flatten()(x)))
    model = MMDGAN(generator, critic, critic_steps=1, seed=seed)
    model.compile(keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-2), loss="smmd")
    return model


def test_sigma_inv_sq_of_a_linear_critic_is_one_plus_ten_norm_squared():
    model = _linear_gan()
    w = model.critic.get_layer("head").kernel.numpy()
    images = np.random.default_rng(0).uniform(-1, 1, (5, 2, 2, 1)).astype(np.float32)
    # h(x) = wᵀx + b has Jacobian wᵀ at every x.
    assert diagnostics.sigma_inv_sq(model.critic, images) == pytest.approx(1.0 + 10.0 * np.sum(w**2), rel=1e-5)
    assert diagnostics.sigma_inv_sq(model.critic, images, coefficient=2.0, offset=0.5) == pytest.approx(
        0.5 + 2.0 * np.sum(w**2), rel=1e-5)


def test_callback_records_spectra_scale_and_summaries(tmp_path):
    model = _linear_gan()
    images = np.random.default_rng(1).uniform(-1, 1, (8, 2, 2, 1)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensors(images).repeat()
    writer = tf.summary.create_file_writer(str(tmp_path / "tb"))
    path = str(tmp_path / "spectrum.json")
    logger = diagnostics.CriticSpectrumLogger(every=2, real_images=images, writer=writer, path=path)
    seen = []
    keep = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(
        (int(model.step.numpy()), float(np.asarray(logs["smmd_scale"])))))
    model.fit(dataset, epochs=1, steps_per_epoch=5, verbose=0, callbacks=[logger, keep])

    assert [e["step"] for e in logger.history] == [0, 2, 4, 5]
    assert logger.history[0]["smmd_sigma_inv_sq"] is None  # no logs before the first step
    scales = dict(seen)
    for entry in logger.history[1:]:
        assert entry["smmd_sigma_inv_sq"] == pytest.approx(1.0 / scales[entry["step"]], rel=1e-6)
    # The last record holds the weights after training: compare with NumPy directly.
    w = model.critic.get_layer("head").kernel.numpy().astype(np.float64)
    last = logger.history[-1]
    np.testing.assert_allclose(last["layers"]["head"]["singular_values"], [np.linalg.norm(w)], rtol=1e-6)
    assert last["sigma_inv_sq"] == pytest.approx(1.0 + 10.0 * np.sum(w**2), rel=1e-5)
    assert logger.history[0]["layers"]["head"]["sigma_max"] != pytest.approx(last["layers"]["head"]["sigma_max"])
    steps, values = logger.series("head", "sigma_max")
    np.testing.assert_array_equal(steps, [0, 2, 4, 5])
    assert values[-1] == pytest.approx(np.linalg.norm(w), rel=1e-6)

    with open(path) as f:
        saved = json.load(f)
    assert [e["step"] for e in saved["history"]] == [0, 2, 4, 5]
    assert not os.path.exists(path + ".tmp")

    tags = set()
    for name in os.listdir(tmp_path / "tb"):
        for record in tf.data.TFRecordDataset(str(tmp_path / "tb" / name)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(v.tag for v in event.summary.value)
    assert {"spectrum/head/condition_number", "spectrum/head/sigma_max", "spectrum/sigma_inv_sq",
            "spectrum/smmd_sigma_inv_sq", "spectrum/head/singular_values"} <= tags


def test_json_replaces_infinite_condition_numbers():
    logger = diagnostics.CriticSpectrumLogger(every=1)
    logger.history.append({"step": 0, "layers": {"x": {"condition_number": float("inf")}},
                           "smmd_sigma_inv_sq": None, "sigma_inv_sq": None})
    text = json.dumps(logger.to_json(), allow_nan=False)
    assert json.loads(text)["history"][0]["layers"]["x"]["condition_number"] is None


@pytest.mark.parametrize("kwargs, match", [({"every": 0}, "every"), ({"every": 2.0}, "every"),
                                           ({"network": 3}, "network")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        diagnostics.CriticSpectrumLogger(**kwargs)


def test_missing_network_attribute_is_named():
    model = _linear_gan()
    logger = diagnostics.CriticSpectrumLogger(network="discriminator")
    logger.set_model(model)
    with pytest.raises(ValueError, match="discriminator"):
        logger.record(0)


def test_jacobian_helper_is_the_losses_one():
    # sigma_inv_sq must agree with the SMMD loss's own scale on the same batch.
    model = _linear_gan()
    images = tf.constant(np.random.default_rng(2).uniform(-1, 1, (6, 2, 2, 1)), tf.float32)
    _, norms = losses.jacobian_squared_norms(model.critic, images)
    scale = losses.smmd_scale(tf.reduce_mean(norms))
    assert diagnostics.sigma_inv_sq(model.critic, images) == pytest.approx(1.0 / float(scale), rel=1e-6)
