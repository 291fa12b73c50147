"""MMDGAN's Keras contract: save/load/continue, save_weights, BackupAndRestore (exact, also
after a real SIGKILL), evaluate and predict.

Run as a script (``python tests/test_models_saving.py SCHEDULE BACKUP_DIR OUT.npz [KILL_AT]``)
this module is the worker of the SIGKILL test: it fits with `BackupAndRestore` and either
kills itself with SIGKILL after generator step KILL_AT or writes every variable to OUT.npz.
"""

import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from mmd_keras import losses, rng
from mmd_keras.models import EVALUATION_INDEX, MMDGAN

LATENT_DIM, BATCH, BATCHES, EPOCHS = 3, 4, 4, 3


def build(schedule="fixed", loss="sobolev", ema_decay=0.5, init_seed=0, **compile_kwargs):
    """Tiny tanh networks, non-default optimizers and loss parameters, EMA on."""
    loss = losses.get(loss) if isinstance(loss, str) else loss
    keras.utils.set_random_seed(init_seed)
    z = keras.Input((LATENT_DIM,))
    h = keras.layers.Dense(8, activation="tanh")(z)
    generator = keras.Model(z, keras.layers.Reshape((4, 4, 1))(keras.layers.Dense(16, activation="tanh")(h)))
    images = keras.Input((4, 4, 1))
    h = keras.layers.Dense(8, activation="tanh")(keras.layers.Flatten()(images))
    critic = keras.Model(images, keras.layers.Dense(loss.required_output_dim or 3)(h))
    model = MMDGAN(generator, critic, critic_schedule=schedule, critic_steps=2, ema_decay=ema_decay, seed=5)
    compile_kwargs = {"generator_optimizer": keras.optimizers.Adam(3e-3, beta_1=0.3),
                      "critic_optimizer": keras.optimizers.Adam(2e-3, beta_1=0.4, beta_2=0.95), **compile_kwargs}
    model.compile(loss=loss, **compile_kwargs)
    return model


