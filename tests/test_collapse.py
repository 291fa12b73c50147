"""Tests of mmd_keras.collapse: the detection rule, a restore-and-raise cycle, replicas."""

import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import collapse, losses
from mmd_keras.collapse import CollapseRecovery, CollapseRule, Signals
from mmd_keras.models import MMDGAN

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _history(conditions, objectives=None, every=10):
    objectives = objectives if objectives is not None else [-1.0] * len(conditions)
    return [Signals((i + 1) * every, float(c), float(o)) for i, (c, o) in enumerate(zip(conditions, objectives))]


# ---------------------------------------------------------------- the rule on scripted signals


def test_rule_fires_on_a_diverging_condition_number_with_the_onset_of_the_streak():
    rule = CollapseRule(condition_growth=10.0, scale_drop=None, reference_checks=3, patience=2)
    # Smallest healthy condition number so far: 4, so the threshold is 40 (hand-computed).
    conditions = [4, 5, 6, 7, 39, 41, 400]
    flags = collapse.alarms(_history(conditions), rule)
    assert flags == [False, False, False, False, False, True, True]
    assert collapse.detect_collapse(_history(conditions[:6]), rule) is None  # one alarming check
    assert collapse.detect_collapse(_history(conditions), rule) == 60       # onset: the 6th check
    # The first checks only build the references: a jump there is no alarm.
    assert collapse.alarms(_history([4, 400, 400]), rule) == [False, False, False]


def test_rule_fires_on_a_scale_drop_against_the_largest_healthy_scale():
    rule = CollapseRule(condition_growth=10.0, scale_drop=10.0, reference_checks=2, patience=2)
    scales = [0.9, 0.5, 0.4, 0.3, 0.08, 0.05, 0.2, 0.01, 0.005]
    history = [Signals(10 * (i + 1), 5.0, -1.0, scale=s) for i, s in enumerate(scales)]
    # Largest healthy scale 0.9 -> alarm below 0.09: checks 5, 6 (streak -> onset 50), 8, 9.
    assert collapse.alarms(history, rule) == [False, False, False, False, True, True, False, True, True]
    assert collapse.detect_collapse(history[:6], rule) == 50
    assert collapse.detect_collapse(history[:7], rule) is None
    assert collapse.detect_collapse(history, rule) == 80


def test_rule_ignores_noise_and_single_spikes():
    rule = CollapseRule(condition_growth=10.0, reference_checks=3, patience=2)
    rng = np.random.default_rng(0)
    for _ in range(200):
        # Healthy (as the digits runs: slow growth ×3 over the run, ±25 % check-to-check noise;
        # σ² falling ×3).
        conditions = 5.0 * np.linspace(1, 3, 40) * 10 ** rng.normal(0, 0.1, 40)
        scales = np.linspace(0.9, 0.3, 40) * 10 ** rng.normal(0, 0.1, 40)
        history = [Signals(10 * (i + 1), c, -1.0, scale=s) for i, (c, s) in enumerate(zip(conditions, scales))]
        assert not any(collapse.detect_collapse(history[:n], rule) for n in range(1, 41))
    spike = [5, 5, 5, 6, 500, 6, 7, 600, 5]
    assert not any(collapse.detect_collapse(_history(spike[:n]), rule) for n in range(1, len(spike) + 1))


def test_rule_alarms_on_non_finite_signals_even_in_the_reference():
    rule = CollapseRule(patience=2)
    history = _history([5, 5], [-1.0, math.nan]) + [Signals(30, math.inf, -1.0)]
    assert collapse.alarms(history, rule) == [False, True, True]
    assert collapse.detect_collapse(history, rule) == 20
    assert collapse.alarms([Signals(10, 5.0, -1.0, scale=math.nan)], rule) == [True]


