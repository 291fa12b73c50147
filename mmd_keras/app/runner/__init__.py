"""Runs a :class:`mmd_keras.app.config.RunConfig`: the body of ``mmd-keras`` /
``python -m mmd_keras.launch``.

:func:`run` is the story of a run, one named step per line: strategy → preflight (checks and
the networks and loss, built once, writing nothing) → lock → build → restore → fit → report.
Nothing is written before preflight has passed, and a failure before ``fit`` leaves the
workdir as it was. :func:`dry_run` is preflight without opening the data, strategy or lock.

Failure behaviour (docs/operations.md; tests/faults/): the lock is ``flock`` locally
and a heartbeat lease on gs:// and other ``tf.io.gfile`` paths (:mod:`mmd_keras.app.workdir_lock`);
the restore trusts no state file and skips unreadable or non-finite checkpoints, and no save
writes a non-finite weight (:mod:`mmd_keras.checkpointing`); SIGTERM/SIGINT checkpoint the
current step and exit 42 (:mod:`mmd_keras.app.preemption`); a failed write is one ``error:`` line
and exit 1. Every path goes through :mod:`mmd_keras.fileio` (local, ``gs://``, ``ram://``).

Modules, each importing only those before it (``tests/test_import_graph.py``):
:mod:`~mmd_keras.app.runner.workdir` (``flags.cfg``/``run.json``, multi-worker directories),
:mod:`~mmd_keras.app.runner.parts` (networks, loss and data, built from the config),
:mod:`~mmd_keras.app.runner.evaluation` (the per-dataset evaluation plan),
:mod:`~mmd_keras.app.runner.build` (strategy, model, checkpoints, callbacks),
:mod:`~mmd_keras.app.runner.checks` (preflight), and, here, the story and what the run prints
at the end. The launcher imports this package only after the flags are valid (it imports
TensorFlow).
"""

import contextlib
import dataclasses
import errno
import os
import sys
import time

import keras
import tensorflow as tf

from mmd_keras import callbacks as cb
from mmd_keras import export, fileio, performance
from mmd_keras.app import config as config_lib
from mmd_keras.app import preemption, workdir_lock
from mmd_keras.app.config import ConfigError
from mmd_keras.app.preemption import EXIT_PREEMPTED
from mmd_keras.app.runner import build, evaluation, workdir
from mmd_keras.app.runner.build import build_model, fit_plan
from mmd_keras.app.runner.checks import check_eval_weights, check_workdir, preflight
from mmd_keras.app.runner.parts import build_dataset, build_loss, loss_params, networks_kwargs
from mmd_keras.app.runner.workdir import FLAGS_FILE, LOCK_FILE, RUN_FILE, worker_config

#: Exit codes of a run: 0 done; 1 stopped on a non-finite loss or weight, a write failed
#: (disk full, read-only, quota), or ``--collapse_recovery`` gave up (a collapse after
#: ``--collapse_max_recoveries`` recoveries) — the message names it and every checkpoint
#: written before is intact; 42 (:data:`mmd_keras.app.preemption.EXIT_PREEMPTED`) stopped by
#: SIGTERM/SIGINT after checkpointing the current step: rerun the same command to resume. (2, bad input, is the
#: launcher's: a ConfigError raised before anything is written.)
EXIT_OK, EXIT_NON_FINITE = 0, 1
#: Failures of a write, reported as one ``error:`` line (exit 1) instead of a traceback.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES,
                  errno.EPERM, errno.EFBIG)
_STORAGE_WORDS = ("No space left", "quota", "Read-only file system", "Permission denied",
                  "Input/output error", "File too large")


@dataclasses.dataclass
class Run:
    """The built pieces of a run (the state the story's steps pass along)."""

    config: object
    strategy: object
    paths: dict
    stop: object = None
    model: object = None
    writer: object = None
    evaluation: object = None
    kid_floor: object = None
    checkpoints: object = None
    callbacks: list = None
    guard: object = None
    recovery: object = None
    samples: object = None
    restored: str = None
    start_step: int = 0
    run_id: str = None
    elapsed: float = 0.0


