"""Building a run: process-wide settings, the strategy, the model, the checkpoints and the
callbacks (the parts — networks, loss, data — come from :mod:`.parts`). Nothing here writes to
the workdir except the savers it returns.
"""

import dataclasses
import sys

import keras
import numpy as np
import tensorflow as tf

from mmd_keras import callbacks as cb
from mmd_keras import checkpointing, collapse, distribute, fileio, models
from mmd_keras.app import errors
from mmd_keras.app.config import ConfigError
from mmd_keras.app.runner import parts as parts_lib
from mmd_keras.errors import CheckpointError

#: The events of ``--collapse_recovery`` (:meth:`mmd_keras.collapse.CollapseRecovery.to_json`).
COLLAPSE_FILE = "collapse_recovery.json"


def set_globals(config):
    """Seeds, op determinism and the Keras dtype policy (process-wide, before any network)."""
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(config.mixed_precision)


def create_strategy(config):
    """The ``tf.distribute`` strategy of ``config``, made before TensorFlow runs any op (multi-
    worker collectives and TPU initialization need that); errors name ``--strategy``/``--tpu``."""
    try:
        return distribute.create_strategy(config.strategy, tpu=config.tpu or None)
    except ValueError as error:
        raise ConfigError("strategy", str(error)) from None
    except Exception as error:  # TPU resolution/connection: name the TPU the user gave.
        if config.strategy != "tpu":
            raise
        raise ConfigError("tpu", f"Expected `--tpu` to name a reachable TPU ({type(error).__name__}:"
                          f" {str(error).splitlines()[0] if str(error) else ''}). Received: "
                          f"`--tpu={config.tpu}`") from None


def fit_plan(start_step, total_steps, steps_per_epoch):
    """The ``fit`` calls that take the step counter from ``start_step`` to ``total_steps``.

    Returns:
        list of ``(initial_epoch, epochs, steps_per_epoch, first_step)``: a partial epoch when
        ``start_step`` is mid-epoch, the full epochs, and a partial last epoch if needed.
    """
    plan, step = [], start_step
    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        if offset or total_steps - step < steps_per_epoch:
            n = min(steps_per_epoch - offset, total_steps - step)
            plan.append((epoch, epoch + 1, n, step))
        else:
            full = (total_steps - step) // steps_per_epoch
            n = full * steps_per_epoch
            plan.append((epoch, epoch + full, steps_per_epoch, step))
        step += n
    return plan


def build_model(config, parts=None):
    """The compiled MMDGAN (Adam with the config's betas, optimizers built) around the
    networks and loss of ``parts`` (:class:`mmd_keras.app.runner.parts.Parts`; built when None).

    Raises:
        ArgumentError: the networks and the loss do not go together (e.g. a loss of a
            one-output critic with ``--critic_output_dim`` > 1): the model's own check.
    """
    if parts is None:
        generator, critic = parts_lib.build_networks(config)
        parts = parts_lib.Parts(generator, critic, parts_lib.build_loss(config))
    model = models.MMDGAN(
        parts.generator, parts.critic, latent_dim=config.latent_dim,
        latent_distribution=config.latent_distribution,
        critic_schedule=config.critic_schedule, critic_steps=config.critic_steps,
        ema_decay=config.ema_decay or None, clip_norm=config.clip_norm or None,
        seed=config.seed, mmd_across_replicas=config.mmd_across_replicas)
    adam = dict(beta_1=config.adam_beta1, beta_2=config.adam_beta2)
    model.compile(generator_optimizer=keras.optimizers.Adam(config.generator_lr, **adam),
                  critic_optimizer=keras.optimizers.Adam(config.critic_lr, **adam),
                  loss=parts.loss, jit_compile=config.jit_compile,
                  steps_per_execution=config.steps_per_execution)
    return model


@dataclasses.dataclass
class Checkpoints:
    """The run's ``tf.train.Checkpoint``, what it holds, and its latest/best managers (opened
    by :func:`restore`)."""

    checkpoint: object
    items: dict
    directory: str
    manager: object = None
    best_manager: object = None

    def describe_latest(self):
        latest = self.manager.latest_checkpoint if self.manager is not None else None
        return latest or "none (no checkpoint was saved before the failure)"


def build_checkpoints(config, directory, model, evaluation):
    """Checkpoint of the model and the evaluation state (nothing is read or written yet)."""
    items = dict(model.checkpoint_items())
    if evaluation is not None:
        items.update(evaluation.checkpoint_items())
    return Checkpoints(tf.train.Checkpoint(**items), items, directory)


def restore(checkpoints, config, model, print_fn=print):
    """Opens the checkpoint folders and restores the newest usable checkpoint
    (:func:`mmd_keras.checkpointing.open_checkpoints`: an unreadable state file, a truncated
    or non-finite checkpoint are skipped with a message); returns its path or None.

    Raises:
        ConfigError: the checkpoint does not fit the networks of ``config`` (naming
            ``--latent_dim`` when the latent size differs, else ``--architecture``), or
            checkpoints exist and none is usable (``--workdir``). Nothing is written then.
    """
    try:
        checkpoints.manager, path = checkpointing.open_checkpoints(
            checkpoints.checkpoint, checkpoints.directory, config.keep_checkpoints, print_fn)
    except CheckpointError as error:
        raise errors.config_error(error, config, "workdir", "to hold no checkpoint or a usable "
                                  "one") from None
    except (AssertionError, ValueError) as error:
        flag, detail = errors.describe_mismatch(error, model.generator, config.latent_dim)
        raise ConfigError(flag, f"Expected `--{flag}` to fit the checkpoint in `--workdir="
                          f"{config.workdir}`: {detail}. Use the flags it was written with or "
                          f"another --workdir. Received: `--{flag}="
                          f"{getattr(config, flag)}`") from None
    checkpoints.best_manager, _ = checkpointing.open_checkpoints(
        checkpoints.checkpoint, fileio.join(checkpoints.directory, "best"), 1, print_fn,
        restore=False)
    return path


