"""Preflight: every check of a run that writes nothing, and the parts it builds once.

The networks, the loss and the model around them are built here, once, by the library's own
builders (:mod:`.parts`, :func:`.build.build_model`): their validation is the check (no second
rule table), and :mod:`mmd_keras.app.errors` maps a builder's error to the flag the user typed.
Everything raises :class:`mmd_keras.app.config.ConfigError` (exit code 2).
"""

import os

from mmd_keras import collapse, fileio
from mmd_keras.app import config as config_lib
from mmd_keras.app import errors
from mmd_keras.app.config import ConfigError
from mmd_keras.app.runner import build, evaluation, parts, workdir
from mmd_keras.errors import ArgumentError
from mmd_keras.evaluation import weights as weights_lib


# --- paths --------------------------------------------------------------------------------------

def check_directory(flag, path):
    """Raises ConfigError naming ``--<flag>`` when :func:`mmd_keras.fileio.directory_problem`
    finds one (symbolic-link loop, a file in the way, read-only or unwritable)."""
    problem = fileio.directory_problem(path)
    if problem is not None:
        raise ConfigError(flag, f"Expected `--{flag}` to be a writable directory (or "
                          f"creatable); {problem}. Received: `--{flag}={path}`")


def check_workdir(config):
    """Raises ConfigError if the workdir or export folder cannot be used
    (:func:`check_directory`), or the workdir holds a checkpoint written with different
    :data:`mmd_keras.app.config.IDENTITY_FIELDS` (``run.json``). Writes nothing."""
    check_directory("workdir", config.workdir)
    if config.export:
        check_directory("export_dir", config.export_dir)
    saved = workdir.read_run_record(config.workdir).get("identity", {})
    for name, value in config_lib.identity(config).items():
        if name in saved and saved[name] != value:
            flag = "ema_decay" if name == "ema_decay_on" else name
            raise ConfigError(
                flag, f"Expected `--{flag}` to match the checkpoint in `--workdir="
                f"{config.workdir}` (written with {name}={saved[name]!r}); use another --workdir "
                f"or the same flags. Received: `{name}={value!r}`")


def check_data_dir(config):
    """ConfigError naming ``--data_dir`` when it is given but is not a directory."""
    if config.data_dir and fileio.is_local(config.data_dir) and not os.path.isdir(
            config.data_dir):  # (a gs:// data_dir is checked by opening the dataset)
        raise ConfigError("data_dir", "Expected `--data_dir` to be an existing directory. "
                          f"Received: `--data_dir={config.data_dir}`")


def check_eval_weights(config):
    """ConfigError naming ``--eval_weights`` when the KID-driven learning rate cannot run
    (plain evaluation without weights is skipped with a message instead)."""
    if config.eval_weights and not os.path.isfile(config.eval_weights):
        raise ConfigError("eval_weights", "Expected `--eval_weights` to be an existing .npz "
                          f"file. Received: `--eval_weights={config.eval_weights}`")
    if (evaluation.needs_weights(config) and config.adaptive_lr
            and not evaluation.eval_weights(config)):
        raise ConfigError(
            "eval_weights", f"Expected `--eval_weights` (FID-Inception weights) for "
            f"`--adaptive_lr` on `--dataset={config.dataset}`, or pass --noadaptive_lr. "
            f"{weights_lib.how_to_get_fid_weights()} Received: `--eval_weights=`")


# --- the parts ----------------------------------------------------------------------------------

def check_model(config, built):
    """The compiled model around the ``built`` :class:`.parts.Parts`: the model's own rules
    (e.g. the one-output critic of SWGAN, WGAN-GP, hinge, ...) name their flag."""
    try:
        return build.build_model(config, built)
    except ArgumentError as error:
        raise errors.config_error(error, config, "critic_output_dim",
                                  f"that `--loss={config.loss}` trains") from None


def check_collapse_recovery(config, loss):
    """ConfigError naming ``--collapse_recovery`` when the loss has no coefficient a recovery
    can raise (:func:`mmd_keras.collapse.regularization_variable`)."""
    if not config.collapse_recovery:
        return
    try:
        collapse.regularization_variable(loss)
    except ValueError:
        raise ConfigError("collapse_recovery", "Expected `--collapse_recovery` with a loss that has "
                          "an adjustable regularization coefficient (smmd/swgan `coefficient`, or a "
                          "positive `gradient_penalty_weight`, e.g. --loss=mmd or wgan_gp). Received: "
                          f"`--collapse_recovery` with `--loss={config.loss}`") from None


def check_dataset(config):
    """Opens the training stream once; ConfigError naming ``--data_dir``/``--dataset``."""
    try:
        parts.build_dataset(config)
    except ValueError as error:  # DatasetNotAvailableError is a ValueError too.
        flag = "data_dir" if config.dataset in config_lib.FILE_DATASETS else "dataset"
        raise ConfigError(flag, f"Expected `--dataset={config.dataset}` to be readable "
                          f"(`--data_dir={config.data_dir}`). {error}") from None


def preflight(config, check_data=True, open_dataset=True):
    """Every check that needs the library but writes nothing; returns the built
    :class:`.parts.Parts` (networks, loss and compiled model).

    Every check runs even when an earlier one fails, and all problems are raised together
    (:func:`combine`), so a run reports everything to fix at once rather than one problem per
    attempt. Build it inside the run's strategy scope (the parts are reused).

    Args:
        config: the RunConfig.
        check_data: False skips the data directory, the evaluation weights and the dataset
            (checking a config on a machine without either).
        open_dataset: False skips only opening the training stream (``--dry_run``: the
            data directory and the weights files are still checked).

    Raises:
        ConfigError: naming the first problem's flag; with several, the message lists each.
    """
    problems = []

    def attempt(check, *args):
        try:
            return check(*args)
        except ConfigError as error:
            problems.append(error)
            return None

    if check_data:
        attempt(check_data_dir, config)
    attempt(check_workdir, config)
    networks = attempt(parts.build_networks, config)
    loss = attempt(parts.build_loss, config)
    built = None
    if networks is not None and loss is not None:
        built = parts.Parts(*networks, loss)
        built.model = attempt(check_model, config, built)
    if loss is not None:
        attempt(check_collapse_recovery, config, loss)
    if check_data:
        attempt(check_eval_weights, config)
        if open_dataset and not any(p.flag == "data_dir" for p in problems):
            attempt(check_dataset, config)  # (a missing --data_dir would only fail again here)
    if problems:
        raise combine(problems)
    return built


def combine(problems):
    """One ConfigError for ``problems``: the problem itself when alone, else a numbered list
    naming each flag (``.flag`` is the first one's; ``.problems`` holds them all)."""
    if len(problems) == 1:
        return problems[0]
    lines = "\n".join(f"  {i}. --{p.flag}: {p}" for i, p in enumerate(problems, start=1))
    error = ConfigError(problems[0].flag, f"{len(problems)} problems, found before anything "
                        f"was written; fix them all, then rerun:\n{lines}")
    error.problems = list(problems)
    return error
