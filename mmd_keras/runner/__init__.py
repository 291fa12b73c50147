"""Runs a :class:`mmd_keras.config.RunConfig`: the body of ``mmd-keras`` / ``python -m mmd_keras.launch``.

:func:`run` is the story of a run, one named step per line: strategy → preflight (checks and
the networks and loss, built once, writing nothing) → lock → build → restore → fit → report.
Nothing is written before preflight has passed, and a failure before ``fit`` removes what the
lock created. :func:`dry_run` is preflight without data, weights, strategy or lock.

Modules: :mod:`~mmd_keras.runner.checks` (preflight), :mod:`~mmd_keras.runner.workdir` (lock,
``flags.cfg``/``run.json``), :mod:`~mmd_keras.runner.build` (strategy, data, model,
checkpoints, callbacks), :mod:`~mmd_keras.runner.evaluation` (the per-dataset evaluation plan)
and, here, the story and what the run prints at the end.
"""

import contextlib
import dataclasses
import os
import sys
import time

from mmd_keras import config as config_lib
from mmd_keras.config import ConfigError
from mmd_keras.runner import build, checks, evaluation, workdir
from mmd_keras.runner.build import build_dataset, build_model, fit_plan
from mmd_keras.runner.checks import (RUN_FILE, build_loss, check_eval_weights, check_workdir,
                                     loss_params, networks_kwargs, preflight)
from mmd_keras.runner.workdir import FLAGS_FILE, LOCK_FILE, WorkdirLock, worker_config

EXIT_OK, EXIT_NON_FINITE = 0, 1


@dataclasses.dataclass
class Run:
    """The built pieces of a run (the state the story's steps pass along)."""

    config: object
    strategy: object
    paths: dict
    model: object = None
    writer: object = None
    evaluation: object = None
    kid_floor: object = None
    checkpoints: object = None
    callbacks: list = None
    guard: object = None
    samples: object = None
    restored: str = None
    start_step: int = 0
    elapsed: float = 0.0


def run(config, argv=None, print_fn=print, strategy=None):
    """Trains (or resumes) the run described by ``config``; returns the exit code.

    Raises:
        ConfigError: before anything is written (bad input, busy or foreign workdir).
    """
    config = worker_config(config)
    strategy = strategy or build.create_strategy(config)
    build.set_globals(config)
    with strategy.scope():
        parts = preflight(config)
    lock = WorkdirLock(config.workdir).acquire()
    try:
        try:
            state = build_run(config, strategy, parts, print_fn)
            restore_run(state)
        except BaseException:  # e.g. a foreign checkpoint: leave no lock file behind
            lock.release(remove_if_created=True)
            raise
        start_run(state, argv, print_fn)
        fit_run(state)
        return final_report(state, print_fn)
    finally:
        lock.release()


def _paths(config):
    root = os.path.abspath(config.workdir)
    paths = {name: os.path.join(root, name) for name in ("checkpoints", "samples", "tensorboard")}
    paths.update(workdir=root, saved_models=os.path.abspath(config.export_dir))
    return paths


def build_run(config, strategy, parts, print_fn):
    """Model, TensorBoard writer, evaluation, checkpoints and callbacks (in the strategy scope)."""
    import tensorflow as tf

    state = Run(config, strategy, _paths(config))
    with strategy.scope():
        state.model = build_model(config, parts)
        state.writer = tf.summary.create_file_writer(state.paths["tensorboard"])
        state.evaluation, state.kid_floor = evaluation.build_evaluation(
            config, state.writer, None, print_fn, state.model)
        state.checkpoints = build.build_checkpoints(config, state.paths["checkpoints"],
                                                    state.model, state.evaluation)
    state.callbacks, state.guard, state.samples = build.build_callbacks(
        config, state.model, state.checkpoints, state.paths, state.writer, state.evaluation,
        print_fn)
    return state


def restore_run(state):
    """Restores the latest checkpoint (ConfigError when it belongs to another run)."""
    from mmd_keras import callbacks as cb

    with state.strategy.scope():
        state.restored = build.restore(state.checkpoints, state.config)
    state.start_step = cb.current_step(state.model)


def start_run(state, argv, print_fn):
    """Writes ``flags.cfg`` and ``run.json`` and says what will train."""
    config, replicas = state.config, state.strategy.num_replicas_in_sync
    os.makedirs(state.paths["samples"], exist_ok=True)
    flags_path = workdir.write_run_files(config, argv, replicas)
    print_fn(f"Run directory: {state.paths['workdir']}")
    print_fn(f"  resolved flags:  {flags_path}")
    if state.restored:
        print_fn(f"Resuming from {state.restored} at generator step {state.start_step}.")
    print_fn(f"Global batch: {config.batch_size * replicas} ({config.batch_size} per replica x "
             f"{replicas} replica(s)); training generator steps {state.start_step} -> "
             f"{config.steps}.")