def run(config, argv=None, print_fn=print, strategy=None):
    """Trains (or resumes) the run described by ``config``; returns the exit code
    (:data:`EXIT_OK`, :data:`EXIT_NON_FINITE`, :data:`EXIT_PREEMPTED`).

    Raises:
        ConfigError: before anything is written (bad input, busy or foreign workdir).
    """
    config = worker_config(config)
    strategy = strategy or build.create_strategy(config)
    build.set_globals(config)
    with strategy.scope():
        built = preflight(config)
    lock = workdir_lock.acquire(config.workdir, print_fn=print_fn)
    try:
        with preemption.PreemptionHandler(lock=lock) as stop:
            try:
                state = build_run(config, strategy, built, stop, print_fn)
                restore_run(state, print_fn)
            except BaseException:  # e.g. a foreign checkpoint: the workdir is left as it was
                lock.release(remove_if_created=True)
                raise
            start_run(state, argv, print_fn)
            fit_run(state, print_fn)
            return final_report(state, print_fn)
    except (OSError, tf.errors.OpError) as error:  # a failed write: a message, not a traceback
        return storage_failure(error, config)
    finally:
        lock.release()


def _paths(config):
    root = fileio.absolute(config.workdir)
    paths = {name: fileio.join(root, name) for name in ("checkpoints", "samples", "tensorboard")}
    paths.update(workdir=root, saved_models=fileio.absolute(config.export_dir))
    return paths


def build_run(config, strategy, built, stop, print_fn):
    """Model, TensorBoard writer (its file made on first use), evaluation and checkpoint (in
    the strategy scope); nothing is written."""
    state = Run(config, strategy, _paths(config), stop)
    with strategy.scope():
        state.model = built.model if built.model is not None else build_model(config, built)
        state.writer = cb.SummaryWriter(state.paths["tensorboard"])
        state.evaluation, state.kid_floor = evaluation.build_evaluation(
            config, state.writer, None, print_fn, state.model)
        state.checkpoints = build.build_checkpoints(config, state.paths["checkpoints"],
                                                    state.model, state.evaluation)
    return state


def restore_run(state, print_fn):
    """Restores the newest usable checkpoint (ConfigError when it belongs to another run, or
    checkpoints exist and none is usable: nothing is written then)."""
    with state.strategy.scope():
        state.restored = build.restore(state.checkpoints, state.config, state.model, print_fn)
    state.start_step = cb.current_step(state.model)


def start_run(state, argv, print_fn):
    """Applies changed learning rates, writes ``flags.cfg`` and ``run.json``, builds the
    callbacks and says what will train."""
    config, replicas = state.config, state.strategy.num_replicas_in_sync
    previous = workdir.read_run_record(config.workdir)
    state.run_id = workdir.run_id_of(previous)
    if state.restored:
        build.apply_learning_rates(state.model, config, previous, print_fn)
    fileio.makedirs(state.paths["samples"])
    flags_path = workdir.write_run_files(config, argv, replicas, state.run_id)
    state.callbacks, state.guard, state.samples, state.recovery = build.build_callbacks(
        config, state.model, state.checkpoints, state.paths, state.writer, state.evaluation,
        print_fn, state.stop)
    print_fn(f"Run directory: {state.paths['workdir']}")
    print_fn(f"  resolved flags:  {flags_path}")
    if state.restored:
        print_fn(f"Resuming from {state.restored} at generator step {state.start_step}.")
    print_fn(f"TensorFlow CPU kernels: {performance.kernel_set()} "
             f"({performance.ONEDNN_VARIABLE}={os.environ.get(performance.ONEDNN_VARIABLE, 'unset')}).")
    print_fn(f"Global batch: {config.batch_size * replicas} ({config.batch_size} per replica x "
             f"{replicas} replica(s)); training generator steps {state.start_step} -> "
             f"{config.steps}.")


