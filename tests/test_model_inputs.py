"""Tests of what a user hands to `MMDGAN` (`mmd_keras.model_inputs`): compile's optimizers and
their defaults, fit's range check of real images, predict's latents."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import model_inputs
from mmd_keras.app import config
from mmd_keras.models import MMDGAN, _real_images

LATENT_DIM, BATCH = 4, 6


def tiny_model(compile_kwargs=None, **kwargs):
    """Generator [b, 4] -> [b, 4, 4, 1] (tanh), critic -> [b, 3], "mmd" loss."""
    keras.utils.set_random_seed(0)
    z = keras.Input((LATENT_DIM,))
    generator = keras.Model(z, keras.layers.Reshape((4, 4, 1))(keras.layers.Dense(16, activation="tanh")(z)))
    images = keras.Input((4, 4, 1))
    critic = keras.Model(images, keras.layers.Dense(3)(keras.layers.Flatten()(images)))
    model = MMDGAN(generator, critic, critic_steps=1, **kwargs)
    model.compile(**{"loss": "mmd", **(compile_kwargs or {})})
    return model


def unit_images(n=4 * BATCH, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 4, 4, 1)).astype("float32")


def weights(model):
    return [np.array(v) for v in model.weights]


# ------------------------------------------------------------------------------ compile
def test_compile_defaults_are_the_launchers_adam():
    model = tiny_model()
    defaults = {f.name: f.default for f in dataclasses.fields(config.RunConfig)}
    for optimizer, lr, field in ((model.generator_optimizer, 2e-4, "generator_lr"),
                                 (model.critic_optimizer, 5e-4, "critic_lr")):
        assert isinstance(optimizer, keras.optimizers.Adam)
        got = optimizer.get_config()
        assert got["learning_rate"] == pytest.approx(lr) == pytest.approx(defaults[field])
        assert (got["beta_1"], got["beta_2"]) == pytest.approx((0.5, 0.999))
        assert (got["beta_1"], got["beta_2"]) == pytest.approx((defaults["adam_beta1"], defaults["adam_beta2"]))


@pytest.mark.parametrize("optimizer", ["adam", keras.optimizers.Adam(3e-3, beta_1=0.3),
                                       {"class_name": "SGD", "config": {"learning_rate": 0.05}}])
def test_compile_optimizer_gives_each_network_its_own_copy(optimizer):
    model = tiny_model({"optimizer": optimizer})
    expected = keras.optimizers.get(optimizer).get_config()
    generator_opt, critic_opt = model.generator_optimizer, model.critic_optimizer
    assert generator_opt is not critic_opt and generator_opt is not optimizer
    for opt in (generator_opt, critic_opt):
        assert {k: v for k, v in opt.get_config().items() if k != "name"} == \
            {k: v for k, v in expected.items() if k != "name"}
    model.fit(unit_images(BATCH), epochs=1, batch_size=BATCH, verbose=0)
    assert int(generator_opt.iterations.numpy()) == 1 and int(critic_opt.iterations.numpy()) == 1
    # Round trip through the compile config (what `model.save` stores).
    again = tiny_model()
    again.compile_from_config(model.get_compile_config())
    assert again.critic_optimizer.get_config()["learning_rate"] == pytest.approx(expected["learning_rate"])


def test_compile_rejects_optimizer_with_the_per_network_ones_and_a_shared_instance():
    model = tiny_model()
    with pytest.raises(ValueError, match="either `optimizer`.*`generator_optimizer`/`critic_optimizer`"):
        model.compile(optimizer="adam", critic_optimizer="sgd", loss="mmd")
    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="Expected two optimizer instances"):
        model.compile(generator_optimizer=shared, critic_optimizer=shared, loss="mmd")


def test_compile_accepts_identifiers_per_network():
    model = tiny_model({"generator_optimizer": "sgd", "critic_optimizer": {"class_name": "Adam",
                                                                          "config": {"learning_rate": 0.01}}})
    assert isinstance(model.generator_optimizer, keras.optimizers.SGD)
    assert model.critic_optimizer.get_config()["learning_rate"] == pytest.approx(0.01)


# --------------------------------------------------------------------------- fit's check
PIXELS = np.round((unit_images() + 1) * 127.5)  # [0, 255] floats, as image_dataset_from_directory
PIXELS[0, 0, 0], PIXELS[1, 0, 0] = 0.0, 255.0  # the first batch spans [0, 255]


@pytest.mark.parametrize("form", ["numpy", "uint8_numpy", "dataset", "labelled", "dict", "uint8_dataset"])
def test_fit_refuses_images_outside_unit_range_before_any_update(form):
    model = tiny_model()
    x = {"numpy": PIXELS, "uint8_numpy": PIXELS.astype("uint8")}.get(form)
    if x is None:
        dataset = tf.data.Dataset.from_tensor_slices(PIXELS.astype("uint8") if form == "uint8_dataset" else PIXELS)
        if form == "labelled":
            dataset = tf.data.Dataset.zip(dataset, tf.data.Dataset.range(len(PIXELS)))
        elif form == "dict":
            dataset = dataset.map(lambda image: {"image": image, "label": 0})
        x = dataset.batch(BATCH)
    before = weights(model)
    with pytest.raises(ValueError) as info:
        model.fit(x, batch_size=BATCH if form.endswith("numpy") else None, epochs=1, verbose=0)
    message = str(info.value)
    assert message.startswith("Expected real images in [-1, 1]")
    assert "spans [0, 255]" in message
    assert "`images / 127.5 - 1`" in message and "mmd_keras.datasets.to_unit_range" in message
    assert "check_input_range=False" in message
    for old, new in zip(before, weights(model)):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("fit_kwargs", [{"steps_per_execution": 2}, {"backup": True}])
def test_fit_refuses_with_steps_per_execution_and_backup_and_restore(fit_kwargs, tmp_path):
    model = tiny_model({"steps_per_execution": fit_kwargs.get("steps_per_execution", 1)})
    callbacks = [keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))] if "backup" in fit_kwargs else []
    with pytest.raises(ValueError, match=r"spans \[0, 255\]"):
        model.fit(tf.data.Dataset.from_tensor_slices(PIXELS).batch(BATCH), epochs=2, callbacks=callbacks,
                  verbose=0)
    assert int(model.step.numpy()) == 0


def test_fit_accepts_slight_overshoot_and_the_check_can_be_turned_off():
    model = tiny_model()
    overshoot = unit_images() * (1 + model_inputs.TOLERANCE * 0.9)  # e.g. bicubic resizing ringing
    model.fit(tf.data.Dataset.from_tensor_slices(overshoot).batch(BATCH), epochs=1, verbose=0)
    assert int(model.step.numpy()) == 4
    beyond = unit_images() * (1 + model_inputs.TOLERANCE * 1.1)
    with pytest.raises(ValueError, match="Expected real images in"):
        model.fit(beyond, batch_size=BATCH, epochs=1, verbose=0)
    model.fit(PIXELS, batch_size=BATCH, epochs=1, verbose=0, check_input_range=False)
    model.fit(tf.data.Dataset.from_tensor_slices(PIXELS).batch(BATCH), epochs=1, verbose=0,
              check_input_range=False)
    assert int(model.step.numpy()) == 12


def test_fit_check_leaves_a_reshuffling_dataset_unchanged():
    """A seeded, reshuffling dataset gives the same epochs with the check as without it: the
    check does not peek with an iterator of its own (which would advance the shuffle seeds)."""
    states = []
    for check in (True, False):
        model = tiny_model()
        dataset = tf.data.Dataset.from_tensor_slices(unit_images()).shuffle(24, seed=3).batch(BATCH)
        model.fit(dataset, epochs=2, verbose=0, check_input_range=check)
        states.append(weights(model))
    for a, b in zip(*states):
        np.testing.assert_array_equal(a, b)


def test_checked_dataset_reduces_over_every_value_of_any_layout():
    """Elements ``[batch, n, H, W, C]`` (n real batches per generator step) are checked over
    all their values; the first element of each iteration is checked, and elements pass unchanged."""
    good = unit_images(2 * 3 * BATCH).reshape(2, BATCH, 3, 4, 4, 1)
    bad = good.copy()
    bad[0, 0, 0, 0, 0], bad[0, -1, -1] = -1.0, 3.0  # 3: the last of the n batches of the first element
    checked = model_inputs.checked_dataset(tf.data.Dataset.from_tensor_slices(good), _real_images)
    np.testing.assert_array_equal(np.stack([e.numpy() for e in checked]), good)
    checked = model_inputs.checked_dataset(tf.data.Dataset.from_tensor_slices(bad), _real_images)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        list(checked)
    with pytest.raises(ValueError, match=r"spans \[-1, 3\]"):
        model_inputs.raise_clear_range_error(info.value)
    model_inputs.raise_clear_range_error(tf.errors.InvalidArgumentError(None, None, "other"))  # passes


def test_fit_skips_the_check_for_toy_points():
    keras.utils.set_random_seed(0)
    z = keras.Input((LATENT_DIM,))
    points = keras.Input((2,))
    model = MMDGAN(keras.Model(z, keras.layers.Dense(2)(z)), keras.Model(points, keras.layers.Dense(3)(points)),
                   critic_steps=1)
    model.compile(loss="mmd")
    ring = 2.0 * np.random.default_rng(0).standard_normal((2 * BATCH, 2)).astype("float32") + 2.0
    model.fit(ring, batch_size=BATCH, epochs=1, verbose=0)
    assert int(model.step.numpy()) == 2


# ------------------------------------------------------------------------------ predict
def test_predict_and_call_name_the_expected_latent_shape():
    model = tiny_model(ema_decay=0.5)
    wrong = np.zeros((3, LATENT_DIM + 1), "float32")
    expected = r"Expected latents of shape \[batch, 4\].*Received: `latents` of shape \((None|\d), 5\)"
    with pytest.raises(ValueError, match=expected):
        model.predict(wrong, verbose=0)
    with pytest.raises(ValueError, match=expected):
        model.predict(tf.data.Dataset.from_tensor_slices(wrong).batch(2), verbose=0)
    with pytest.raises(ValueError, match=expected):
        model(wrong)
    with pytest.raises(ValueError, match=r"Expected latents of shape \[batch, 4\]"):
        model.predict(tf.data.Dataset.from_tensor_slices(np.zeros((3, 2, 4), "float32")).batch(2), verbose=0)
    right = np.zeros((3, LATENT_DIM), "float32")
    np.testing.assert_allclose(model.predict(tf.data.Dataset.from_tensor_slices(right).batch(2), verbose=0),
                               model.ema_generator(right).numpy(), atol=1e-6)