def test_rule_objective_gate():
    rule = CollapseRule(condition_growth=10.0, reference_checks=2, objective_drop=0.5, patience=1)
    # The condition number alone would alarm at checks 3 and 4; the objective rose by 0.2, then 0.9
    # above its best (-1.0).
    history = _history([5, 5, 80, 90], [-1.0, -0.9, -0.8, -0.1])
    assert collapse.alarms(history, rule) == [False, False, False, True]


def test_a_restored_trajectory_inherits_references_and_is_judged_from_its_first_check():
    rule = CollapseRule(condition_growth=10.0, scale_drop=10.0, reference_checks=3, patience=1)
    # Healthy references before the onset: condition 5, σ² 0.5; the coefficient raised ×10:
    # σ² reference 0.05, so alarms below 0.005 (hand-computed); the condition limit stays 50.
    inherited = collapse.References(condition_number=5.0, scale=0.5, objective=-2.0).after_recovery(10.0)
    assert inherited == collapse.References(5.0, 0.05)
    history = [Signals(10, 5.0, -1.0, scale=0.004), Signals(20, 5.0, -1.0, scale=0.006),
               Signals(30, 60.0, -1.0, scale=0.05), Signals(40, 45.0, -1.0, scale=0.002)]
    assert collapse.alarms(history, rule, inherited) == [True, False, True, True]
    assert collapse.detect_collapse(history[:1], rule, inherited) == 10
    # A fresh trajectory would take the first three checks (one of them collapsed) as healthy.
    assert collapse.alarms(history, rule) == [False, False, False, True]
    # The healthy check at 20 raised no reference (0.006 < 0.05); a healthy σ² above it does.
    assert collapse.alarms([Signals(10, 5.0, -1.0, scale=0.3), Signals(20, 5.0, -1.0, scale=0.02)],
                           rule, inherited) == [False, True]


def test_references_before_an_onset_come_from_its_healthy_checks():
    rule = CollapseRule(condition_growth=10.0, scale_drop=10.0, reference_checks=1, patience=2)
    history = [Signals(10, 6.0, -0.3, scale=0.4), Signals(20, 4.0, -0.5, scale=0.6),
               Signals(30, 5.0, -0.1, scale=0.05), Signals(40, 90.0, -0.0, scale=0.01)]
    # Check 30 alarms (0.05 < 0.6 / 10): the references before step 40 are those of 10 and 20.
    assert collapse.alarms(history, rule) == [False, False, True, True]
    assert collapse.references_before(history, rule, 30) == collapse.References(4.0, 0.6, -0.5)
    assert collapse.references_before(history, rule, 40) == collapse.References(4.0, 0.6, -0.5)
    assert collapse.references_before(history, rule, 20) == collapse.References(6.0, 0.4, -0.3)
    inherited = collapse.References(3.0, 0.06)
    assert collapse.references_before([], rule, 10, inherited) == inherited


@pytest.mark.parametrize("kwargs, match", [
    (dict(condition_growth=1.0), "condition_growth"), (dict(patience=0), "patience"),
    (dict(scale_drop=0.5), "scale_drop"),
    (dict(reference_checks=1.5), "reference_checks"), (dict(objective_drop=-1.0), "objective_drop")])
def test_rule_rejects_bad_thresholds(kwargs, match):
    with pytest.raises(ValueError, match=f"Expected `{match}`"):
        CollapseRule(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(check_every=0), "check_every"), (dict(check_every=10, snapshot_every=15), "snapshot_every"),
    (dict(factor=1.0), "factor"), (dict(max_recoveries=-1), "max_recoveries"), (dict(rule={}), "rule")])
def test_callback_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"Expected `{match}`"):
        CollapseRecovery(**kwargs)


def test_regularization_variable_names_the_adjustable_coefficient():
    name, variable = collapse.regularization_variable(losses.get("smmd", coefficient=3.0))
    assert name == "coefficient" and float(variable.numpy()) == 3.0
    assert collapse.regularization_variable(losses.get("swgan"))[0] == "coefficient"
    with pytest.raises(ValueError, match="adjustable regularization coefficient"):
        collapse.regularization_variable(losses.get("repulsive"))