def fit_run(state, print_fn=print):
    """``model.fit`` over the :func:`fit_plan` (a partial first epoch when resuming), until
    ``--steps``, the guard fails, a signal asks to stop (a checkpoint at that step) or the
    collapse recovery gives up. A recovery rewinds the step counter, so a pass of the plan can
    end short of ``--steps``: the plan is made again from the current step (at most
    ``--collapse_max_recoveries`` + 1 passes)."""
    config, replicas = state.config, state.strategy.num_replicas_in_sync
    verbose = 1 if build.console_is_terminal() else 0
    started = time.time()
    passes = config.collapse_max_recoveries + 1 if state.recovery is not None else 1
    if cb.current_step(state.model) < config.steps:
        # The first step traces and compiles the train step (seconds to minutes); said here so
        # that the wait is not mistaken for training speed.
        print_fn("Building and tracing the train step (the first step includes it) …")
    for _ in range(passes):
        for initial_epoch, epochs, steps_per_epoch, first_step in fit_plan(
                cb.current_step(state.model), config.steps, config.steps_per_epoch):
            if _stopped(state):
                break
            state.model.fit(build_dataset(config, first_step, replicas=replicas, training=True),
                            initial_epoch=initial_epoch, epochs=epochs,
                            steps_per_epoch=steps_per_epoch, callbacks=state.callbacks,
                            shuffle=False, verbose=verbose)
        if _stopped(state) or cb.current_step(state.model) >= config.steps:
            break
    state.writer.flush()
    state.elapsed = time.time() - started


def _stopped(state):
    return (state.guard.failed or state.stop.reason is not None
            or (state.recovery is not None and state.recovery.gave_up))


# --- the end of a run ----------------------------------------------------------------------------
def final_report(state, print_fn):
    """Prints the outcome and every output location, exports the generator; the exit code."""
    config = state.config
    if state.guard.failed:
        print_fn(f"error: {state.guard.message}")
        return EXIT_NON_FINITE
    if state.recovery is not None and state.recovery.gave_up:
        event = state.recovery.events[-1]
        print_fn(f"error: critic collapse at generator step {event['step_detected']} (began at "
                 f"step {event['onset_step']}) and --collapse_recovery gave up: "
                 f"{event['reason']}. Events: {state.recovery.path}; latest checkpoint: "
                 f"{state.checkpoints.manager.latest_checkpoint or 'none'}.")
        return EXIT_NON_FINITE
    if state.stop.reason is not None:
        print_fn(f"Stopped by {state.stop.reason} at generator step "
                 f"{cb.current_step(state.model)}; checkpoint: "
                 f"{state.checkpoints.manager.latest_checkpoint or 'none'}. Rerun the same "
                 "command to resume.")
        return EXIT_PREEMPTED
    if state.start_step >= config.steps:
        print_fn(f"Nothing to train: the checkpoint is at step {state.start_step} >= --steps.")
    step = cb.current_step(state.model)
    print_fn(f"Trained to generator step {step} in {state.elapsed:.1f} s.")
    manager = state.checkpoints.manager
    best = (f"; best by {config.best_metric} in {state.checkpoints.best_manager.directory}"
            if state.evaluation is not None else "")
    print_fn(f"  checkpoints:     {manager.latest_checkpoint} (latest {config.keep_checkpoints} "
             f"kept{best})")
    print_fn(f"  sample grids:    {state.paths['samples']} (latest: {state.samples.last_path})")
    print_fn(f"  TensorBoard:     tensorboard --logdir {state.paths['tensorboard']}")
    _report_kid(state, step, print_fn)
    _export(state, print_fn)
    return EXIT_OK


def _report_kid(state, step, print_fn):
    evaluation, config = state.evaluation, state.config
    if evaluation is None or not evaluation.last_metrics:
        return
    kid = evaluation.last_metrics
    print_fn(f"  KID ({evaluation.extractor.name} features, raw scale, "
             f"{config.eval_num_samples} samples, {config.kid_subsets} subsets of "
             f"{evaluation.kid_subset_size}) at step {step}: {kid['kid']:.5f} +- "
             f"{kid['kid_std']:.5f}")
    if state.kid_floor is not None:
        print_fn(f"  KID real-vs-real floor (training vs held-out digits): "
                 f"{state.kid_floor.mean:.5f} +- {state.kid_floor.std:.5f}")


