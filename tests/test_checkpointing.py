"""`mmd_keras.checkpointing`: finite weights before a save, untrusting restore."""

import hashlib
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import checkpointing
from mmd_keras.app import errors
from mmd_keras.errors import CheckpointError


def _network(latent_dim=3):
    inputs = keras.Input([latent_dim])
    x = keras.layers.Dense(4)(inputs)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def _items(network=None):
    network = network or _network()
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(network.trainable_variables)
    return {"generator": network, "generator_optimizer": optimizer,
            "step": tf.Variable(0, dtype=tf.int64)}


def _tree(root):
    digests = {}
    for folder, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                digests[os.path.relpath(os.path.join(folder, name), root)] = hashlib.sha256(
                    f.read()).hexdigest()
    return digests


def _saved_run(directory, steps=(4, 8, 12)):
    """Checkpoints ckpt-4/8/12 whose 'step' variable equals the step and generator kernel 1s."""
    items = _items()
    checkpoint = tf.train.Checkpoint(**items)
    manager = tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=10)
    for step in steps:
        items["step"].assign(step)
        manager.save(checkpoint_number=step)
    return items


def _reopen(directory):
    items = _items()
    messages = []
    manager, restored = checkpointing.open_checkpoints(
        tf.train.Checkpoint(**items), str(directory), max_to_keep=10, print_fn=messages.append)
    return items, manager, restored, messages


def test_non_finite_names_every_kind_of_variable():
    items = _items()
    network = items["generator"]
    assert checkpointing.non_finite(items) == []
    bn = network.layers[2]
    bn.moving_variance.assign(np.array([1, np.inf, 1, 1], np.float32))
    items["generator_optimizer"].variables[-1].assign(
        np.full(items["generator_optimizer"].variables[-1].shape, np.nan, np.float32))
    bad = checkpointing.non_finite(items)
    assert bad == [f"generator/{bn.moving_variance.path}",
                   f"generator_optimizer/{items['generator_optimizer'].variables[-1].path}"]
    with pytest.raises(checkpointing.NonFiniteWeightsError, match="at generator step 7") as error:
        checkpointing.check_finite(items, step=7)
    assert error.value.names == bad and "moving_variance" in str(error.value)


def test_best_metric_may_be_inf_before_the_first_evaluation_but_not_nan(tmp_path):
    from mmd_keras.evaluation.callback import _EvaluationState

    state = _EvaluationState()  # best_metric = +inf: no evaluation yet
    items = {**_items(), "evaluation_state": state}
    assert checkpointing.non_finite(items) == []
    path = tf.train.CheckpointManager(tf.train.Checkpoint(**items), str(tmp_path), 2).save(checkpoint_number=5)
    assert checkpointing.inspect(path) is None
    # NaN (and -inf) there is corruption like anywhere else; +inf elsewhere too.
    for value, where in ((np.nan, "evaluation_state/best_metric"), (-np.inf, "evaluation_state/best_metric")):
        state.best_metric.assign(value)
        assert checkpointing.non_finite(items) == [where]
        bad = tf.train.CheckpointManager(tf.train.Checkpoint(**items), str(tmp_path / "bad"), 2).save(
            checkpoint_number=6)
        assert "evaluation_state/best_metric" in checkpointing.inspect(bad)
    state.best_metric.assign(np.inf)
    items["generator"].layers[1].kernel.assign(np.full((3, 4), np.inf, np.float32))
    assert checkpointing.non_finite(items) == [f"generator/{items['generator'].layers[1].kernel.path}"]


def test_clean_directory_restores_the_newest(tmp_path):
    _saved_run(tmp_path)
    items, manager, restored, messages = _reopen(tmp_path)
    assert restored.endswith("ckpt-12") and int(items["step"].numpy()) == 12 and not messages
    assert manager.latest_checkpoint == restored


