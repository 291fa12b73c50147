"""Callbacks keyed on the generator step; fit plan; workdir lock (all in-process, tiny)."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import callbacks as cb
from mmd_keras.app import runner, workdir_lock
from mmd_keras.app.config import ConfigError


class StubGAN(keras.Model):
    """What the callbacks need of MMDGAN: ``step``, ``generate``, two optimizers, a weight."""

    def __init__(self):
        super().__init__()
        self.step = tf.Variable(0, dtype=tf.int64)
        self.weight = tf.Variable([1.0, 2.0])
        self.generator_optimizer = keras.optimizers.Adam(1e-3)
        self.critic_optimizer = keras.optimizers.Adam(5e-4)

    def generate(self, num_samples, seed=0):
        rng = np.random.default_rng(seed)
        return rng.uniform(-1, 1, (num_samples, 4, 4, 1)).astype(np.float32)


def _advance(model, callbacks, logs=None):
    model.step.assign_add(1)
    for callback in callbacks:
        callback.on_train_batch_end(0, dict(logs or {"critic_loss": 0.5}))


def _attach(model, *callbacks):
    for callback in callbacks:
        callback.set_model(model)
    return list(callbacks)


def test_make_grid_layout_matches_hand_values():
    images = np.array([-1.0, 0.0, 1.0], np.float32).reshape(3, 1, 1, 1)
    grid = cb.make_grid(images, columns=2, padding=1, pad_value=-1.0)
    expected = np.array([[0, 0, 0, 0, 0],
                         [0, 0, 0, 128, 0],   # round(127.5) = 128 (banker's rounding: 128)
                         [0, 0, 0, 0, 0],
                         [0, 255, 0, 0, 0],
                         [0, 0, 0, 0, 0]], np.uint8)[..., None]
    np.testing.assert_array_equal(grid, expected)
    scaled = cb.make_grid(images[:1] * 0 + 1.0, columns=1, padding=0, scale=3)
    np.testing.assert_array_equal(scaled, np.full((3, 3, 1), 255, np.uint8))
    with pytest.raises(ValueError, match="images.shape"):
        cb.make_grid(np.zeros((2, 2)))


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    model = StubGAN()
    checkpoint = tf.train.Checkpoint(weight=model.weight, step=model.step)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=3)
    messages = []
    guard = cb.NonFiniteGuard(lambda: manager.latest_checkpoint, print_fn=messages.append)
    saver = cb.CheckpointCallback(manager, every=2, guard=guard)
    callbacks = _attach(model, guard, saver)
    for _ in range(4):
        model.weight.assign_add([1.0, 1.0])
        _advance(model, callbacks)
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-2", "ckpt-4"]
    good = model.weight.numpy().copy()
    model.weight.assign([np.nan, 0.0])
    _advance(model, callbacks, {"critic_loss": 0.1, "generator_loss": np.float32(np.inf)})
    assert model.stop_training and guard.failed_step == 5
    assert "generator step 5" in messages[0] and "generator_loss=inf" in messages[0]
    assert "ckpt-4" in messages[0]
    _advance(model, callbacks)  # step 6 is due, but nothing is saved after a failure.
    saver.on_train_end()
    assert saver.save_best(6) is None
    assert os.path.basename(manager.latest_checkpoint) == "ckpt-4"
    checkpoint.restore(manager.latest_checkpoint)
    np.testing.assert_array_equal(model.weight.numpy(), good)
    assert int(model.step.numpy()) == 4


def test_non_finite_weights_are_never_saved_even_with_finite_losses(tmp_path):
    """The losses a step logs come from before its update; the weights saved after it can
    be NaN already (issue 18 item 1). The saver checks the weights it is about to write."""
    model = StubGAN()
    items = {"weight": model.weight, "step": model.step}
    checkpoint = tf.train.Checkpoint(**items)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=3)
    best = tf.train.CheckpointManager(checkpoint, str(tmp_path / "best"), max_to_keep=1)
    messages = []
    guard = cb.NonFiniteGuard(lambda: manager.latest_checkpoint, print_fn=messages.append)
    saver = cb.CheckpointCallback(manager, every=2, best_manager=best, guard=guard, items=items)
    callbacks = _attach(model, guard, saver)
    for _ in range(2):
        _advance(model, callbacks)
    model.weight.assign([1.0, np.inf])  # finite losses are logged at steps 3 and 4
    _advance(model, callbacks)
    assert not guard.failed  # step 3 is not a save: nothing to check yet
    _advance(model, callbacks)
    assert guard.failed_step == 4 and model.stop_training
    assert "Non-finite weights at generator step 4" in messages[0]
    assert "weight/" in messages[0] and messages[0].endswith("ckpt-2")
    assert saver.save_best(4) is None
    saver.on_train_end()
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-2"]
    assert best.latest_checkpoint is None


def test_finite_logs_do_not_stop():
    model = StubGAN()
    guard = cb.NonFiniteGuard(print_fn=lambda m: None)
    callbacks = _attach(model, guard)
    _advance(model, callbacks, {"critic_loss": np.array([1.0]), "mmd2": 1e30})
    assert not guard.failed and not getattr(model, "stop_training", False)


def test_checkpoints_keep_latest_k_and_best(tmp_path):
    model = StubGAN()
    checkpoint = tf.train.Checkpoint(weight=model.weight, step=model.step)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=2)
    best = tf.train.CheckpointManager(checkpoint, str(tmp_path / "best"), max_to_keep=1)
    saver = cb.CheckpointCallback(manager, every=3, best_manager=best)
    callbacks = _attach(model, saver)
    for _ in range(10):
        _advance(model, callbacks)
        if int(model.step.numpy()) == 4:
            saver.save_best(4)
    saver.on_train_end()
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-9", "ckpt-10"]
    assert os.path.basename(best.latest_checkpoint) == "ckpt-4"


def test_sample_grid_pngs_and_tensorboard_image(tmp_path):
    model = StubGAN()
    writer = tf.summary.create_file_writer(str(tmp_path / "tb"))
    grid = cb.SampleGrid(str(tmp_path / "samples"), every=2, num_samples=5, seed=7, writer=writer,
                         min_tile=8)
    callbacks = _attach(model, grid)
    for _ in range(3):
        _advance(model, callbacks)
    grid.on_train_end()
    names = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "samples" / "*.png")))
    assert names == ["latest.png", "step_0000002.png", "step_0000003.png"]
    decoded = tf.io.decode_png(tf.io.read_file(str(tmp_path / "samples" / "latest.png"))).numpy()
    np.testing.assert_array_equal(decoded, cb.make_grid(model.generate(5, seed=7), scale=2))
    tags = _event_values(tmp_path / "tb")
    assert sorted(step for tag, step, _ in tags if tag == "samples") == [2, 3]


def _event_values(logdir):
    values = []
    for path in glob.glob(str(logdir / "*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = (tf.make_ndarray(value.tensor) if value.HasField("tensor")
                          else value.simple_value)
                values.append((value.tag, event.step, number))
    return values


def test_scalars_at_generator_steps(tmp_path):
    model = StubGAN()
    writer = tf.summary.create_file_writer(str(tmp_path))
    logger = cb.ScalarLogger(writer, every=2)
    callbacks = _attach(model, logger)
    model.step.assign(10)  # A resumed run: steps continue from the checkpoint.
    for i in range(4):
        _advance(model, callbacks, {"critic_loss": float(i)})
    writer.flush()
    values = {(tag, step): float(v) for tag, step, v in _event_values(tmp_path)}
    assert values[("critic_loss", 12)] == 1.0 and values[("critic_loss", 14)] == 3.0
    assert ("critic_loss", 11) not in values
    assert values[("learning_rate/generator", 12)] == pytest.approx(1e-3)
    assert values[("learning_rate/critic", 14)] == pytest.approx(5e-4)


class StubEvaluation(keras.callbacks.Callback):
    """What ScalarLogger/ConsoleLog read of the evaluation callback: it writes its own scalars
    (``evaluation/kid``) and also puts them into ``logs``."""

    def __init__(self, every):
        super().__init__()
        self.every, self.last_metrics, self.evaluations = every, {}, []

    def on_train_batch_end(self, batch, logs=None):
        step = cb.current_step(self.model)
        if step % self.every == 0:
            self.last_metrics = {"kid": step / 100, "learning_rate": 1e-3}
            self.evaluations.append((step, dict(self.last_metrics)))
            logs.update(self.last_metrics)


def test_each_scalar_is_written_under_one_tag(tmp_path):
    """The evaluation callback writes `evaluation/kid`; the logger must not write the same
    values again as `kid`/`learning_rate` (issue 12 item 3)."""
    model = StubGAN()
    writer = tf.summary.create_file_writer(str(tmp_path))
    evaluation = StubEvaluation(every=2)
    callbacks = _attach(model, evaluation, cb.ScalarLogger(writer, every=2, skip=[evaluation]))
    for _ in range(4):  # Keras hands every callback the same logs dict
        model.step.assign_add(1)
        logs = {"critic_loss": 0.5}
        for callback in callbacks:
            callback.on_train_batch_end(0, logs)
    assert "kid" in logs
    writer.flush()
    tags = {tag for tag, _, _ in _event_values(tmp_path)}
    assert tags == {"critic_loss", "learning_rate/generator", "learning_rate/critic"}
    # A train step that logs its learning rates (MMDGAN) gets no second lr tag.
    logged = tmp_path / "logged"
    writer = tf.summary.create_file_writer(str(logged))
    callbacks = _attach(model, cb.ScalarLogger(writer, every=1))
    _advance(model, callbacks, {"critic_loss": 0.5, "generator_lr": 1e-3, "critic_lr": 5e-4})
    writer.flush()
    assert {tag for tag, _, _ in _event_values(logged)} == {"critic_loss", "generator_lr",
                                                              "critic_lr"}


def test_console_log_prints_plain_lines_and_evaluations_on_their_own_line():
    model = StubGAN()
    lines = []
    evaluation = StubEvaluation(every=3)
    console = cb.ConsoleLog(every=2, total_steps=6, evaluation=evaluation, print_fn=lines.append)
    callbacks = _attach(model, evaluation, console)
    console.on_train_begin()
    for _ in range(6):
        _advance(model, callbacks, {"critic_loss": 0.25, "generator_loss": -1.5})
    console.on_train_end()
    progress = [line for line in lines if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == ["2/6", "4/6", "6/6"]
    assert "critic_loss=0.25  generator_loss=-1.5  lr_g=0.001  lr_c=0.0005" in progress[0]
    assert progress[0].split("  ")[-2].endswith("steps/s") and "ETA " in progress[0]
    assert [line for line in lines if not line.startswith("step ")] == [
        "evaluation at step 3: kid=0.03, learning_rate=0.001",
        "evaluation at step 6: kid=0.06, learning_rate=0.001"]
    assert not any("\x08" in line or "\x1b" in line for line in lines)
    # In a terminal Keras draws the bar: only evaluations, each starting a new line.
    terminal = []
    console = cb.ConsoleLog(2, 6, evaluation, progress_lines=False, print_fn=terminal.append)
    callbacks = _attach(model, evaluation, console)
    console.on_train_begin()
    for _ in range(3):
        _advance(model, callbacks)
    assert terminal == ["\nevaluation at step 9: kid=0.09, learning_rate=0.001"]


def _rate_and_eta(model, every, total_steps):
    """The ``X steps/s`` and ``ETA`` fields of each line a ConsoleLog prints over ``fit``."""
    lines = []
    console = cb.ConsoleLog(every=every, total_steps=total_steps, print_fn=lines.append)
    callbacks = _attach(model, console)
    console.on_train_begin()
    for _ in range(total_steps):
        _advance(model, callbacks)
    return [line.split("  ")[-2:] for line in lines], lines


def test_console_log_rate_and_eta_exclude_the_first_step_that_traces(monkeypatch):
    """The first step of `fit` traces and compiles (it ends 100 s after the start), then
    0.5 s per step: the first line's rate must be 2 steps/s and its ETA the 4 remaining steps'
    2 s, also when the learning rates are not in the logs (printed from the optimizers)."""
    model = StubGAN()
    monkeypatch.setattr(cb.time, "time", lambda: 1099.5 + 0.5 * int(model.step.numpy())
                        if int(model.step.numpy()) else 1000.0)
    fields, lines = _rate_and_eta(model, every=2, total_steps=6)
    assert fields == [["2.00 steps/s", "ETA 0:00:02"], ["2.00 steps/s", "ETA 0:00:01"],
                      ["2.00 steps/s", "ETA 0:00:00"]]
    assert "lr_g=0.001  lr_c=0.0005" in lines[0]
    # A line due at the first step has no rate yet.
    model = StubGAN()
    assert _rate_and_eta(model, every=1, total_steps=3)[0] == [
        ["? steps/s", "ETA ?"], ["2.00 steps/s", "ETA 0:00:00"], ["2.00 steps/s", "ETA 0:00:00"]]


def test_stop_at_step():
    model = StubGAN()
    callbacks = _attach(model, cb.StopAtStep(3))
    _advance(model, callbacks)
    _advance(model, callbacks)
    assert not getattr(model, "stop_training", False)
    _advance(model, callbacks)
    assert model.stop_training


@pytest.mark.parametrize("start, total, per_epoch, plan", [
    (0, 12, 6, [(0, 2, 6, 0)]),
    (0, 10, 4, [(0, 2, 4, 0), (2, 3, 2, 8)]),
    (8, 40, 6, [(1, 2, 4, 8), (2, 6, 6, 12), (6, 7, 4, 36)]),
    (12, 12, 6, []),
    (5, 6, 6, [(0, 1, 1, 5)]),
])
def test_fit_plan_resumes_mid_epoch(start, total, per_epoch, plan):
    assert runner.fit_plan(start, total, per_epoch) == plan
    covered = sum(n * (epochs - first) for first, epochs, n, _ in plan)
    assert covered == total - start


def test_workdir_lock_refuses_a_second_holder(tmp_path):
    workdir = str(tmp_path / "run")
    first = workdir_lock.FlockLock(workdir).acquire()
    with pytest.raises(ConfigError) as info:
        workdir_lock.FlockLock(workdir).acquire()
    assert info.value.flag == "workdir" and f"pid {os.getpid()}" in str(info.value)
    first.release()
    second = workdir_lock.FlockLock(workdir).acquire()
    second.release(remove_if_created=True)
    assert os.path.exists(workdir)  # Created by the first holder, not by the second.


def test_digits_evaluation_reference_is_the_held_out_split_for_every_seed():
    """Held-out digits never include training images, whatever --seed (the training stream
    always uses digits_split's fixed split)."""
    from mmd_keras import datasets
    from mmd_keras.app.config import RunConfig

    train_stream = np.concatenate([b.numpy() for b in datasets.build_dataset(
        "digits", image_size=16, batch_size=64, repeat=False, seed=5)])
    for seed in (0, 3):
        config = RunConfig(dataset="digits", image_size=16, seed=seed)
        test = runner.evaluation.real_images(config, "test")
        train = runner.evaluation.real_images(config, "train")
        assert len(test) + len(train) == 1797 and len(test) >= 300
        stream_rows = {row.tobytes() for row in train_stream}
        assert not any(row.tobytes() in stream_rows for row in test)
        assert {row.tobytes() for row in train} >= stream_rows
