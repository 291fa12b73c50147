"""Generators and critics of the three papers, built by name.

``build_generator(arch, **kw)`` / ``build_critic(arch, **kw)`` return functional ``keras.Model``s:
generators map latents ``[b, latent_dim]`` to images ``[b, H, W, C]`` in [-1, 1] (tanh; ``"mlp"``
gives points ``[b, data_dim]``), critics map images to features ``[b, output_dim]`` (float32).

Architectures (``ARCHITECTURES``):

==============  ========================================================  ======  ===========
arch            source                                                    sizes   critic SN
==============  ========================================================  ======  ===========
``dcgan_s1``    paper 3 Table S1 (CIFAR 32, STL 48)                       8·h     pico
``dcgan_s2``    paper 3 Table S2 (CelebA/LSUN 64)                         16·h    pico
``sngan``       paper 2 CIFAR CNN (Miyato et al. 2018 Table 3)            8·h     pim
``resnet``      paper 2 SN-ResNet (ImageNet 64)                           16·h    pim
``dcgan_p1``    paper 1 DCGAN (critic size 16 or 64; MNIST 28)            any     none
``celeba160``   paper 1 CelebA 160: ResNet generator + 5-layer critic     32·h    none
``mlp``         2-D toy data                                              —       none
``small``       tiny conv pair for the offline digits default             4·2^k   none
==============  ========================================================  ======  ===========

Sizes: ``8·h`` = multiples of 8 (h = the first feature map's side), ``any`` = every size, with
the spatial sizes of paper 1's code (``dcgan.conv_sizes``: ⌈n/2⌉ per stride-2 layer).

Keyword arguments (all optional): ``image_size``, ``channels``, ``latent_dim`` (generator),
``output_dim`` (critic s), ``widths`` (per-arch channel list), ``batch_norm`` (generator: False, True or
"synchronized" for statistics of the global batch across replicas),
``leaky_slope`` (critic), ``data_dim`` (mlp), ``name``, and the SN settings ``sn_mode``
(``SN_MODES``: "default", "none", "pim", "pico", "constraint"), ``learned_gain``, ``pico_gain``
(C^L, default 64), ``power_iterations``, ``constraint_target``. ``sn_mode="default"`` is the
paper's: the table's column for critics, "none" for generators.

Every bad argument raises :class:`mmd_keras.errors.ArgumentError` (a ``ValueError``) whose
``argument`` is the keyword at fault and ``owner`` is ``"generator"`` or ``"critic"``. The
builders' checks are the only rules: a value is valid exactly when the network builds.

This module is TF-free on import (the registries ``ARCHITECTURES`` and ``SN_MODES`` can be read
without TensorFlow); a builder module is imported on the first build.
"""

import collections
import importlib
import inspect

from mmd_keras.errors import ArgumentError
from mmd_keras.networks import checks
from mmd_keras.networks.checks import SN_MODES

#: One architecture: its builders (functions of ``mmd_keras.networks.<module>``) and the
#: paper's SN mode of its critic (``sn_mode="default"``).
Architecture = collections.namedtuple("Architecture", "module generator critic critic_sn_mode")

#: The single source of the architecture names and of each critic's default SN mode.
ARCHITECTURES = {
    "dcgan_s1": Architecture("dcgan", "s1_generator", "s1_critic", "pico"),
    "dcgan_s2": Architecture("dcgan", "s2_generator", "s2_critic", "pico"),
    "sngan": Architecture("dcgan", "sngan_generator", "sngan_critic", "pim"),
    "resnet": Architecture("resnet", "resnet_generator", "resnet_critic", "pim"),
    "dcgan_p1": Architecture("dcgan", "p1_generator", "p1_critic", "none"),
    "celeba160": Architecture("resnet", "celeba160_generator", "celeba160_critic", "none"),
    "mlp": Architecture("mlp", "mlp_generator", "mlp_critic", "none"),
    "small": Architecture("dcgan", "small_generator", "small_critic", "none"),
}

_SN_ARGS = ("sn_mode", "learned_gain", "pico_gain", "power_iterations", "constraint_target")
_INT_ARGS = ("image_size", "channels", "latent_dim", "output_dim", "data_dim")