def test_truncated_data_shard_falls_back_to_the_previous_checkpoint(tmp_path):
    _saved_run(tmp_path)
    data = tmp_path / "ckpt-12.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:40])
    items, manager, restored, messages = _reopen(tmp_path)
    assert restored.endswith("ckpt-8") and int(items["step"].numpy()) == 8
    assert "ckpt-12" in messages[0] and str(data) in messages[0] and "truncated" in messages[0]
    assert manager.latest_checkpoint.endswith("ckpt-8")  # the next save continues from there
    manager.save(checkpoint_number=12)  # replaces the broken one
    assert checkpointing.inspect(str(tmp_path / "ckpt-12")) is None


@pytest.mark.parametrize("garbage", [b"hello world\n", b"\x00\xff\xfe\x80binary"])
def test_unreadable_state_file_is_set_aside_and_the_newest_checkpoint_restored(tmp_path,
                                                                              garbage):
    _saved_run(tmp_path)
    (tmp_path / "checkpoint").write_bytes(garbage)
    before = {k: v for k, v in _tree(tmp_path).items() if k.startswith("ckpt-")}
    items, manager, restored, messages = _reopen(tmp_path)
    assert restored.endswith("ckpt-12") and int(items["step"].numpy()) == 12
    assert "checkpoint" in messages[0] and "set aside" in messages[0]
    assert (tmp_path / "checkpoint.unreadable").read_bytes() == garbage
    assert {k: v for k, v in _tree(tmp_path).items() if k.startswith("ckpt-")} == before
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-4", "ckpt-8", "ckpt-12"]


def test_non_finite_checkpoint_on_disk_is_skipped(tmp_path):
    items = _saved_run(tmp_path, steps=(4,))
    items["generator"].layers[1].kernel.assign(np.full((3, 4), np.nan, np.float32))
    tf.train.CheckpointManager(tf.train.Checkpoint(**items), str(tmp_path),
                               max_to_keep=10).save(checkpoint_number=8)
    _, _, restored, messages = _reopen(tmp_path)
    assert restored.endswith("ckpt-4")
    assert "ckpt-8" in messages[0] and "NaN/Inf" in messages[0]


def test_no_usable_checkpoint_is_an_error_naming_each_and_changes_nothing(tmp_path):
    _saved_run(tmp_path, steps=(4, 8))
    for step in (4, 8):
        (tmp_path / f"ckpt-{step}.data-00000-of-00001").write_bytes(b"")
    (tmp_path / "checkpoint").write_bytes(b"\xff")
    before = _tree(tmp_path)
    with pytest.raises(CheckpointError) as error:
        _reopen(tmp_path)
    assert error.value.argument == "directory" and error.value.directory == str(tmp_path)
    assert "ckpt-4" in str(error.value) and "ckpt-8" in str(error.value)
    assert _tree(tmp_path) == before


def test_empty_directory_restores_nothing(tmp_path):
    _, manager, restored, messages = _reopen(tmp_path / "new")
    assert restored is None and manager.latest_checkpoint is None and not messages


def test_a_changed_latent_size_is_blamed_on_latent_dim(tmp_path):
    _saved_run(tmp_path, steps=(4,))
    items = _items(_network(latent_dim=5))
    with pytest.raises(ValueError) as error:
        checkpointing.open_checkpoints(tf.train.Checkpoint(**items), str(tmp_path), 10)
    flag, detail = errors.describe_mismatch(error.value, items["generator"], 5)
    assert flag == "latent_dim" and "size 3" in detail
    # Anything else points at the architecture.
    flag, _ = errors.describe_mismatch(ValueError("other"), items["generator"], 5)
    assert flag == "architecture"


def test_checkpoints_on_ram_filesystem(tmp_path):
    directory = "ram://checkpointing-test/checkpoints"
    _saved_run(directory)
    with tf.io.gfile.GFile(f"{directory}/checkpoint", "wb") as f:
        f.write(b"\xff\xfe")
    items, _, restored, messages = _reopen(directory)
    assert restored == f"{directory}/ckpt-12" and int(items["step"].numpy()) == 12
    assert tf.io.gfile.exists(f"{directory}/checkpoint.unreadable")
