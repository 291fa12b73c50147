"""Preflight: every check of a run that writes nothing, and the parts it builds once.

The networks and the loss are built here, once, by the library's own builders: their
validation is the check (no second rule table). A builder's :class:`mmd_keras.errors.ArgumentError`
names its argument and owner; :func:`mmd_keras.app.errors.flag_for` maps it to the flag, so the error names what the
user typed. Everything raises :class:`mmd_keras.app.config.ConfigError` (exit code 2).
"""

import dataclasses
import json
import os

from mmd_keras.app import config as config_lib
from mmd_keras import fileio
from mmd_keras.app.config import ConfigError
from mmd_keras.app import errors
from mmd_keras.app.runner import evaluation as evaluation_lib

RUN_FILE = "run.json"

@dataclasses.dataclass
class Parts:
    """What preflight built: the networks and the loss (reused by the run)."""

    generator: object
    critic: object
    loss: object


# --- paths --------------------------------------------------------------------------------------

def check_directory(flag, path):
    """Raises ConfigError naming ``--<flag>`` when :func:`mmd_keras.fileio.directory_problem`
    finds one (symbolic-link loop, a file in the way, read-only or unwritable)."""
    problem = fileio.directory_problem(path)
    if problem is not None:
        raise ConfigError(flag, f"Expected `--{flag}` to be a writable directory (or "
                          f"creatable); {problem}. Received: `--{flag}={path}`")


def check_workdir(config):
    """Raises ConfigError if the workdir or export folder cannot be used (:func:`check_directory`), or
    the workdir holds a checkpoint written with different
    :data:`mmd_keras.app.config.IDENTITY_FIELDS` (``run.json``). Writes nothing."""
    check_directory("workdir", config.workdir)
    if config.export:
        check_directory("export_dir", config.export_dir)
    saved = read_run_record(config.workdir).get("identity", {})
    for name, value in config_lib.identity(config).items():
        if name in saved and saved[name] != value:
            flag = "ema_decay" if name == "ema_decay_on" else name
            raise ConfigError(
                flag, f"Expected `--{flag}` to match the checkpoint in `--workdir="
                f"{config.workdir}` (written with {name}={saved[name]!r}); use another --workdir "
                f"or the same flags. Received: `{name}={value!r}`")


def read_run_record(workdir):
    """The workdir's ``run.json`` as a dict (``{}`` when there is none); ConfigError naming
    ``--workdir`` when it is not JSON."""
    path = fileio.join(fileio.absolute(workdir), RUN_FILE)
    text = fileio.read_text(path)
    if text is None:
        return {}
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise ConfigError("workdir", f"Expected {path} to be the run record this library "
                          f"writes (JSON); it is not ({error}). Move it away to resume without "
                          f"the identity check. Received: `--workdir={workdir}`") from None
    return record


def check_data_dir(config):
    """ConfigError naming ``--data_dir`` when it is given but is not a directory."""
    if config.data_dir and fileio.is_local(config.data_dir) and not os.path.isdir(
            config.data_dir):  # (a gs:// data_dir is checked by opening the dataset)
        raise ConfigError("data_dir", "Expected `--data_dir` to be an existing directory. "
                          f"Received: `--data_dir={config.data_dir}`")


def check_eval_weights(config):
    """ConfigError naming ``--eval_weights`` when the KID-driven learning rate cannot run
    (plain evaluation without weights is skipped with a message instead)."""
    from mmd_keras.evaluation import weights as weights_lib

    if config.eval_weights and not os.path.isfile(config.eval_weights):
        raise ConfigError("eval_weights", "Expected `--eval_weights` to be an existing .npz "
                          f"file. Received: `--eval_weights={config.eval_weights}`")
    if (evaluation_lib.needs_weights(config) and config.adaptive_lr
            and not evaluation_lib.eval_weights(config)):
        raise ConfigError(
            "eval_weights", f"Expected `--eval_weights` (FID-Inception weights) for "
            f"`--adaptive_lr` on `--dataset={config.dataset}`, or pass --noadaptive_lr. "
            f"{weights_lib.how_to_get_fid_weights()} Received: `--eval_weights=`")


# --- the parts ----------------------------------------------------------------------------------

def networks_kwargs(config):
    """``(generator_kwargs, critic_kwargs)`` of ``mmd_keras.networks`` for ``config``."""
    generator = dict(latent_dim=config.latent_dim)
    critic = dict(output_dim=config.critic_output_dim, learned_gain=config.learned_gain,
                  sn_mode=None if config.sn_mode == "default" else config.sn_mode)
    if config.channels:
        for kwargs in (generator, critic):
            kwargs.update(image_size=config.image_size, channels=config.channels)
    if config.synchronized_bn and config.architecture != "mlp":  # the MLP has no batch norm
        generator["batch_norm"] = "synchronized"
    # Passed only when changed from the flags' defaults: the architectures other than dcgan_p1
    # do not take them (their builders then name the flag).
    defaults = config_lib.RunConfig()
    if config.initialization != defaults.initialization:
        for kwargs in (generator, critic):
            kwargs["initialization"] = config.initialization
    if config.bn_momentum != defaults.bn_momentum:
        generator["bn_momentum"] = config.bn_momentum
    if config.generator_widths:
        generator["widths"] = config.generator_widths
    if config.critic_widths:
        critic["widths"] = config.critic_widths
    return generator, critic


