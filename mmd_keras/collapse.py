"""Critic rank-collapse detection and automatic recovery (paper 2, §4 "Rank collapse").

Arbel et al. 2018 (paper 2), end of §4: an SMMD critic occasionally becomes low-rank — "this
failure was obvious even in the training objective" — and "one could avoid collapse by
reverting to an earlier checkpoint and increasing the RKHS regularization parameter λ", which
the paper did not do. :class:`CollapseRecovery` does it during ``fit``:

1. **Signals** (every ``check_every`` generator steps, on the host, from replica-0 logs and
   variable values, so the decision is taken once whatever the number of replicas): the
   largest condition number over the critic's weight matrices (an SVD of each reshaped kernel,
   :func:`mmd_keras.diagnostics.network_spectrum`), the loss's scale σ² (``smmd_scale`` when the
   loss logs it) and the training objective (``critic_loss``, averaged over the steps since the
   previous check). :class:`Signals` holds one check.
2. **Rule** (:func:`detect_collapse`, thresholds in :class:`CollapseRule`): a check is
   *alarming* when a signal is not finite, or when the condition number exceeds
   ``condition_growth`` × the smallest one of the earlier healthy checks, or the window-mean
   σ² falls below the largest one of the earlier healthy checks / ``scale_drop`` (σ⁻² grown
   that much; the critic's gradients exploding relative to its MMD) — optionally gated by the
   objective having risen ``objective_drop`` above its best (the critic loss −SMMD going to 0
   is the failure "obvious even in the training objective"). The first ``reference_checks``
   checks of a trajectory only build the references. A collapse is declared after ``patience``
   consecutive alarming checks; it *began* at the first of them. After a recovery the restored
   trajectory inherits the references of the healthy checks before the onset, σ² divided by the
   factor (:meth:`References.after_recovery`: the raised coefficient lowers σ² by design, at
   most that much), and is judged from its first check.
3. **Recovery**: the callback restores the newest of its own snapshots taken strictly before
   the onset (snapshots are taken every ``snapshot_every`` steps while no check is alarming),
   sets the loss's regularization coefficient to ``factor`` × its value at detection (SMMD and
   SWGAN ``coefficient``: the weight of E‖J‖²_F, the λ-like term of paper 2's Eq. 7 after the
   losses' rescaling; MMD-GP and other penalized losses: ``gradient_penalty_weight``), saves a
   snapshot of the restored state with the new coefficient (and, when given, a checkpoint of
   the run's manager, so a resumed run continues with it) and continues training from the
   restored step. After ``max_recoveries`` recoveries a further collapse stops training with
   a message (:attr:`gave_up`).

Snapshots are ``tf.train.Checkpoint`` files of :meth:`mmd_keras.models.MMDGAN.checkpoint_items`
(or of a checkpoint passed in, e.g. the launcher's, which also holds the evaluation state) in
``directory``, or in a temporary directory removed when training ends — so the callback works
in a notebook, without the launcher, and under ``tf.distribute`` (checkpoints restore every
replica's copy). Restoring rewinds the step counter: ``fit`` still runs its planned number of
batches, so the run ends ``rolled-back steps`` earlier than without a recovery (fit again for
the remaining steps to reach a step count). The data iterator is not rewound.

Events (``{"event": "recovery"|"gave_up", "step_detected", "onset_step", "step_restored",
"old_coefficient", "new_coefficient", "condition_number", ...}``) go to the console, to
TensorBoard (``collapse/coefficient``, ``collapse/recoveries``, ``collapse/condition_number``,
and a text summary per event) and to a JSON file (``path``) rewritten after each check.
"""

import dataclasses
import json
import math
import os
import shutil
import tempfile
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from mmd_keras import diagnostics
from mmd_keras.callbacks import current_step, learning_rate_variables


_LR_FACTOR = "`lr_factor` < 1 (a schedule cannot be scaled)"


