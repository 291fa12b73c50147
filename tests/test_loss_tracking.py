"""The loss as a tracked Keras object: its state variables are the model's, carried by `.keras`,
`save_weights`, `tf.train.Checkpoint` and `BackupAndRestore` with no hand wiring; it declares its
regularization coefficient; it serializes through Keras for every registry name."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import collapse, losses
from mmd_keras.models import MMDGAN
from test_models_saving import StopAt, deterministic  # noqa: F401 (a fixture)

LATENT_DIM, BATCH, BATCHES, EPOCHS = 3, 4, 3, 2
#: MMD-GP (the gradient-penalty weight), a loss with a coefficient, a stateless loss.
CASES = {"mmd": "gradient_penalty_weight", "smmd": "coefficient", "hinge": None}
#: A value no loss starts with, assigned to every state variable before saving.
CHANGED = 7.25


def build(loss, init_seed=0, **kwargs):
    loss = losses.get(loss) if isinstance(loss, str) else loss
    keras.utils.set_random_seed(init_seed)
    z = keras.Input((LATENT_DIM,))
    generator = keras.Model(z, keras.layers.Reshape((4, 4, 1))(keras.layers.Dense(16, activation="tanh")(z)))
    images = keras.Input((4, 4, 1))
    h = keras.layers.Dense(8, activation="tanh")(keras.layers.Flatten()(images))
    critic = keras.Model(images, keras.layers.Dense(loss.required_output_dim or 2)(h))
    model = MMDGAN(generator, critic, critic_steps=2, seed=3, **kwargs)
    model.compile(loss=loss, jit_compile=False)
    return model


def dataset():
    images = np.random.default_rng(0).uniform(-1, 1, (BATCHES * BATCH, 4, 4, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(images).batch(BATCH)


def loss_values(model):
    return {variable.name: float(variable.numpy()) for variable in model.loss_object.variables}


def all_values(model):
    """Every variable of the model (networks, counters, loss) and of both optimizers, by position."""
    named = {f"model/{i}/{v.name}": v for i, v in enumerate(model.variables)}
    for role in ("generator", "critic"):  # slot names hold layer names, numbered per process
        named.update({f"{role}/{i}": v for i, v in enumerate(getattr(model, f"{role}_optimizer").variables)})
    return {key: np.array(v) for key, v in named.items()}


@pytest.mark.parametrize("name", CASES)
def test_loss_variables_are_model_variables_and_declare_the_coefficient(name):
    model = build(name)
    loss = model.loss_object
    ids = {id(v) for v in model.variables}
    assert all(id(v) in ids for v in loss.variables)
    assert not any(id(v) in {id(t) for t in model.trainable_variables} for v in loss.variables)
    if CASES[name] is None:
        assert loss.variables == [] and loss.regularization_coefficient is None
        with pytest.raises(ValueError, match="adjustable regularization coefficient"):
            collapse.regularization_variable(loss)
    else:
        coefficient_name, variable = loss.regularization_coefficient
        assert coefficient_name == CASES[name] and loss.variables == [variable]
        assert variable.path == f"{name}/{CASES[name]}"
        assert collapse.regularization_variable(loss) == (coefficient_name, variable)
    assert model.checkpoint_items()["loss"] is loss


def _save_and_restore(model, route, tmp_path, fresh):
    if route == "keras":
        model.save(tmp_path / "gan.keras")
        return keras.models.load_model(tmp_path / "gan.keras")
    if route == "save_weights":
        model.save_weights(tmp_path / "gan.weights.h5")
        fresh.load_weights(tmp_path / "gan.weights.h5")
    elif route == "checkpoint_items":
        path = tf.train.Checkpoint(**model.checkpoint_items()).write(str(tmp_path / "items"))
        tf.train.Checkpoint(**fresh.checkpoint_items()).read(path).assert_consumed()
    else:  # the model itself: the loss is one of its tracked children
        path = tf.train.Checkpoint(model=model).write(str(tmp_path / "model"))
        tf.train.Checkpoint(model=fresh).read(path).assert_existing_objects_matched()
    return fresh


@pytest.mark.parametrize("route", ["keras", "save_weights", "checkpoint_items", "model_checkpoint"])
@pytest.mark.parametrize("name", CASES)
def test_changed_loss_state_survives_every_save_route(tmp_path, name, route):
    model = build(name)
    model.fit(dataset(), epochs=1, verbose=0)
    for variable in model.loss_object.variables:
        variable.assign(CHANGED)
    restored = _save_and_restore(model, route, tmp_path, build(name, init_seed=1))
    assert loss_values(restored) == loss_values(model) == {v: CHANGED for v in ([CASES[name]] if CASES[name] else [])}
    expected = all_values(model)
    got = all_values(restored)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    # The restored loss computes what the saved one does (its penalty weight/coefficient included).
    real = tf.constant(np.random.default_rng(1).uniform(-1, 1, (BATCH, 4, 4, 1)), tf.float32)
    fake = restored.generator(tf.zeros((BATCH, LATENT_DIM)))
    outputs = [m.loss_object(m.critic, real, fake, seed=[1, 2], mode="critic").critic_loss.numpy()
               for m in (model, restored)]
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("name", ["mmd", "smmd"])
def test_backup_and_restore_carries_the_changed_loss_state(tmp_path, deterministic, name):
    def changed(model):
        for variable in model.loss_object.variables:
            variable.assign(CHANGED)
        return model

    uninterrupted = changed(build(name))
    uninterrupted.fit(dataset(), epochs=EPOCHS, verbose=0)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=1)
    with pytest.raises(RuntimeError, match="interrupted"):
        changed(build(name)).fit(dataset(), epochs=EPOCHS, callbacks=[backup, StopAt(BATCHES + 1)], verbose=0)
    resumed = build(name, init_seed=4)  # the loss at its constructor value until the backup is restored
    assert loss_values(resumed) != loss_values(uninterrupted)
    resumed.fit(dataset(), epochs=EPOCHS, callbacks=[backup], verbose=0)
    assert loss_values(resumed) == {CASES[name]: CHANGED}
    expected, got = all_values(uninterrupted), all_values(resumed)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_a_new_compile_replaces_the_tracked_loss():
    model = build("mmd")
    weight = model.loss_object.gradient_penalty_weight_variable
    model.compile(loss="smmd")
    ids = {id(v) for v in model.variables}
    assert id(model.loss_object.coefficient) in ids and id(weight) not in ids
    assert [layer for layer in model.layers if isinstance(layer, losses.GANLoss)] == [model.loss_object]


def _critic(name, rng):
    dim = losses.LOSSES[name].required_output_dim or 3
    kernel = tf.constant(rng.normal(size=(16, dim)) * 0.5, tf.float32)
    return lambda images: tf.matmul(tf.reshape(images, (-1, 16)), kernel)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_every_loss_round_trips_through_keras_serialization(name):
    loss = losses.get(name)
    config = losses.serialize(loss)
    assert config["registered_name"] == f"mmd_keras>{type(loss).__name__}"
    config = json.loads(json.dumps(config))  # what a .keras file stores
    clones = [losses.deserialize(config), losses.get(config), keras.saving.deserialize_keras_object(config),
              losses.deserialize({"class_name": name, "config": loss.get_config()})]
    rng = np.random.default_rng(0)
    critic = _critic(name, rng)
    real, fake, fake_2 = (tf.constant(rng.uniform(-1, 1, (4, 4, 4, 1)), tf.float32) for _ in range(3))
    extra = {"fake_images_2": fake_2} if loss.num_fake_batches == 2 else {}
    expected = loss(critic, real, fake, seed=[3, 4], mode="both", **extra)
    for clone in clones:
        assert type(clone) is type(loss) and clone is not loss
        assert clone.get_config() == loss.get_config() and losses.serialize(clone) == losses.serialize(loss)
        out = clone(critic, real, fake, seed=[3, 4], mode="both", **extra)
        assert out.critic_loss.numpy() == expected.critic_loss.numpy()
        assert out.generator_loss.numpy() == expected.generator_loss.numpy()


def test_parameters_round_trip_and_bad_configs_are_refused():
    loss = losses.get("smmd", coefficient=3.0, offset=0.5, kernel="dot", gradient_penalty_weight=0.2)
    clone = losses.deserialize(json.loads(json.dumps(losses.serialize(loss))))
    assert clone.get_config() == loss.get_config() and float(clone.coefficient.numpy()) == 3.0
    assert clone.gradient_penalty_weight == 0.2
    with pytest.raises(ValueError, match="mmd_keras loss"):
        losses.deserialize(keras.saving.serialize_keras_object(keras.layers.Dense(2)))
    with pytest.raises(ValueError, match="'class_name'"):
        losses.deserialize({"config": {}})
    with pytest.raises(ValueError, match="no extra parameters"):
        losses.get(losses.serialize(loss), coefficient=1.0)
    with pytest.raises(ValueError, match="sigma"):
        losses.deserialize({"class_name": "mmd", "config": {"sigma": 1.0}})


MIRRORED_SCRIPT = textwrap.dedent("""
    import sys, tempfile
    import numpy as np, tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    import test_loss_tracking as t

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = t.build("mmd")
    # compile outside the scope: the loss's variables are still created in the model's strategy
    model.compile(loss="smmd", jit_compile=False)
    coefficient = model.loss_object.coefficient
    assert len(coefficient.value.values) == 2, coefficient.value
    model.fit(t.dataset(), epochs=1, verbose=0)
    coefficient.assign(t.CHANGED)
    path = tempfile.mkdtemp() + "/gan.weights.h5"
    model.save_weights(path)
    with strategy.scope():
        fresh = t.build("smmd", init_seed=1)
    fresh.load_weights(path)
    values = [float(v.numpy()) for v in fresh.loss_object.coefficient.value.values]
    assert values == [t.CHANGED, t.CHANGED], values
    print("OK")
""")


@pytest.mark.slow
def test_loss_variables_are_mirrored_and_restore_on_every_replica(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, str(script), os.path.dirname(os.path.abspath(__file__))],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
