"""The parts of a run, each built from the RunConfig by the library's own builder: the networks,
the loss and the data stream. The leaf of the runner: preflight (:mod:`.checks`), the build
(:mod:`.build`) and the evaluation plan (:mod:`.evaluation`) all build their parts here.

A builder's validation is the check (no second rule table): its
:class:`mmd_keras.errors.ArgumentError` names the argument, and :mod:`mmd_keras.app.errors` turns
it into a ConfigError naming the flag the user typed.
"""

import dataclasses

from mmd_keras import datasets, kernels, losses, models, networks
from mmd_keras.app import config as config_lib
from mmd_keras.app import errors


@dataclasses.dataclass
class Parts:
    """What preflight built (reused by the run): the networks, the loss and the compiled model
    around them (None until :func:`mmd_keras.app.runner.checks.preflight` builds it)."""

    generator: object
    critic: object
    loss: object
    model: object = None


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
    if losses.LOSSES[config.loss].takes_kernel and "kernel" not in params:
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
    """The GANLoss of ``config``; ConfigError naming the flag of a bad parameter (an unknown
    ``--loss_params`` key lists the keys the loss accepts)."""
    params = loss_params(config)  # its ConfigError names a kernel flag
    try:
        return losses.get(config.loss, **params)
    except ValueError as error:
        accepted = ", ".join(config_lib.LOSS_PARAMS.get(config.loss, ()))
        raise errors.config_error(error, config, "loss_params", f"that `--loss={config.loss}` "
                                  f"accepts (keys: {accepted})") from None


def build_dataset(config, start_step=0, split=None, replicas=1, training=False):
    """The stream of global batches (``--batch_size`` per replica x ``replicas``; Keras splits
    each across the replicas); with ``--deterministic`` a resumed run skips the consumed steps,
    otherwise the shuffle is reseeded by the start step (no replay, no skipping).

    ``training=True`` with ``--fresh_real_batches``: one element per generator step holding a
    new batch for every critic step and the generator step (`models.real_batches_per_step`).
    """
    deterministic = config.deterministic
    batches_per_step = 1
    if training and config.fresh_real_batches:
        batches_per_step = models.real_batches_per_step(config.critic_schedule, config.critic_steps)
    options = ({"channels": config.channels} if config.dataset in config_lib.CHANNEL_CHOICE_DATASETS
               else {})
    return datasets.build_dataset(
        config.dataset, split=split, image_size=config.image_size if config.channels else None,
        batch_size=config.batch_size * replicas, data_dir=config.data_dir or None,
        seed=config.seed if deterministic else config.seed + start_step,
        deterministic=deterministic, start_batch=start_step if deterministic else 0,
        batches_per_step=batches_per_step, **options)


__all__ = ["Parts", "networks_kwargs", "build_networks", "loss_params", "build_loss",
           "build_dataset"]