def apply_learning_rates(model, config, previous, print_fn=print):
    """The resume rule for ``--generator_lr``/``--critic_lr``; returns the changed flags.

    A restored optimizer carries the learning rate it last trained with (possibly decayed by
    the KID-driven schedule of ``--adaptive_lr``). A flag whose value differs from the one the
    workdir last ran with (``run.json``) is a request: it is applied — replacing the
    checkpoint's value, a decayed one too — and logged. An unchanged flag keeps the
    checkpoint's value (so the schedule's decays survive a resume). Workdirs written before
    ``run.json`` recorded learning rates compare with the checkpoint's value instead (without
    ``--adaptive_lr``, which may have decayed it). ``flags.cfg`` then describes what ran.
    """
    recorded = (previous or {}).get("learning_rates", {})
    step = int(model.step.numpy())
    changed = []
    for flag, optimizer in (("generator_lr", model.generator_optimizer),
                            ("critic_lr", model.critic_optimizer)):
        wanted = getattr(config, flag)
        current = float(np.asarray(optimizer.learning_rate))
        before = recorded.get(flag)
        if before is None:
            if config.adaptive_lr or np.float32(current) == np.float32(wanted):
                continue
            before = current
        elif before == wanted:
            continue
        optimizer.learning_rate.assign(wanted)
        changed.append(flag)
        print_fn(f"--{flag} changed: {before!r} -> {wanted!r} since the last run of this "
                 f"workdir; applied from generator step {step} (the checkpoint's learning "
                 f"rate was {current:.6g}).")
    return changed


def console_is_terminal(stream=None):
    """Whether the console is a terminal (Keras progress bar) or a log file (plain lines)."""
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def build_callbacks(config, model, checkpoints, paths, writer, evaluation, print_fn,
                    stop=None):
    """``(callbacks, guard, samples, recovery)``: guard, collapse recovery (``recovery``, None
    without ``--collapse_recovery``), evaluation, saver (checks the weights finite before each
    save), sample grids, scalars, console, stop at ``--steps``, and ``stop`` (the
    :class:`mmd_keras.app.preemption.PreemptionHandler`). Call after :func:`restore`.

    The evaluation callback's ``on_new_best`` saves through the saver made here.
    """
    guard = cb.NonFiniteGuard(checkpoints.describe_latest, print_fn=print_fn)
    recovery = build_collapse_recovery(config, model, checkpoints, paths, writer, print_fn)
    saver = cb.CheckpointCallback(checkpoints.manager, config.checkpoint_every,
                                  checkpoints.best_manager, guard=guard, items=checkpoints.items)
    if evaluation is not None:
        evaluation.on_new_best = lambda step, metrics: saver.save_best(step)
    samples = cb.SampleGrid(paths["samples"], config.sample_every, config.num_grid_samples,
                            seed=config.seed + 1234, writer=writer, guard=guard)
    evaluations = [evaluation] if evaluation is not None else []
    console = cb.ConsoleLog(config.log_every, config.steps, evaluation,
                            progress_lines=not console_is_terminal(), print_fn=print_fn)
    callbacks = [guard, *([recovery] if recovery is not None else []), *evaluations, saver,
                 samples, cb.ScalarLogger(writer, config.log_every, skip=evaluations), console,
                 cb.StopAtStep(config.steps)] + ([stop] if stop is not None else [])
    return callbacks, guard, samples, recovery


def build_collapse_recovery(config, model, checkpoints, paths, writer, print_fn):
    """The :class:`mmd_keras.collapse.CollapseRecovery` of ``--collapse_recovery`` (else None):
    snapshots of the run's checkpoint in ``<workdir>/checkpoints/collapse``, events in
    ``<workdir>/collapse_recovery.json``; a recovery also saves the run's latest checkpoint, so a
    resumed run keeps the raised coefficient. (Preflight checked the loss has a coefficient.)"""
    if not config.collapse_recovery:
        return None
    rule = collapse.CollapseRule(condition_growth=config.collapse_condition_growth,
                                 scale_drop=config.collapse_scale_drop or None,
                                 patience=config.collapse_patience)
    return collapse.CollapseRecovery(
        rule=rule, check_every=config.collapse_check_every,
        snapshot_every=config.collapse_snapshot_every, factor=config.collapse_factor,
        max_recoveries=config.collapse_max_recoveries, lr_factor=config.collapse_lr_factor,
        directory=fileio.join(paths["checkpoints"], "collapse"),
        checkpoint=checkpoints.checkpoint, run_manager=checkpoints.manager, writer=writer,
        path=fileio.join(paths["workdir"], COLLAPSE_FILE), print_fn=print_fn)


__all__ = ["set_globals", "create_strategy", "fit_plan", "build_model",
           "build_checkpoints", "restore", "apply_learning_rates", "build_callbacks",
           "build_collapse_recovery", "COLLAPSE_FILE"]