def _export(state, print_fn):
    """Exports the generator as a new version, unless this run (same workdir and run id: the
    marker of :mod:`mmd_keras.export`) already exported it and trained no step since."""
    config = state.config
    if not config.export:
        return
    root = state.paths["saved_models"]
    fingerprint = export.run_fingerprint(state.paths["workdir"], state.run_id)
    found = export.find_export(root, config.name, fingerprint)
    if found and state.start_step >= config.steps:
        print_fn(f"  SavedModel:      already exported: {found}")
        return
    path = export.export_generator(state.model.sampling_generator, root, config.name,
                                   latent_dim=config.latent_dim,
                                   latent_distribution=config.latent_distribution,
                                   fingerprint=fingerprint)
    print_fn(f"  SavedModel:      {path}  (saved_model_cli show --dir {path} --all)")


def storage_failure(error, config):
    """Prints an ``error:`` line for a failed write and returns 1; re-raises anything else.

    A write that fails (disk full, quota, read-only, I/O error) through ``os`` or
    ``tf.io.gfile`` (checkpoints, samples, TensorBoard, run files, the export) ends the run
    with a message naming the path instead of a traceback. Nothing written before is changed:
    checkpoints and run files are written under temporary names first.
    """
    message = str(getattr(error, "message", "") or error)
    if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
        where = f" ({error.filename})" if error.filename else ""
    elif isinstance(error, tf.errors.OpError) and any(w in message for w in _STORAGE_WORDS):
        where = ""
    else:
        raise error
    print(f"error: a write under `--workdir={config.workdir}` or `--export_dir="
          f"{config.export_dir}` failed{where}: {message.strip().splitlines()[0][:500]}. Every "
          "checkpoint written before is intact; free the space (or fix the folder) and rerun "
          "the same command to resume.", file=sys.stderr)
    return EXIT_NON_FINITE


# --- the dry run ---------------------------------------------------------------------------------

@contextlib.contextmanager
def _dtype_policy(name):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def unchecked(config):
    """``[(what, why)]`` a dry run does not check (opening the data, the strategy) or that a
    real run will only report (KID/FID skipped without weights)."""
    where = f"in {config.data_dir}" if config.data_dir else "(TFDS default or package)"
    notes = [("data", f"--dataset={config.dataset} {where} is not opened by --dry_run (offline, "
              "no download); a real run opens it first and stops with an error if it cannot")]
    if evaluation.needs_weights(config) and not evaluation.eval_weights(config):
        notes.append(("evaluation weights", "--eval_weights not given; a real run skips KID/FID"))
    if config.strategy not in ("default", "one_device"):
        notes.append(("strategy", f"--strategy={config.strategy} is not created by --dry_run "
                      "(it needs the devices/cluster); a real run creates it first"))
    return notes


def dry_run(config, stdout=None):
    """Runs every check of a real run that needs no dataset and no strategy (flags, networks
    and loss built once, workdir, ``--data_dir`` and evaluation-weights files), prints the
    resolved flags and what was not checked; writes nothing. Returns 0.

    Raises:
        ConfigError: a check failed (several are listed together, each naming its flag).
    """
    stdout = stdout or sys.stdout
    config = worker_config(config)
    with _dtype_policy(config.mixed_precision):
        preflight(config, open_dataset=False)
    notes = unchecked(config)
    header = ("Resolved configuration (--dry_run: nothing written).\nChecked: flag values and "
              "combinations, the networks and the loss (built), the workdir (usable), "
              "--data_dir and the evaluation weights (files).\nNot checked:\n"
              + "\n".join(f"  {what}: {why}" for what, why in notes))
    print(config_lib.to_flagfile(config, header=header), file=stdout, end="")
    return EXIT_OK


__all__ = ["run", "dry_run", "preflight", "ConfigError", "check_workdir", "check_eval_weights", "build_loss",
           "build_model", "build_dataset", "fit_plan", "loss_params", "networks_kwargs",
           "worker_config", "RUN_FILE", "FLAGS_FILE", "LOCK_FILE", "EXIT_OK",
           "EXIT_NON_FINITE", "EXIT_PREEMPTED"]