def build_networks(config):
    """``(generator, critic)`` of ``config``; the builders' errors name the flag."""
    from mmd_keras import networks

    generator_kwargs, critic_kwargs = networks_kwargs(config)
    try:
        generator = networks.build_generator(config.architecture, **generator_kwargs)
        critic = networks.build_critic(config.architecture, **critic_kwargs)
    except ValueError as error:
        raise errors.config_error(error, config, "architecture", "that `--architecture="
                                  f"{config.architecture}` can build") from None
    return generator, critic


def loss_params(config):
    """Keyword arguments of ``mmd_keras.losses.get`` for ``config`` (kernel + extra params)."""
    params = config.parsed_loss_params()
    if config.loss in config_lib.KERNEL_LOSSES and "kernel" not in params:
        from mmd_keras import kernels

        kernel_params = config.parsed_kernel_params()
        if config.kernel == "rbf":
            kernel_params.setdefault("sigmas", config.kernel_sigmas)
        elif config.kernel in ("rq", "rq_dot"):
            kernel_params.setdefault("alphas", config.kernel_alphas)
        try:
            params["kernel"] = kernels.get(config.kernel, **kernel_params)
        except ValueError as error:
            flag = errors.flag_for(error, "kernel_params")
            # The kernel's keywords other than its sigmas/alphas come from --kernel_params.
            flag = "kernel_params" if flag in ("loss_params", "kernel") else flag
            raise errors.bad_value(config, flag, f"that `--kernel={config.kernel}` accepts",
                                   error) from None
    return params


def build_loss(config):
    """The GANLoss of ``config``; ConfigError naming the flag of a bad parameter."""
    from mmd_keras import losses

    try:
        loss = losses.get(config.loss, **loss_params(config))
    except ConfigError:
        raise
    except ValueError as error:
        accepted = ", ".join(config_lib.LOSS_PARAMS.get(config.loss, ()))
        raise errors.config_error(error, config, "loss_params", f"that `--loss={config.loss}` "
                                  f"accepts (keys: {accepted})") from None
    required = getattr(loss, "required_output_dim", None)
    if required is not None and required != config.critic_output_dim:
        raise ConfigError("critic_output_dim", f"Expected `--critic_output_dim={required}` for "
                          f"`--loss={config.loss}`. Received: "
                          f"`--critic_output_dim={config.critic_output_dim}`")
    return loss


def check_collapse_recovery(config, loss):
    """ConfigError naming ``--collapse_recovery`` when the loss has no coefficient a recovery
    can raise (:func:`mmd_keras.collapse.regularization_variable`)."""
    if not config.collapse_recovery:
        return
    from mmd_keras import collapse

    try:
        collapse.regularization_variable(loss)
    except ValueError:
        raise ConfigError("collapse_recovery", "Expected `--collapse_recovery` with a loss that has "
                          "an adjustable regularization coefficient (smmd/swgan `coefficient`, or a "
                          "positive `gradient_penalty_weight`, e.g. --loss=mmd or wgan_gp). Received: "
                          f"`--collapse_recovery` with `--loss={config.loss}`") from None


def check_dataset(config):
    """Opens the training stream once; ConfigError naming ``--data_dir``/``--dataset``."""
    from mmd_keras.app.runner import build

    try:
        build.build_dataset(config)
    except ValueError as error:  # DatasetNotAvailableError is a ValueError too.
        flag = "data_dir" if config.dataset in config_lib.FILE_DATASETS else "dataset"
        raise ConfigError(flag, f"Expected `--dataset={config.dataset}` to be readable "
                          f"(`--data_dir={config.data_dir}`). {error}") from None


def preflight(config, check_data=True, open_dataset=True):
    """Every check that needs the library but writes nothing; returns the built :class:`Parts`.

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
    networks = attempt(build_networks, config)
    loss = attempt(build_loss, config)
    if loss is not None:
        attempt(check_collapse_recovery, config, loss)
    if check_data:
        attempt(check_eval_weights, config)
        if open_dataset and not any(p.flag == "data_dir" for p in problems):
            attempt(check_dataset, config)  # (a missing --data_dir would only fail again here)
    if problems:
        raise combine(problems)
    return Parts(*networks, loss)


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