# ---------------------------------------------------------------- restore and raise on a tiny model


def tiny_model(seed=0, loss=None, schedule="fixed"):
    keras.utils.set_random_seed(seed)
    generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, activation="tanh"),
                                  keras.layers.Reshape((2, 2, 1))], name="gen")
    critic = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(1)], name="crit")
    model = MMDGAN(generator, critic, critic_steps=1, critic_schedule=schedule, seed=seed)
    model.compile(generator_optimizer=keras.optimizers.Adam(1e-2), critic_optimizer=keras.optimizers.Adam(1e-2),
                  loss=loss or losses.get("smmd", coefficient=2.0))
    return model


def tiny_data():
    images = np.random.default_rng(1).uniform(-1, 1, (8, 2, 2, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(images).batch(4).repeat()


def state_values(model):
    """Every checkpointed value (networks, optimizers, step, loss state), by name."""
    checkpoint = tf.train.Checkpoint(**model.checkpoint_items())
    values = {}
    for name, items in model.checkpoint_items().items():
        items = items if isinstance(items, list) else [items]
        for i, item in enumerate(items):
            variables = item.variables if hasattr(item, "variables") and not isinstance(item, tf.Variable) else [item]
            for j, v in enumerate(variables):
                values[f"{name}/{i}/{j}/{getattr(v, 'path', v.name)}"] = np.array(keras.ops.convert_to_numpy(v))
    del checkpoint
    return values


class Scripted(CollapseRecovery):
    """Signals from a script (step -> condition number) instead of the critic's SVD."""

    def __init__(self, script, **kwargs):
        super().__init__(**kwargs)
        self.script = script

    def signals(self, step, logs):
        return Signals(step, float(self.script.get(step, 5.0)), -1.0)


class Capture(keras.callbacks.Callback):
    def __init__(self, steps):
        super().__init__()
        self.steps, self.values = steps, {}

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.step.numpy())
        if step in self.steps and step not in self.values:
            self.values[step] = state_values(self.model)


@pytest.mark.parametrize("schedule", ["fixed", "paper2", "joint"])
def test_restore_and_raise_restores_the_snapshot_exactly_and_changes_only_the_coefficient(tmp_path, schedule):
    model = tiny_model(schedule=schedule)
    printed = []
    # Checks every 2 steps, snapshots every 4; condition numbers 5 until step 10, then 500:
    # reference 5, alarms at 10 and 12 -> collapse declared at step 12, onset 10; the newest
    # snapshot before step 10 is step 8.
    recovery = Scripted({10: 500.0, 12: 500.0}, rule=CollapseRule(patience=2), check_every=2,
                        snapshot_every=4, factor=10.0, directory=str(tmp_path / "snap"),
                        path=str(tmp_path / "collapse.json"), print_fn=printed.append)
    capture = Capture({8})
    # Capture runs before the recovery in the list: at step 12 the model is restored after it.
    model.fit(tiny_data(), epochs=1, steps_per_epoch=12, verbose=0, callbacks=[capture, recovery])
    after = state_values(model)
    before = capture.values[8]
    assert set(after) == set(before)
    changed = sorted(k for k in after if not np.array_equal(after[k], before[k]))
    assert len(changed) == 1 and changed[0].startswith("loss/0/"), changed
    assert float(model.loss_object.coefficient.numpy()) == pytest.approx(20.0)
    assert int(model.step.numpy()) == 8
    event = recovery.events[0]
    assert (event["event"], event["step_detected"], event["onset_step"], event["step_restored"]) == \
        ("recovery", 12, 10, 8)
    assert (event["old_coefficient"], event["new_coefficient"]) == (2.0, 20.0)
    assert "restored step 8, coefficient 2 -> 20" in printed[0]
    record = json.load(open(tmp_path / "collapse.json"))
    assert record["events"][0]["step_restored"] == 8 and len(record["checks"]) == 6
    # The raised coefficient is in the latest snapshot (a resumed run continues with it).
    fresh = tiny_model(seed=5)
    tf.train.Checkpoint(**fresh.checkpoint_items()).read(recovery._snapshots[-1][1])
    assert float(fresh.loss_object.coefficient.numpy()) == pytest.approx(20.0)
    assert int(fresh.step.numpy()) == 8
    # Only the kept snapshots have files: the abandoned trajectory's (step 12) are deleted.
    kept = {os.path.basename(p) for _, p in recovery._snapshots}
    on_disk = {name.split(".")[0] for name in os.listdir(tmp_path / "snap") if name != "checkpoint"}
    assert on_disk == kept and [s for s, _ in recovery._snapshots] == [0, 4, 8]


def test_a_restore_that_collapses_at_once_backs_off_to_an_older_snapshot(tmp_path):
    model = tiny_model()
    # By training iteration: checks every 2, snapshots every 4. Alarms at iterations 10, 12
    # (steps 10, 12): onset 10, restore step 8 (coefficient 2 -> 20). The restored trajectory
    # alarms at its first two checks (iterations 14, 16 = steps 10, 12): the step-8 snapshot was
    # already collapsing, so the second recovery restores step 4 (coefficient 20 -> 200).
    script = {10: 1e4, 12: 1e4, 14: 1e4, 16: 1e4}
    recovery = Scripted(script, rule=CollapseRule(patience=2), check_every=2, snapshot_every=4,
                        directory=str(tmp_path / "snap"), print_fn=None)
    recovery.signals = lambda step, logs: Signals(step, float(script.get(recovery._batches, 5.0)), -1.0)
    capture = Capture({4})
    model.fit(tiny_data(), epochs=1, steps_per_epoch=16, verbose=0, callbacks=[capture, recovery])
    assert [(e["event"], e["onset_step"], e["step_restored"], e.get("backed_off_from")) for e in recovery.events] \
        == [("recovery", 10, 8, None), ("recovery", 10, 4, 8)]
    assert float(model.loss_object.coefficient.numpy()) == pytest.approx(200.0)
    after, before = state_values(model), capture.values[4]
    changed = sorted(k for k in after if not np.array_equal(after[k], before[k]))
    assert len(changed) == 1 and changed[0].startswith("loss/0/"), changed
    assert [s for s, _ in recovery._snapshots] == [0, 4]


def test_gives_up_after_max_recoveries_and_stops_training(tmp_path):
    model = tiny_model()
    printed = []
    # By training iteration: healthy (5) for 3 checks, collapsed (1e4) at the 4th, then again
    # healthy for 3 checks after the restore and collapsed.
    script = {8: 1e4, 16: 1e4}
    recovery = Scripted(script, rule=CollapseRule(patience=1), check_every=2, snapshot_every=2,
                        max_recoveries=1, print_fn=printed.append)
    recovery.signals = lambda step, logs: Signals(step, float(script.get(recovery._batches, 5.0)), -1.0)
    model.fit(tiny_data(), epochs=1, steps_per_epoch=40, verbose=0, callbacks=[recovery])
    kinds = [e["event"] for e in recovery.events]
    assert kinds == ["recovery", "gave_up"] and recovery.gave_up
    assert [(e["iteration"], e["step_detected"]) for e in recovery.events] == [(8, 8), (16, 14)]
    assert recovery._batches == 16  # training stopped at the give-up
    assert "giving up" in printed[-1] and "max_recoveries=1" in printed[-1]
    assert float(model.loss_object.coefficient.numpy()) == pytest.approx(20.0)  # raised once
    assert recovery._temporary is None  # the temporary snapshot folder is removed at train end


def test_real_signals_are_the_critic_spectrum_and_the_logged_scale():
    model = tiny_model()
    recovery = CollapseRecovery(check_every=2, snapshot_every=2, print_fn=None)
    model.fit(tiny_data(), epochs=1, steps_per_epoch=4, verbose=0, callbacks=[recovery])
    signals = recovery.history[-1]
    kernels = [np.asarray(layer.kernel.numpy(), np.float64) for layer in model.critic.layers if hasattr(layer, "kernel")]
    conditions = []
    for k in kernels:
        s = np.linalg.svd(k, compute_uv=False)
        conditions.append(s[0] / s[-1])
    assert signals.step == 4 and signals.condition_number == pytest.approx(max(conditions), rel=1e-9)
    assert signals.scale is not None and 0 < signals.scale <= 1


# ---------------------------------------------------------------- 2 replicas (subprocess)

WORKER = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import test_collapse as t

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = t.tiny_model()
    recovery = t.Scripted({10: 500.0, 12: 500.0}, rule=t.CollapseRule(patience=2), check_every=2,
                          snapshot_every=4, print_fn=None)
    capture = t.Capture({8})
    model.fit(t.tiny_data(), epochs=1, steps_per_epoch=12, verbose=0, callbacks=[capture, recovery])

    def replicas(v):
        v = getattr(v, "_value", v)
        return [np.asarray(x.numpy()) for x in getattr(v, "values", [v])]

    items = model.checkpoint_items()
    variables = (model.generator.variables + model.critic.variables + model.generator_optimizer.variables
                 + model.critic_optimizer.variables + [model.step] + items["loss"].variables)
    spread = max(float(np.max(np.abs(r - replicas(v)[0]))) for v in variables for r in replicas(v))
    mirrored = sum(len(replicas(v)) == 2 for v in variables)
    after, before = t.state_values(model), capture.values[8]
    changed = sorted(k for k in after if not np.array_equal(after[k], before[k]))
    print("RESULT " + json.dumps({"replicas": strategy.num_replicas_in_sync, "spread": spread,
          "mirrored": mirrored, "count": len(variables), "changed": changed,
          "events": recovery.events, "coefficient": replicas(model.loss_object.coefficient)[0].tolist(),
          "coefficients": [float(x) for x in replicas(model.loss_object.coefficient)]}))
""")


@pytest.mark.slow
def test_two_replicas_take_one_decision_and_restore_every_copy(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = subprocess.run([sys.executable, str(script), os.path.dirname(os.path.abspath(__file__))],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["replicas"] == 2 and result["mirrored"] >= result["count"] - 4
    assert result["spread"] == 0.0  # every replica's copy identical after the restore
    assert [(e["step_detected"], e["step_restored"]) for e in result["events"]] == [(12, 8)]
    assert result["coefficients"] == [20.0, 20.0]
    assert len(result["changed"]) == 1 and result["changed"][0].startswith("loss/0/")


# ---------------------------------------------------------------- the GP weight as loss state


def test_gradient_penalty_weight_is_a_checkpointed_state_variable_that_the_loss_reads(tmp_path):
    loss = losses.get("mmd", gradient_penalty_weight=1.0)
    name, variable = collapse.regularization_variable(loss)
    # A variable of the loss like any other state (tracked by Keras, saved with the model).
    assert name == "gradient_penalty_weight" and loss.variables == [variable]
    assert loss.get_config()["gradient_penalty_weight"] == 1.0 and loss.gradient_penalty_weight == 1.0
    critic = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    real = tf.random.stateless_uniform((4, 2, 2, 1), (1, 2), -1, 1)
    fake = tf.random.stateless_uniform((4, 2, 2, 1), (3, 4), -1, 1)
    seed = tf.constant([5, 6], tf.int32)
    first = loss(critic, real, fake, seed=seed, mode="critic")
    variable.assign(3.0)
    second = loss(critic, real, fake, seed=seed, mode="critic")
    penalty = float(first.metrics["gradient_penalty"])
    assert penalty > 0 and float(second.critic_loss) - float(first.critic_loss) == pytest.approx(2 * penalty, rel=1e-5)
    assert loss.gradient_penalty_weight == 3.0 and loss.get_config()["gradient_penalty_weight"] == 1.0
    assert losses.get("smmd").gradient_penalty_weight_variable is None  # weight 0: no penalty, no variable
    assert losses.get("mmd", gradient_penalty_weight=0.3).gradient_penalty_weight == 0.3  # exact float


def test_recovery_raises_the_gradient_penalty_weight_of_mmd_gp_and_it_is_saved(tmp_path):
    model = tiny_model(loss=losses.get("mmd", gradient_penalty_weight=0.5))
    recovery = Scripted({10: 500.0, 12: 500.0}, rule=CollapseRule(patience=2), check_every=2,
                        snapshot_every=4, print_fn=None, directory=str(tmp_path / "snap"))
    model.fit(tiny_data(), epochs=1, steps_per_epoch=12, verbose=0, callbacks=[recovery])
    event = recovery.events[0]
    assert (event["coefficient_name"], event["old_coefficient"], event["new_coefficient"]) == \
        ("gradient_penalty_weight", 0.5, 5.0)
    # The callback's snapshots carry the GP weight (the latest one: the restored state, raised).
    fresh = tiny_model(seed=3, loss=losses.get("mmd", gradient_penalty_weight=0.5))
    tf.train.Checkpoint(**fresh.checkpoint_items()).read(recovery._snapshots[-1][1]).assert_existing_objects_matched()
    assert fresh.loss_object.gradient_penalty_weight == pytest.approx(5.0) and int(fresh.step.numpy()) == 8


def test_lr_factor_lowers_both_learning_rates_at_a_recovery_and_nothing_else(tmp_path):
    model = tiny_model()
    # As the restore-and-raise test: collapse declared at step 12 (onset 10), restore step 8.
    recovery = Scripted({10: 500.0, 12: 500.0}, rule=CollapseRule(patience=2), check_every=2,
                        snapshot_every=4, factor=10.0, lr_factor=0.25, directory=str(tmp_path / "snap"),
                        print_fn=None)
    capture = Capture({8})
    model.fit(tiny_data(), epochs=1, steps_per_epoch=12, verbose=0, callbacks=[capture, recovery])
    after, before = state_values(model), capture.values[8]
    changed = sorted(k for k in after if not np.array_equal(after[k], before[k]))
    rates = [k for k in changed if "learning_rate" in k]
    assert len(rates) == 2 and len(changed) == 3 and any(k.startswith("loss/0/") for k in changed), changed
    for role in ("generator", "critic"):
        rate = float(getattr(model, f"{role}_optimizer").learning_rate.numpy())
        assert rate == pytest.approx(1e-2 * 0.25)
        assert recovery.events[0]["learning_rates"][role] == pytest.approx([1e-2, 2.5e-3])
    # The rewritten snapshot holds the lowered rates (a resumed run keeps them).
    fresh = tiny_model(seed=5)
    tf.train.Checkpoint(**fresh.checkpoint_items()).read(recovery._snapshots[-1][1])
    assert float(fresh.critic_optimizer.learning_rate.numpy()) == pytest.approx(2.5e-3)


@pytest.mark.parametrize("lr_factor", [0.0, 1.5, True])
def test_lr_factor_must_be_in_the_unit_interval(lr_factor):
    with pytest.raises(ValueError, match="Expected `lr_factor`"):
        CollapseRecovery(lr_factor=lr_factor)


def test_lr_factor_refuses_a_learning_rate_schedule():
    model = tiny_model()
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.5)
    model.compile(generator_optimizer=keras.optimizers.Adam(schedule), critic_optimizer=keras.optimizers.Adam(1e-2),
                  loss=losses.get("smmd"))
    with pytest.raises(ValueError, match="constant learning rate"):
        model.fit(tiny_data(), epochs=1, steps_per_epoch=2, verbose=0,
                  callbacks=[CollapseRecovery(lr_factor=0.5, print_fn=None)])
