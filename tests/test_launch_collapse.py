"""`--collapse_recovery` of the launcher (issue 19): flag validation, a recovery in a real run
that still reaches --steps and keeps the raised coefficient across a resume, and the
gradient-penalty weight as checkpointed state of the loss."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from mmd_keras import checkpointing
from mmd_keras.app import config as config_lib
from mmd_keras.app.runner import build

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
SMOKE = ["--config=smoke", "--export=false"]
# Thresholds every check after the reference checks trips (the condition number must be a new
# minimum and the SMMD scale a new maximum to pass): the 4th check (step 8) declares a collapse.
FIRING = ["--loss=smmd", "--critic_output_dim=1", "--collapse_recovery", "--collapse_check_every=2",
          "--collapse_snapshot_every=2", "--collapse_condition_growth=1.0001",
          "--collapse_scale_drop=1.0001", "--collapse_patience=1", "--collapse_max_recoveries=1"]
# The SMMD scale alone: the first decrease of σ² trips (step 10); after the recovery the restored
# trajectory inherits the σ² reference divided by the factor (10) and the raised coefficient's
# σ² stays above it, so it fires once.
FIRING_ONCE = FIRING[:5] + ["--collapse_condition_growth=1e9", "--collapse_scale_drop=1.0001",
                            "--collapse_patience=1", "--collapse_max_recoveries=1"]


def _launch(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mmd_keras.launch", *SMOKE, *args], cwd=cwd,
                          env=ENV, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("flags, flag", [
    (["--collapse_check_every=0"], "collapse_check_every"),
    (["--collapse_check_every=25", "--collapse_snapshot_every=30"], "collapse_snapshot_every"),
    (["--collapse_condition_growth=1"], "collapse_condition_growth"),
    (["--collapse_scale_drop=0.5"], "collapse_scale_drop"),
    (["--collapse_patience=0"], "collapse_patience"),
    (["--collapse_factor=1"], "collapse_factor"),
    (["--collapse_max_recoveries=-1"], "collapse_max_recoveries"),
    (["--collapse_lr_factor=0"], "collapse_lr_factor"),
    (["--collapse_lr_factor=1.5"], "collapse_lr_factor"),
    (["--collapse_recovery", "--steps_per_execution=2", "--collapse_check_every=3",
      "--collapse_snapshot_every=3"], "collapse_check_every"),
])
def test_bad_collapse_flags_exit_2_naming_the_flag(tmp_path, flags, flag):
    result = _launch(f"--workdir={tmp_path}/run", *flags, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"--{flag}" in result.stderr and "error" in result.stderr.lower()
    assert not os.path.exists(tmp_path / "run")


def test_collapse_flag_values_accepted_by_the_config():
    config = config_lib.RunConfig(collapse_scale_drop=0.0, collapse_check_every=5,
                                  collapse_snapshot_every=15, collapse_max_recoveries=0)
    assert config.collapse_scale_drop == 0.0 and config.collapse_snapshot_every == 15


def test_loss_without_coefficient_exits_2_before_writing(tmp_path):
    result = _launch(f"--workdir={tmp_path}/run", "--loss=hinge", "--critic_output_dim=1",
                     "--collapse_recovery", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--collapse_recovery" in result.stderr and "hinge" in result.stderr
    assert not os.path.exists(tmp_path / "run")
    dry = _launch(f"--workdir={tmp_path}/run", "--loss=hinge", "--critic_output_dim=1",
                  "--collapse_recovery", "--dry_run", cwd=tmp_path)
    assert dry.returncode == 2 and "--collapse_recovery" in dry.stderr


def _coefficient(path):
    return float(tf.train.load_checkpoint(path).get_tensor("loss/coefficient/.ATTRIBUTES/VARIABLE_VALUE"))


def _step(path):
    return int(tf.train.load_checkpoint(path).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.mark.slow
def test_recovery_in_a_launcher_run_reaches_steps_and_survives_resume(tmp_path):
    workdir = tmp_path / "run"
    result = _launch(f"--workdir={workdir}", "--steps=12", *FIRING_ONCE, "--collapse_lr_factor=0.5", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Collapse recovery 1/1" in result.stdout
    assert "Trained to generator step 12" in result.stdout
    with open(workdir / "collapse_recovery.json") as f:
        record = json.load(f)
    (event,) = record["events"]
    assert event["event"] == "recovery" and event["coefficient_name"] == "coefficient"
    assert event["step_restored"] < event["onset_step"] <= event["step_detected"]
    # The SMMD default coefficient is 10 (paper 2's λ-like weight), raised x10 (the default factor).
    assert (event["old_coefficient"], event["new_coefficient"]) == (10.0, 100.0)
    # --collapse_lr_factor reached the callback: both rates halved at the recovery.
    for role in ("generator", "critic"):
        old, new = event["learning_rates"][role]
        assert new == pytest.approx(old * 0.5) and old > 0
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    assert _step(latest) == 12 and _coefficient(latest) == 100.0
    # The resumed run (recovery on, default thresholds) continues with the raised coefficient.
    resumed = _launch(f"--workdir={workdir}", "--steps=16", *FIRING[:5], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout and "Collapse recovery" not in resumed.stdout
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    assert _step(latest) == 16 and _coefficient(latest) == 100.0


def test_recovery_that_gives_up_exits_1(tmp_path):
    result = _launch(f"--workdir={tmp_path}/run", "--steps=12", *FIRING[:-1],
                     "--collapse_max_recoveries=0", cwd=tmp_path)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "error: critic collapse at generator step 8" in result.stdout
    assert "gave up" in result.stdout


# --- the gradient-penalty weight as state --------------------------------------------------------

def _save(items, directory, step):
    """A checkpoint as the launcher writes it (a manager's ``save``, with the save counter)."""
    return tf.train.CheckpointManager(tf.train.Checkpoint(**items), str(directory), 2).save(
        checkpoint_number=step)


def _mmd_gp_model():
    config = config_lib.RunConfig(loss="mmd", image_size=8, latent_dim=4, critic_output_dim=2,
                                  generator_widths=(4,), critic_widths=(4,), batch_size=4)
    model = build.build_model(config)
    assert model.loss_object.gradient_penalty_weight_variable is not None
    return model


def test_gp_weight_survives_checkpoint_and_keras_round_trips(tmp_path):
    model, fresh, keras_fresh = _mmd_gp_model(), _mmd_gp_model(), _mmd_gp_model()
    model.loss_object.gradient_penalty_weight_variable.assign(7.5)
    items = model.checkpoint_items()
    assert items["loss"] is model.loss_object
    assert items["loss"].variables == [model.loss_object.gradient_penalty_weight_variable]
    path = _save(items, tmp_path, 1)
    checkpointing.restore_checkpoint(tf.train.Checkpoint(**fresh.checkpoint_items()), path)
    assert fresh.loss_object.gradient_penalty_weight == 7.5
    model.save_weights(tmp_path / "gan.weights.h5")
    keras_fresh.load_weights(tmp_path / "gan.weights.h5")
    assert keras_fresh.loss_object.gradient_penalty_weight == 7.5


def test_checkpoint_and_keras_state_without_an_item_are_refused(tmp_path):
    old, new = _mmd_gp_model(), _mmd_gp_model()
    old.step.assign(5)
    for missing in ("critic", "loss"):
        partial = {k: v for k, v in old.checkpoint_items().items() if k != missing}
        path = _save(partial, tmp_path / missing, 5)
        with pytest.raises(AssertionError):
            checkpointing.restore_checkpoint(tf.train.Checkpoint(**new.checkpoint_items()), path)
    store = {}
    old.save_own_variables(store)
    del store["generator_step"]
    with pytest.raises(ValueError, match="generator_step"):
        new.load_own_variables(store)