def _architecture(arch, owner):
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise ArgumentError("arch", f"Expected `arch` to be one of {tuple(ARCHITECTURES)}. "
                                    f"Received: `arch={arch!r}`", owner=owner)
    return ARCHITECTURES[arch]


def _builder(arch, role):
    entry = _architecture(arch, role)
    module = importlib.import_module(f"mmd_keras.networks.{entry.module}")
    return getattr(module, entry.generator if role == "generator" else entry.critic)


def _accepted(builder):
    return (set(inspect.signature(builder).parameters) - {"sn"}) | set(_SN_ARGS)


def _build(arch, role, sn, kwargs):
    """Checks every argument of the ``role`` network of ``arch`` and builds it, once."""
    builder = _builder(arch, role)
    try:
        accepted = _accepted(builder)
        for arg, value in kwargs.items():
            if arg not in accepted:
                raise ArgumentError(arg, f"Expected the {role} of `arch={arch!r}` to take "
                                         f"arguments among {sorted(accepted)}. "
                                         f"Received: `{arg}={value!r}`")
        kwargs = dict(kwargs)
        for arg in _INT_ARGS:
            if arg in kwargs:
                kwargs[arg] = checks.check_int(kwargs[arg], arg)
        if "batch_norm" in kwargs:
            checks.check_batch_norm(kwargs["batch_norm"])
        if "leaky_slope" in kwargs:
            kwargs["leaky_slope"] = checks.check_number(kwargs["leaky_slope"], "leaky_slope")
        if "name" in kwargs:
            checks.check_name(kwargs["name"])
        if "initialization" in kwargs:
            checks.check_initialization(kwargs["initialization"])
        if "bn_momentum" in kwargs:
            kwargs["bn_momentum"] = checks.check_momentum(kwargs["bn_momentum"])
        if sn["sn_mode"] not in SN_MODES:
            raise ArgumentError("sn_mode", f"Expected `sn_mode` to be one of {SN_MODES}. "
                                           f"Received: `sn_mode={sn['sn_mode']!r}`")
        if sn["sn_mode"] == "default":
            sn = {**sn, "sn_mode": _architecture(arch, role).critic_sn_mode
                  if role == "critic" else "none"}
        return builder(**kwargs, sn=checks.check_sn(**sn))
    except ArgumentError as error:
        error.owner = error.owner or role
        raise


def build_generator(arch, *, sn_mode="default", learned_gain=False, pico_gain=64.0,
                    power_iterations=1, constraint_target=1.0, **kwargs):
    """Builds the generator of ``arch`` (see the module table).

    Returns:
        ``keras.Model``: ``[b, latent_dim] → [b, image_size, image_size, channels]`` in [-1, 1].

    Raises:
        ArgumentError: (``owner="generator"``) naming the bad argument.
    """
    sn = dict(sn_mode=sn_mode, learned_gain=learned_gain, pico_gain=pico_gain,
              power_iterations=power_iterations, constraint_target=constraint_target)
    return _build(arch, "generator", sn, kwargs)


def build_critic(arch, *, sn_mode="default", learned_gain=False, pico_gain=64.0,
                 power_iterations=1, constraint_target=1.0, **kwargs):
    """Builds the critic of ``arch``; ``sn_mode="default"`` (or None) is the paper's (module table).

    Returns:
        ``keras.Model``: ``[b, image_size, image_size, channels] → [b, output_dim]`` float32.

    Raises:
        ArgumentError: (``owner="critic"``) naming the bad argument.
    """
    sn = dict(sn_mode="default" if sn_mode is None else sn_mode, learned_gain=learned_gain,
              pico_gain=pico_gain, power_iterations=power_iterations,
              constraint_target=constraint_target)
    return _build(arch, "critic", sn, kwargs)


def default_sn_mode(arch):
    """The paper's critic SN mode for ``arch`` (``ARCHITECTURES[arch].critic_sn_mode``)."""
    return _architecture(arch, "critic").critic_sn_mode


__all__ = ["ARCHITECTURES", "Architecture", "SN_MODES", "build_critic", "build_generator",
           "default_sn_mode"]