def fit_run(state):
    """``model.fit`` over the :func:`fit_plan` (a partial first epoch when resuming)."""
    config, replicas = state.config, state.strategy.num_replicas_in_sync
    verbose = 1 if build.console_is_terminal() else 0
    started = time.time()
    for initial_epoch, epochs, steps_per_epoch, first_step in fit_plan(
            state.start_step, config.steps, config.steps_per_epoch):
        state.model.fit(build_dataset(config, first_step, replicas=replicas),
                        initial_epoch=initial_epoch, epochs=epochs,
                        steps_per_epoch=steps_per_epoch, callbacks=state.callbacks,
                        shuffle=False, verbose=verbose)
        if state.guard.failed:
            break
    state.writer.flush()
    state.elapsed = time.time() - started


# --- the end of a run ----------------------------------------------------------------------------
def final_report(state, print_fn):
    """Prints the outcome and every output location, exports the generator; the exit code."""
    from mmd_keras import callbacks as cb

    config = state.config
    if state.guard.failed:
        print_fn(f"error: {state.guard.message}")
        return EXIT_NON_FINITE
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
    config = state.config
    export_dir = os.path.join(state.paths["saved_models"], config.name)
    if config.export and state.start_step >= config.steps and os.path.isdir(export_dir):
        print_fn(f"  SavedModel:      already exported under {export_dir}")
    elif config.export:
        from mmd_keras import export

        path = export.export_generator(state.model.sampling_generator,
                                       state.paths["saved_models"], config.name,
                                       latent_dim=config.latent_dim,
                                       latent_distribution=config.latent_distribution)
        print_fn(f"  SavedModel:      {path}  (saved_model_cli show --dir {path} --all)")


# --- the dry run ---------------------------------------------------------------------------------

@contextlib.contextmanager
def _dtype_policy(name):
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def unchecked(config):
    """``[(what, why)]`` a dry run cannot check offline (data, weights, strategy)."""
    notes = []
    if config.data_dir and not os.path.isdir(config.data_dir):
        notes.append(("data", f"--data_dir={config.data_dir} does not exist here; a real run "
                      "stops with an error naming --data_dir"))
    else:
        where = f"in {config.data_dir}" if config.data_dir else "(TFDS default or package)"
        notes.append(("data", f"--dataset={config.dataset} {where} is not opened by --dry_run "
                      "(offline, no download); a real run opens it first"))
    if evaluation.needs_weights(config):
        if not config.eval_weights:
            why = ("a real run stops: --adaptive_lr needs them" if config.adaptive_lr
                   else "a real run skips KID/FID")
            notes.append(("evaluation weights", f"--eval_weights not given; {why}"))
        elif not os.path.isfile(config.eval_weights):
            notes.append(("evaluation weights", f"--eval_weights={config.eval_weights} does not "
                          "exist here; a real run stops with an error naming --eval_weights"))
    if config.strategy not in ("default", "one_device"):
        notes.append(("strategy", f"--strategy={config.strategy} is not created by --dry_run "
                      "(it needs the devices/cluster); a real run creates it first"))
    return notes


def dry_run(config, stdout=None):
    """Checks ``config`` offline (networks and loss built once, workdir readable), prints the
    resolved flags and what could not be checked; writes nothing. Returns 0."""
    stdout = stdout or sys.stdout
    config = worker_config(config)
    with _dtype_policy(config.mixed_precision):
        preflight(config, check_data=False)
    notes = unchecked(config)
    header = ("Resolved configuration (--dry_run: nothing written).\nChecked: flag values and "
              "combinations, the networks and the loss (built), the workdir (usable).\nNot "
              "checked:\n" + "\n".join(f"  {what}: {why}" for what, why in notes))
    print(config_lib.to_flagfile(config, header=header), file=stdout, end="")
    return EXIT_OK


__all__ = ["run", "dry_run", "preflight", "ConfigError", "check_workdir", "check_eval_weights", "build_loss",
           "build_model", "build_dataset", "fit_plan", "loss_params", "networks_kwargs",
           "worker_config", "WorkdirLock", "RUN_FILE", "FLAGS_FILE", "LOCK_FILE", "EXIT_OK",
           "EXIT_NON_FINITE"]