@dataclasses.dataclass(frozen=True)
class CollapseRule:
    """Thresholds of :func:`detect_collapse` (defaults chosen on the digits study, see docs/studies/collapse_recovery.md).

    Attributes:
        condition_growth: alarm when the max-layer condition number exceeds this factor × the
            smallest value of the earlier healthy checks.
        scale_drop: None, or alarm when the window-mean scale σ² (when logged) falls below the
            largest value of the earlier healthy checks / this factor (σ⁻² grown by this factor).
        reference_checks: the first checks only build the references (no alarm unless non-finite).
        objective_drop: None (condition number only), or the rise of the window-mean objective
            above its best (lowest) value so far that an alarm also needs.
        patience: consecutive alarming checks that declare a collapse.
    """

    condition_growth: float = 10.0
    scale_drop: Optional[float] = 10.0
    reference_checks: int = 3
    objective_drop: Optional[float] = None
    patience: int = 2

    def __post_init__(self):
        if not (isinstance(self.condition_growth, (int, float)) and self.condition_growth > 1.0):
            raise ValueError(f"Expected `condition_growth` a number > 1. Received: "
                             f"`condition_growth={self.condition_growth!r}`")
        if self.scale_drop is not None and not (isinstance(self.scale_drop, (int, float)) and self.scale_drop > 1.0):
            raise ValueError(f"Expected `scale_drop` None or a number > 1. Received: `scale_drop={self.scale_drop!r}`")
        for name in ("reference_checks", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected `{name}` an int >= 1. Received: `{name}={value!r}`")
        if self.objective_drop is not None and not (
                isinstance(self.objective_drop, (int, float)) and self.objective_drop >= 0.0):
            raise ValueError(f"Expected `objective_drop` None or a number >= 0. Received: "
                             f"`objective_drop={self.objective_drop!r}`")


@dataclasses.dataclass(frozen=True)
class Signals:
    """One check: the generator step and the watched values (``scale`` None when not logged)."""

    step: int
    condition_number: float
    objective: float
    scale: Optional[float] = None


def _finite(signals):
    values = [signals.condition_number, signals.objective]
    if signals.scale is not None:
        values.append(signals.scale)
    return all(math.isfinite(v) for v in values)


@dataclasses.dataclass(frozen=True)
class References:
    """The healthy references a check is compared with (see :func:`alarms`).

    Attributes:
        condition_number: the smallest condition number of the earlier healthy checks.
        scale: None, or the largest σ² of the earlier healthy checks.
        objective: the smallest (best) window-mean objective of the earlier healthy checks.
    """

    condition_number: float = math.inf
    scale: Optional[float] = None
    objective: float = math.inf

    def updated(self, signals):
        """These references with the healthy check ``signals`` taken in."""
        scale = self.scale
        if signals.scale is not None:
            scale = signals.scale if scale is None else max(scale, signals.scale)
        return References(min(self.condition_number, signals.condition_number), scale,
                          min(self.objective, signals.objective))

    def after_recovery(self, factor):
        """The references a restored trajectory inherits when the coefficient is multiplied by ``factor``.

        σ⁻² = offset + coefficient · E‖J‖²_F (paper 2, Eq. 7, as :func:`losses.smmd_scale`
        weights it) grows at most ``factor``-fold when the coefficient does (the same critic), so
        the σ² reference is divided by it: a
        σ² the raised coefficient explains is no alarm, a collapse (σ² ÷10–100 beyond it) still
        is. The condition number does not depend on the coefficient; the objective's best value
        does (it is rescaled with σ), so it restarts.
        """
        return References(self.condition_number, None if self.scale is None else self.scale / factor)


def _scan(history, rule, references=None):
    """``[(alarming, references before the check)]`` for each check of ``history``."""
    inherited = references is not None
    references = References() if references is None else references
    out = []
    for i, signals in enumerate(history):
        if not _finite(signals):
            out.append((True, references))
            continue
        # A trajectory restored by a recovery inherits references, so its very first checks are
        # judged (a restored run that collapses again cannot adopt a collapsed state as healthy).
        alarming = (inherited or i >= rule.reference_checks) and (
            math.log10(max(signals.condition_number, 1.0))
            > math.log10(max(references.condition_number, 1.0)) + math.log10(rule.condition_growth)
            or (rule.scale_drop is not None and references.scale is not None and signals.scale is not None
                and signals.scale * rule.scale_drop < references.scale))
        if alarming and rule.objective_drop is not None:
            alarming = signals.objective - references.objective > rule.objective_drop
        out.append((alarming, references))
        if not alarming:
            references = references.updated(signals)
    return out


def alarms(history, rule, references=None):
    """Whether each check of ``history`` (a sequence of :class:`Signals`) is alarming (see module doc).

    References are the best values of the earlier non-alarming checks of ``history``: the smallest
    condition number and the largest scale σ². Without inherited ``references`` (a
    :class:`References`), the first ``rule.reference_checks`` checks only build them (alarming
    only when a signal is not finite); with them (a trajectory restored by a recovery), every
    check is judged from the first.

    Returns:
        list of bools, one per check.
    """
    return [alarming for alarming, _ in _scan(history, rule, references)]


def references_before(history, rule, step, references=None):
    """The :class:`References` of the healthy checks of ``history`` taken before ``step``."""
    scanned = [(a, r, s) for (a, r), s in zip(_scan(history, rule, references), history) if s.step < step]
    if not scanned:
        return References() if references is None else references
    alarming, last_references, last = scanned[-1]
    return last_references if alarming else last_references.updated(last)


def detect_collapse(history, rule, references=None):
    """The onset step of a collapse declared at the last check of ``history``, else None.

    A collapse is declared when the last ``rule.patience`` checks are all alarming
    (:func:`alarms`); its onset is the first check of that alarming streak.
    """
    flags = alarms(history, rule, references)
    if len(flags) < rule.patience or not all(flags[-rule.patience:]):
        return None
    start = len(flags) - 1
    while start > 0 and flags[start - 1]:
        start -= 1
    return int(history[start].step)


def regularization_variable(loss):
    """``(name, variable)`` of the coefficient a recovery multiplies: the loss's declared
    ``regularization_coefficient`` (SMMD/SWGAN: ``coefficient``, the weight of E‖J‖²_F; other
    losses: the gradient-penalty weight when it is a positive state variable).

    Raises:
        ValueError: the loss has no adjustable regularization coefficient.
    """
    regularization = loss.regularization_coefficient
    if regularization is None:
        raise ValueError("Expected a loss with an adjustable regularization coefficient (SMMD/SWGAN "
                         "`coefficient`, or a positive `gradient_penalty_weight` state variable). "
                         f"Received: `loss={loss.name!r}`")
    return regularization


def _scalar(value):
    return float(np.asarray(keras.ops.convert_to_numpy(value)).reshape(-1)[0])


class CollapseRecovery(keras.callbacks.Callback):
    """Watches for critic rank collapse during ``fit`` and recovers (see the module docstring).

    Args:
        rule: a :class:`CollapseRule`.
        check_every: generator steps between checks (one SVD per critic layer each).
        snapshot_every: generator steps between snapshots (a multiple of ``check_every``).
        factor: the coefficient multiplier of a recovery (> 1).
        max_recoveries: recoveries allowed; the next collapse stops training (:attr:`gave_up`).
        keep_snapshots: snapshots kept (the oldest are deleted).
        directory: folder of the snapshots; None: a temporary folder removed at train end.
        checkpoint: the ``tf.train.Checkpoint`` to snapshot; default one of the model's
            ``checkpoint_items()``.
        run_manager: optional ``tf.train.CheckpointManager`` of the run, saved right after each
            recovery (checkpoint number = the restored step) so a resumed run keeps the new
            coefficient.
        layer_names: critic layers to watch (default every layer with a kernel).
        writer: optional ``tf.summary`` writer.
        path: optional JSON file of the checks and events, rewritten after each check.
        print_fn: console output (None: silent).
        recover: False watches only: a collapse is logged as a ``"detected"`` event (nothing is
            restored or changed, no snapshot is taken), e.g. to tune the thresholds or to measure
            false alarms on a loss without an adjustable coefficient.
        lr_factor: multiplier of both optimizers' learning rates at each recovery, in (0, 1];
            1 (default) is paper 2's recipe (λ only). Beyond the paper: when a raised λ alone
            does not stop the collapse recurring (docs/studies/collapse_recovery.md).
    """

    def __init__(self, rule=None, check_every=25, snapshot_every=100, factor=10.0, max_recoveries=3,
                 keep_snapshots=3, directory=None, checkpoint=None, run_manager=None, layer_names=None,
                 writer=None, path=None, print_fn=print, recover=True, lr_factor=1.0):
        super().__init__()
        for name, value in (("check_every", check_every), ("snapshot_every", snapshot_every),
                            ("keep_snapshots", keep_snapshots)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected `{name}` an int >= 1. Received: `{name}={value!r}`")
        if snapshot_every % check_every:
            raise ValueError("Expected `snapshot_every` a multiple of `check_every`. Received: "
                             f"`snapshot_every={snapshot_every}`, `check_every={check_every}`")
        if isinstance(max_recoveries, bool) or not isinstance(max_recoveries, int) or max_recoveries < 0:
            raise ValueError(f"Expected `max_recoveries` an int >= 0. Received: `max_recoveries={max_recoveries!r}`")
        if not (isinstance(factor, (int, float)) and factor > 1.0):
            raise ValueError(f"Expected `factor` a number > 1. Received: `factor={factor!r}`")
        if isinstance(lr_factor, bool) or not (isinstance(lr_factor, (int, float)) and 0.0 < lr_factor <= 1.0):
            raise ValueError(f"Expected `lr_factor` a number in (0, 1]. Received: `lr_factor={lr_factor!r}`")
        self.lr_factor = float(lr_factor)
        self.rule = CollapseRule() if rule is None else rule
        if not isinstance(self.rule, CollapseRule):
            raise ValueError(f"Expected `rule` a CollapseRule. Received: `rule={rule!r}`")
        self.check_every, self.snapshot_every, self.keep_snapshots = check_every, snapshot_every, keep_snapshots
        self.factor, self.max_recoveries = float(factor), max_recoveries
        self.directory, self.checkpoint, self.run_manager = directory, checkpoint, run_manager
        self.layer_names = None if layer_names is None else list(layer_names)
        self.writer, self.path, self.print_fn = writer, path, print_fn
        self.recover = bool(recover)
        self.history = []      # Signals of every check (the abandoned branches included)
        self.iterations = []   # the training iteration (batches seen by this callback) of each check
        self._batches = 0
        self.events = []
        self.gave_up = False
        self._segment = []     # the checks of the current trajectory (a recovery drops the abandoned ones)
        self._references = None  # References the current trajectory inherited from a recovery
        self._restored_step = None  # the step the current trajectory was restored to
        self._snapshots = []   # (step, checkpoint prefix), oldest first
        self._objectives, self._scales = [], []
        self._temporary = None
        self._coefficient = None

    # ---- snapshots ------------------------------------------------------------------------
    def _setup(self):
        if not self.recover:
            self._coefficient = None
            return
        self._coefficient = regularization_variable(self.model.loss_object)
        if self.lr_factor != 1.0:  # fail before training, not at the first recovery
            learning_rate_variables(self.model, _LR_FACTOR)
        if self.checkpoint is None:  # the loss item carries the coefficient
            self.checkpoint = tf.train.Checkpoint(**self.model.checkpoint_items())
        directory = self.directory
        if directory is None:
            self._temporary = directory = tempfile.mkdtemp(prefix="collapse_snapshots_")
        tf.io.gfile.makedirs(directory)
        self._prefix = os.path.join(directory, "snapshot")

    def _snapshot(self, step):
        if not self.recover:
            return
        if self._snapshots and self._snapshots[-1][0] == step:
            return
        path = self.checkpoint.write(f"{self._prefix}-{step}-{len(self.events)}")
        self._snapshots.append((step, path))
        while len(self._snapshots) > self.keep_snapshots:
            self._drop_snapshots([self._snapshots.pop(0)])

    @staticmethod
    def _drop_snapshots(snapshots):
        """Deletes the files of ``[(step, path)]`` snapshots."""
        for _, path in snapshots:
            for name in tf.io.gfile.glob(path + ".*"):
                tf.io.gfile.remove(name)

    @property
    def coefficient(self):
        """The current value of the multiplied coefficient (Python float; None when watching only)."""
        return None if self._coefficient is None else float(self._coefficient[1].numpy())

    # ---- signals --------------------------------------------------------------------------
    def signals(self, step, logs):
        """The :class:`Signals` of a check at ``step`` (``logs``: the last step's logs)."""
        spectrum = diagnostics.network_spectrum(self.model.critic, layer_names=self.layer_names)
        condition = max(layer["condition_number"] for layer in spectrum.values())
        objective = float(np.mean(self._objectives)) if self._objectives else _scalar(logs["critic_loss"])
        scale = float(np.mean(self._scales)) if self._scales else None
        return Signals(int(step), float(condition), objective, scale)

    # ---- Keras hooks ----------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._setup()
        self._objectives, self._scales = [], []
        self._snapshot(current_step(self.model))

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self._batches += 1
        if "critic_loss" in logs:
            self._objectives.append(_scalar(logs["critic_loss"]))
        if "smmd_scale" in logs:
            self._scales.append(_scalar(logs["smmd_scale"]))
        step = current_step(self.model)
        if step % self.check_every:
            return
        signals = self.signals(step, logs)
        self._objectives, self._scales = [], []
        self.history.append(signals)
        self.iterations.append(self._batches)
        self._segment.append(signals)
        onset = detect_collapse(self._segment, self.rule, self._references)
        self._write_summaries(signals)
        if onset is not None:
            self._recover(step, onset, signals)
        elif step % self.snapshot_every == 0 and not alarms(self._segment, self.rule, self._references)[-1]:
            self._snapshot(step)
        self._save_json()

    def on_train_end(self, logs=None):
        self._save_json()
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary, self._snapshots = None, []

    # ---- recovery -------------------------------------------------------------------------
    def _detected_only(self, step, onset, signals):
        event = {"event": "detected", "step_detected": int(step), "iteration": self._batches, "onset_step": int(onset),
                 "condition_number": signals.condition_number, "objective": signals.objective,
                 "scale": signals.scale}
        self.events.append(event)
        # A new trajectory segment, so one collapse is reported once.
        self._segment = []
        self._print(f"Collapse watch: critic collapse detected at step {step} (began at step {onset}, "
                    f"condition number {signals.condition_number:.3g}); recover=False, nothing changed.")
        self._write_event(event)

    def _recover(self, step, onset, signals):
        if not self.recover:
            return self._detected_only(step, onset, signals)
        name, variable = self._coefficient
        old = self.coefficient
        event = {"step_detected": int(step), "iteration": self._batches, "onset_step": int(onset),
                 "coefficient_name": name,
                 "old_coefficient": old, "condition_number": signals.condition_number,
                 "objective": signals.objective, "scale": signals.scale}
        candidates = [(s, p) for s, p in self._snapshots if s < onset]
        flags = alarms(self._segment, self.rule, self._references)
        if self._restored_step is not None and all(flags):
            # The restored trajectory has not had one healthy check: the snapshot it started from
            # was already on the way to collapse (taken while the signals were still under the
            # thresholds). Back off to an older one.
            candidates = [(s, p) for s, p in candidates if s < self._restored_step]
            event["backed_off_from"] = int(self._restored_step)
        recoveries = sum(e["event"] == "recovery" for e in self.events)
        if recoveries >= self.max_recoveries or not candidates:
            reason = (f"{recoveries} recoveries already (max_recoveries={self.max_recoveries})"
                      if candidates else f"no snapshot before the onset step {onset}" + (
                          f" and the failed restore of step {self._restored_step}"
                          if "backed_off_from" in event else ""))
            self.events.append({"event": "gave_up", **event, "reason": reason})
            self.gave_up = True
            self.model.stop_training = True
            self._print(f"Collapse recovery: critic collapse detected at step {step} (began at step {onset}, "
                        f"condition number {signals.condition_number:.3g}); giving up: {reason}. "
                        "Training stops.")
            self._write_event(self.events[-1])
            return
        restored_step, path = candidates[-1]
        references = references_before(self._segment, self.rule, onset, self._references)
        self.checkpoint.read(path).assert_existing_objects_matched()
        variable.assign(old * self.factor)
        if self.lr_factor != 1.0:
            # After the restore (which brought back the snapshot's rates), so the lowered rates
            # are those of the rewritten snapshot below and of the run's checkpoint.
            event["learning_rates"] = {}
            for role, variable in learning_rate_variables(self.model, _LR_FACTOR):
                rate = float(variable.numpy())
                variable.assign(rate * self.lr_factor)
                event["learning_rates"][role] = [rate, rate * self.lr_factor]
        # Snapshots after the restored one belong to the abandoned trajectory (their files go
        # too); the restored one is rewritten below with the new coefficient.
        self._drop_snapshots([(s, p) for s, p in self._snapshots if s >= restored_step])
        self._snapshots = [(s, p) for s, p in self._snapshots if s < restored_step]
        # The restored trajectory inherits the healthy references of the abandoned one, σ² divided
        # by the factor (a raised coefficient lowers σ² by design, at most that much): judged from
        # its first check, it cannot take a collapsing state for its healthy reference.
        self._segment = []
        self._references = references.after_recovery(self.factor)
        self._restored_step = int(restored_step)
        self._objectives, self._scales = [], []
        event.update(event="recovery", step_restored=int(restored_step), new_coefficient=self.coefficient,
                     recovery=recoveries + 1)
        self.events.append(event)
        self._snapshot(restored_step)
        if self.run_manager is not None:
            self.run_manager.save(checkpoint_number=restored_step)
        self._print(f"Collapse recovery {recoveries + 1}/{self.max_recoveries}: critic collapse detected at "
                    f"step {step} (began at step {onset}, condition number {signals.condition_number:.3g}); "
                    f"restored step {restored_step}, {name} {old:.4g} -> {self.coefficient:.4g}.")
        self._write_event(event)

    # ---- logging --------------------------------------------------------------------------
    def _print(self, message):
        if self.print_fn is not None:
            self.print_fn(message)

    def _write_summaries(self, signals):
        if self.writer is None:
            return
        with self.writer.as_default():
            tf.summary.scalar("collapse/condition_number", signals.condition_number, step=signals.step)
            if self.coefficient is not None:
                tf.summary.scalar("collapse/coefficient", self.coefficient, step=signals.step)
            if signals.scale is not None:
                tf.summary.scalar("collapse/scale", signals.scale, step=signals.step)
            tf.summary.scalar("collapse/objective", signals.objective, step=signals.step)
            tf.summary.scalar("collapse/recoveries", sum(e["event"] == "recovery" for e in self.events),
                              step=signals.step)
        self.writer.flush()

    def _write_event(self, event):
        if self.writer is None:
            return
        with self.writer.as_default():
            tf.summary.text("collapse/event", json.dumps(diagnostics._jsonable(event)), step=event["step_detected"])
            if self.coefficient is not None:
                tf.summary.scalar("collapse/coefficient", self.coefficient, step=event["step_detected"])
        self.writer.flush()

    def to_json(self):
        """The rule, the checks and the events as strict-JSON-able data."""
        return diagnostics._jsonable({
            "rule": dataclasses.asdict(self.rule), "check_every": self.check_every,
            "snapshot_every": self.snapshot_every, "factor": self.factor, "max_recoveries": self.max_recoveries,
            "recover": self.recover, "checks": [{**dataclasses.asdict(s), "iteration": i} for s, i in zip(self.history, self.iterations)],
            "events": self.events, "gave_up": self.gave_up,
        })

    def _save_json(self):
        if self.path is None:
            return
        tmp = f"{self.path}.tmp"
        with tf.io.gfile.GFile(tmp, "w") as f:
            json.dump(self.to_json(), f, allow_nan=False, indent=1)
        tf.io.gfile.rename(tmp, self.path, overwrite=True)