def dataset(seed=0, batches=BATCHES):
    """The same ``batches`` batches, in the same order, in every epoch."""
    images = np.random.default_rng(seed).uniform(-1, 1, (batches * BATCH, 4, 4, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(images).batch(BATCH)


def state(model, fit_bookkeeping=True):
    """Every variable of the training state, by a name that is the same in two models;
    without ``fit_epoch``/``fit_epoch_start_step`` (which epoch of which `fit` ran last)."""
    named = {f"model/{i}": v for i, v in enumerate(model.weights)  # networks, EMA, counters
             if fit_bookkeeping or not v.path.endswith(("fit_epoch", "fit_epoch_start_step"))}
    for prefix, optimizer in (("generator_optimizer", model.generator_optimizer),
                              ("critic_optimizer", model.critic_optimizer)):
        named.update({f"{prefix}/{i}": v for i, v in enumerate(optimizer.variables)})
    named.update({f"loss/{i}": v for i, v in enumerate(model.loss_object.variables)})
    return {k: np.array(v) for k, v in named.items()}


def assert_same_state(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture
def deterministic():
    """As the launcher's --deterministic: seeded Keras RNG and deterministic TF ops."""
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    yield
    tf_config.disable_op_determinism()  # TF's own switch back; not to slow the other tests


class StopAt(keras.callbacks.Callback):
    """Interrupts `fit` (an exception, as a crash) at the end of generator step ``step``."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) == self.step:
            raise RuntimeError(f"interrupted at step {self.step}")


class KillAt(StopAt):
    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def uninterrupted(schedule, fit_bookkeeping=True, **kwargs):
    model = build(schedule, **kwargs)
    model.fit(dataset(), epochs=EPOCHS, verbose=0)
    assert int(model.step.numpy()) == EPOCHS * BATCHES
    return state(model, fit_bookkeeping)


# ------------------------------------------------------------------- save / load / continue
def test_save_load_continue_equals_uninterrupted(tmp_path, deterministic):
    model = build()
    model.fit(dataset(), epochs=1, verbose=0)
    multiplier = float(model.loss_object.variables[0].numpy())
    assert multiplier != 0.0  # Sobolev's multiplier moved: the loss state is worth saving
    model.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")  # safe mode
    assert int(loaded.step.numpy()) == BATCHES
    assert float(loaded.loss_object.variables[0].numpy()) == multiplier
    assert loaded.loss_object.get_config() == model.loss_object.get_config()
    for name in ("generator_optimizer", "critic_optimizer"):
        assert getattr(loaded, name).get_config() == getattr(model, name).get_config()
    assert loaded.critic_optimizer.get_config()["beta_2"] == 0.95
    loaded.fit(dataset(), epochs=EPOCHS - 1, verbose=0)
    assert_same_state(state(loaded, fit_bookkeeping=False), uninterrupted("fixed", fit_bookkeeping=False))


def test_compile_config_round_trip():
    model = build("joint", loss=losses.get("repulsive", lam=-0.5, gradient_penalty_weight=0.3), jit_compile=False,
                  steps_per_execution=2)
    config = model.get_compile_config()
    assert config["loss"]["registered_name"] == "mmd_keras>RepulsiveLoss"  # Keras serialization
    assert config["loss"]["config"] == model.loss_object.get_config()
    fresh = MMDGAN.from_config(model.get_config())
    fresh.compile_from_config(config)
    assert fresh.loss_object.lam == -0.5 and fresh.loss_object.gradient_penalty_weight == 0.3
    assert fresh.steps_per_execution == 2 and fresh.jit_compile is False
    assert fresh.generator_optimizer.get_config() == model.generator_optimizer.get_config()
    assert MMDGAN.from_config(model.get_config()).get_compile_config() == {}


def test_save_weights_carry_every_training_state(tmp_path):
    model = build("paper2")
    model.fit(dataset(), epochs=1, verbose=0)
    model.save_weights(tmp_path / "gan.weights.h5")
    other = build("paper2", init_seed=7)
    assert int(other.step.numpy()) == 0
    other.load_weights(tmp_path / "gan.weights.h5")
    assert_same_state(state(other), state(model))
    assert int(other.step.numpy()) == BATCHES and int(other.critic_optimizer.iterations.numpy()) == 4 * 10
    uncompiled = MMDGAN.from_config(model.get_config())
    uncompiled.load_weights(tmp_path / "gan.weights.h5")  # the loss state is ignored, like the optimizers'
    np.testing.assert_array_equal(uncompiled.generate(3, seed=1), model.generate(3, seed=1))
    with pytest.raises(ValueError, match="another loss"):
        build("paper2", loss="wgan_gp").load_weights(tmp_path / "gan.weights.h5")


# ------------------------------------------------------------------------ BackupAndRestore
@pytest.mark.parametrize("schedule", ["fixed", "paper2", "joint"])
def test_backup_and_restore_inside_an_epoch_is_exact(tmp_path, deterministic, schedule):
    """Interrupted at step 6 (epoch 1, batch 1) with a backup after every batch; a fresh
    model resumes and skips the 2 batches of epoch 1 it had trained on."""
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=1)
    with pytest.raises(RuntimeError, match="interrupted"):
        build(schedule).fit(dataset(), epochs=EPOCHS, callbacks=[backup, StopAt(6)], verbose=0)
    resumed = build(schedule, init_seed=3)
    history = resumed.fit(dataset(), epochs=EPOCHS, callbacks=[backup], verbose=0).history
    assert len(history["critic_loss"]) == EPOCHS - 1  # epochs 1 and 2
    assert int(resumed.generator_optimizer.iterations.numpy()) == EPOCHS * BATCHES
    assert_same_state(state(resumed), uninterrupted(schedule))


def test_backup_every_epoch_replays_the_interrupted_epoch(tmp_path, deterministic):
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    model = build("fixed")
    with pytest.raises(RuntimeError):
        model.fit(dataset(), epochs=EPOCHS, callbacks=[backup, StopAt(BATCHES + 2)], verbose=0)
    model.fit(dataset(), epochs=EPOCHS, callbacks=[backup], verbose=0)  # same object, as Keras's example
    assert_same_state(state(model), uninterrupted("fixed"))
    model.fit(dataset(), epochs=1, verbose=0)  # a later fit starts at epoch 0 again
    assert int(model.step.numpy()) == (EPOCHS + 1) * BATCHES


def test_backup_with_steps_per_execution(tmp_path, deterministic):
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=2)
    with pytest.raises(RuntimeError):
        build(steps_per_execution=2).fit(dataset(), epochs=EPOCHS, callbacks=[backup, StopAt(6)], verbose=0)
    resumed = build(steps_per_execution=2)
    resumed.fit(dataset(), epochs=EPOCHS, callbacks=[backup], verbose=0)
    assert_same_state(state(resumed), uninterrupted("fixed"))


def _worker(schedule, backup_dir, out, kill_at=None):
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    model = build(schedule)
    callbacks = [keras.callbacks.BackupAndRestore(backup_dir, save_freq=1)]
    if kill_at is not None:
        callbacks.append(KillAt(kill_at))
    model.fit(dataset(), epochs=EPOCHS, callbacks=callbacks, verbose=0)
    np.savez(out, **state(model))


@pytest.mark.slow
def test_backup_and_restore_after_sigkill_is_exact(tmp_path, deterministic):
    """A real SIGKILL of the training process (no cleanup runs) at step 7, then a rerun."""
    command = [sys.executable, os.path.abspath(__file__), "fixed", str(tmp_path / "backup"), str(tmp_path / "out.npz")]
    killed = subprocess.run(command + ["7"], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert os.path.exists(tmp_path / "backup" / "latest.weights.h5") and not os.path.exists(tmp_path / "out.npz")
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with np.load(tmp_path / "out.npz") as saved:
        assert_same_state(dict(saved), uninterrupted("fixed"))


# ------------------------------------------------------------------------ evaluate / predict
def test_evaluate_changes_nothing_and_equals_the_loss_functions():
    model = build("fixed", loss="mmd")  # witness gradient penalty: a tape inside test_step
    model.fit(dataset(), epochs=1, verbose=0)
    before = state(model)
    held_out = dataset(seed=9, batches=3)
    logs = model.evaluate(held_out, verbose=0, return_dict=True)
    assert_same_state(state(model), before)
    expected = []
    for i, real in enumerate(held_out):
        seed = [rng.step_seed(model.seed, i, EVALUATION_INDEX, purpose, replica=0)
                for purpose in (rng.PURPOSE_LATENTS, rng.PURPOSE_LOSS)]
        fake = model.generator(rng.sample_latents(BATCH, LATENT_DIM, "uniform", seed[0]), training=False)
        out = model.loss_object(model.critic, real, fake, seed=seed[1], mode="both", training=False)
        expected.append({"critic_loss": out.critic_loss, "generator_loss": out.generator_loss, **out.metrics})
    assert set(logs) == set(expected[0]) >= {"critic_loss", "generator_loss", "mmd2", "gradient_penalty"}
    for key in logs:
        np.testing.assert_allclose(logs[key], np.mean([float(e[key]) for e in expected]), rtol=1e-5, atol=1e-7)
    assert len({float(e["mmd2"]) for e in expected}) == 3  # each batch its own fakes
    assert model.evaluate(held_out, verbose=0, return_dict=True) == logs  # reproducible


def test_evaluate_mmd2_equals_numpy_and_validation_logs():
    model = build("fixed", loss="repulsive", ema_decay=None)
    real = next(iter(dataset(seed=4, batches=1)))
    logs = model.evaluate(tf.data.Dataset.from_tensors(real), verbose=0, return_dict=True)
    latents = rng.sample_latents(BATCH, LATENT_DIM, "uniform",
                                 rng.step_seed(model.seed, 0, EVALUATION_INDEX, rng.PURPOSE_LATENTS, replica=0))
    x = model.critic(real).numpy().astype(np.float64)
    y = model.critic(model.generator(latents)).numpy().astype(np.float64)

    def gram(a, b):
        return np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / 2)  # rbf, sigma = 1

    def off_diagonal_mean(k):
        return (k.sum() - np.trace(k)) / (len(k) * (len(k) - 1))

    mmd2 = off_diagonal_mean(gram(x, x)) + off_diagonal_mean(gram(y, y)) - 2 * gram(x, y).mean()
    np.testing.assert_allclose(logs["mmd2"], mmd2, rtol=1e-4, atol=1e-6)
    history = model.fit(dataset(), validation_data=dataset(seed=9, batches=2), epochs=1, verbose=0).history
    assert {"critic_loss", "val_critic_loss", "val_mmd2", "generator_lr"} <= set(history)
    assert "val_generator_lr" not in history


@pytest.mark.parametrize("ema_decay", [0.5, None])
def test_predict_uses_the_sampling_generator(ema_decay):
    model = build(ema_decay=ema_decay)
    model.fit(dataset(), epochs=1, verbose=0)
    latents = rng.generation_latents(6, LATENT_DIM, "uniform", 3).numpy()
    images = model.predict(latents, batch_size=4, verbose=0)
    np.testing.assert_allclose(images, model.sampling_generator(latents).numpy(), atol=1e-6)
    np.testing.assert_allclose(images, model.generate(6, seed=3), atol=1e-6)
    assert np.allclose(images, model.generator(latents).numpy()) == (ema_decay is None)


def test_ema_generator_is_labelled_and_its_name_does_not_change_saved_layouts(tmp_path):
    model = build()
    model.fit(dataset(), epochs=1, verbose=0)
    lines = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    rows = [line for line in "\n".join(lines).splitlines() if "(Functional)" in line]
    assert len(rows) == 3 and "ema_generator (Functional)" in rows[2], rows
    assert model.get_layer("ema_generator") is model.ema_generator
    assert model.generator.name != "ema_generator"
    # No optimizer trains the EMA copy: the trainable count is the generator's and the critic's.
    trainable = model.generator.trainable_weights + model.critic.trainable_weights
    assert [id(v) for v in model.trainable_weights] == [id(v) for v in trainable]
    # Files written when the copy carried the generator's name (and was trainable) load into
    # the named copy: `.keras`, `save_weights` and `tf.train.Checkpoint` key it by attribute.
    expected = state(model)
    model.ema_generator.name, model.ema_generator.trainable = model.generator.name, True
    model.save(tmp_path / "old.keras")
    model.save_weights(tmp_path / "old.weights.h5")
    tf.train.Checkpoint(**model.checkpoint_items()).write(str(tmp_path / "old_ckpt"))
    loaded = keras.models.load_model(tmp_path / "old.keras")
    assert loaded.ema_generator.name == "ema_generator" and not loaded.ema_generator.trainable
    from_weights, from_checkpoint = build(init_seed=1), build(init_seed=2)
    from_weights.load_weights(tmp_path / "old.weights.h5")
    tf.train.Checkpoint(**from_checkpoint.checkpoint_items()).read(str(tmp_path / "old_ckpt")).assert_consumed()
    for restored in (loaded, from_weights, from_checkpoint):
        got = state(restored)
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_keras_optimizer_spelling_saves_and_loads_as_two_optimizers(tmp_path):
    """``compile(optimizer=...)`` stores (and `load_model` restores) two optimizers, each
    with the given config and its own slots."""
    model = build(optimizer=keras.optimizers.Adam(3e-3, beta_1=0.3), generator_optimizer=None,
                  critic_optimizer=None)
    model.fit(dataset(), epochs=1, verbose=0)
    assert set(model.get_compile_config()) >= {"generator_optimizer", "critic_optimizer"}
    model.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")
    for name in ("generator_optimizer", "critic_optimizer"):
        got = getattr(loaded, name).get_config()
        assert got["learning_rate"] == pytest.approx(3e-3) and got["beta_1"] == pytest.approx(0.3)
    assert loaded.generator_optimizer is not loaded.critic_optimizer
    expected, got = state(model), state(loaded)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else None)
