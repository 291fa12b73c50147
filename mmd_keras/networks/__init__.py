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
``dcgan_p1``    paper 1 DCGAN (critic size 16 or 64)                      16·h    none
``celeba160``   paper 1 CelebA 160: ResNet generator + 5-layer critic     32·h    none
``mlp``         2-D toy data                                              —       none
``small``       tiny conv pair for the offline digits default             4·2^k   none
==============  ========================================================  ======  ===========

Keyword arguments (all optional): ``image_size``, ``channels``, ``latent_dim`` (generator),
``output_dim`` (critic s), ``widths`` (per-arch channel list), ``batch_norm`` (generator: False, True or
"synchronized" for statistics of the global batch across replicas),
``leaky_slope`` (critic), ``data_dim`` (mlp), and the SN settings ``sn_mode``
("none", "pim", "pico", "constraint"), ``learned_gain``, ``pico_gain`` (C^L, default 64),
``power_iterations``, ``constraint_target``. Generators default to ``sn_mode="none"``.
"""

import inspect

from mmd_keras.networks import common, dcgan, mlp, resnet

SN_MODES = common.SN_MODES

# arch -> (generator builder, critic builder, default critic sn_mode)
_BUILDERS = {
    "dcgan_s1": (dcgan.s1_generator, dcgan.s1_critic, "pico"),
    "dcgan_s2": (dcgan.s2_generator, dcgan.s2_critic, "pico"),
    "sngan": (dcgan.sngan_generator, dcgan.sngan_critic, "pim"),
    "resnet": (resnet.resnet_generator, resnet.resnet_critic, "pim"),
    "dcgan_p1": (dcgan.p1_generator, dcgan.p1_critic, "none"),
    "celeba160": (resnet.celeba160_generator, resnet.celeba160_critic, "none"),
    "mlp": (mlp.mlp_generator, mlp.mlp_critic, "none"),
    "small": (dcgan.small_generator, dcgan.small_critic, "none"),
}
ARCHITECTURES = tuple(_BUILDERS)

_INT_ARGS = ("image_size", "channels", "latent_dim", "output_dim", "data_dim")


def _lookup(arch):
    if arch not in _BUILDERS:
        raise ValueError(f"Expected `arch` to be one of {ARCHITECTURES}. Received: `arch={arch!r}`")
    return _BUILDERS[arch]


def _split(arch, role, builder, kwargs, sn_mode, learned_gain, pico_gain, power_iterations,
           constraint_target):
    """Validates the common arguments; returns the builder kwargs with ``sn`` filled in."""
    for arg in _INT_ARGS:
        if arg in kwargs:
            common.check_int(kwargs[arg], arg)
    accepted = set(inspect.signature(builder).parameters) - {"sn"}
    for arg in kwargs:
        if arg not in accepted:
            raise ValueError(
                f"Expected the {role} of arch={arch!r} to take arguments among "
                f"{sorted(accepted)}. Received: `{arg}={kwargs[arg]!r}`"
            )
    if "batch_norm" in kwargs:
        common.check_batch_norm(kwargs["batch_norm"])
    common.check_int(power_iterations, "power_iterations")
    common.LayerFactory(sn_mode, learned_gain, 1, pico_gain, power_iterations, constraint_target)
    sn = dict(sn_mode=sn_mode, learned_gain=learned_gain, pico_gain=pico_gain,
              power_iterations=power_iterations, constraint_target=constraint_target)
    return {**kwargs, "sn": sn}


def build_generator(arch, *, sn_mode="none", learned_gain=False, pico_gain=64.0,
                    power_iterations=1, constraint_target=1.0, **kwargs):
    """Builds the generator of ``arch`` (see the module table); raises ``ValueError`` on bad input.

    Returns:
        ``keras.Model``: ``[b, latent_dim] → [b, image_size, image_size, channels]`` in [-1, 1].
    """
    builder = _lookup(arch)[0]
    return builder(**_split(arch, "generator", builder, kwargs, sn_mode, learned_gain,
                            pico_gain, power_iterations, constraint_target))


def build_critic(arch, *, sn_mode=None, learned_gain=False, pico_gain=64.0, power_iterations=1,
                 constraint_target=1.0, **kwargs):
    """Builds the critic of ``arch``; ``sn_mode=None`` takes the paper's default (module table).

    Returns:
        ``keras.Model``: ``[b, image_size, image_size, channels] → [b, output_dim]`` float32.
    """
    _, builder, default_sn = _lookup(arch)
    sn_mode = default_sn if sn_mode is None else sn_mode
    return builder(**_split(arch, "critic", builder, kwargs, sn_mode, learned_gain,
                            pico_gain, power_iterations, constraint_target))


def default_sn_mode(arch):
    """The paper's critic SN mode for ``arch``."""
    return _lookup(arch)[2]


def validate(arch, image_size=None, **kwargs):
    """Raises ``ValueError`` (naming the argument) if ``arch`` cannot be built with these values.

    Builds nothing: checks the name, the integer arguments, ``sn_mode`` and the image size rule
    of the architecture.
    """
    _lookup(arch)
    for arg, value in {"image_size": image_size, **kwargs}.items():
        if arg in _INT_ARGS and value is not None:
            common.check_int(value, arg)
    if "sn_mode" in kwargs:
        common.LayerFactory(kwargs["sn_mode"], kwargs.get("learned_gain", False))
    if image_size is not None and arch != "mlp":
        _IMAGE_RULES[arch](image_size)


_IMAGE_RULES = {
    "dcgan_s1": lambda s: common.check_image_size(s, 8, "dcgan_s1"),
    "sngan": lambda s: common.check_image_size(s, 8, "sngan"),
    "dcgan_s2": lambda s: common.check_image_size(s, 16, "dcgan_s2"),
    "dcgan_p1": lambda s: common.check_image_size(s, 16, "dcgan_p1"),
    "resnet": lambda s: common.check_image_size(s, 16, "resnet"),
    "celeba160": lambda s: common.check_image_size(s, 16, "celeba160", minimum=32),
    "small": lambda s: common.power_of_two_steps(s, 4, "small"),
}

__all__ = ["ARCHITECTURES", "SN_MODES", "build_critic", "build_generator", "default_sn_mode",
           "validate"]
