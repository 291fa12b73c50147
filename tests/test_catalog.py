"""The command line's choices: read from the library's registries (:mod:`mmd_keras.catalog`,
:mod:`mmd_keras.networks`) without TensorFlow, the same as the TensorFlow side's, and every one
builds."""

import pytest

from mmd_keras import catalog
from mmd_keras.app import config as config_lib
from mmd_keras.app.config import RunConfig
from mmd_keras.app.runner import build, parts

# Image size and channels each architecture is exercised with (its smallest paper-like size).
IMAGE_SIZES = {"dcgan_s1": 32, "dcgan_s2": 64, "sngan": 32, "resnet": 64, "dcgan_p1": 32,
               "celeba160": 32, "small": 16}


def test_catalog_is_what_the_tensorflow_registries_hold():
    """One definition: the TF-free tables name exactly what the builders build."""
    from mmd_keras import datasets, losses

    for name, cls in losses.LOSSES.items():
        assert tuple(cls.parameters) == catalog.LOSSES[name], name
    assert tuple(catalog.LOSSES) == tuple(losses.LOSSES)
    assert datasets.DATASETS == tuple(catalog.DATASETS)
    for name, entry in catalog.DATASETS.items():
        assert datasets.dataset_shape(name, 16)[-1] == (entry.channels or 2), name


def test_config_takes_its_choices_from_the_registries():
    from mmd_keras import distribute, kernels, losses, models, networks, rng

    assert config_lib.LOSSES == tuple(losses.LOSSES)
    assert config_lib.KERNELS == tuple(kernels.KERNELS)
    assert config_lib.ARCHITECTURES == tuple(networks.ARCHITECTURES)
    assert config_lib.STRATEGIES == tuple(distribute.STRATEGIES)
    assert config_lib.ACROSS_REPLICAS == tuple(distribute.ACROSS_REPLICAS)
    assert config_lib.CRITIC_SCHEDULES == tuple(models.CRITIC_SCHEDULES)
    assert config_lib.LATENT_DISTRIBUTIONS == tuple(rng.LATENT_DISTRIBUTIONS)
    assert set(config_lib.SN_MODES) - {"default"} == set(networks.SN_MODES) - {"default"}
    assert config_lib.DATASETS == tuple(catalog.DATASETS)


def _image_config(architecture, **changes):
    if architecture == "mlp":
        return RunConfig(architecture="mlp", dataset="ring8", **changes)
    return RunConfig(architecture=architecture, image_size=IMAGE_SIZES[architecture],
                     dataset="cifar10", **changes)


@pytest.mark.parametrize("architecture", config_lib.ARCHITECTURES)
def test_every_architecture_builds_its_networks(architecture):
    assert set(IMAGE_SIZES) | {"mlp"} == set(config_lib.ARCHITECTURES)
    config = _image_config(architecture, critic_output_dim=3)
    generator, critic = parts.build_networks(config)
    assert generator.output_shape[-1] == (2 if architecture == "mlp" else 3)
    assert critic.output_shape[-1] == 3


@pytest.mark.parametrize("sn_mode", config_lib.SN_MODES)
def test_every_sn_mode_builds(sn_mode):
    generator, critic = parts.build_networks(_image_config("dcgan_s1", sn_mode=sn_mode))
    assert critic.output_shape == (None, config_lib.RunConfig().critic_output_dim)


@pytest.mark.parametrize("loss", config_lib.LOSSES)
def test_every_loss_builds(loss):
    from mmd_keras import losses

    dim = losses.LOSSES[loss].required_output_dim or 16
    built = parts.build_loss(RunConfig(loss=loss, critic_output_dim=dim))
    assert built.name == loss
    assert (getattr(built, "kernel", None) is not None) == losses.LOSSES[loss].takes_kernel


@pytest.mark.parametrize("kernel", config_lib.KERNELS)
def test_every_kernel_builds(kernel):
    built = parts.build_loss(RunConfig(loss="mmd", kernel=kernel))
    assert built.kernel is not None


@pytest.mark.parametrize("loss", config_lib.LOSSES)
def test_every_listed_loss_param_is_accepted(loss):
    """Each key `--help` lists for a loss reaches its constructor (with its default value)."""
    import inspect

    from mmd_keras import losses

    cls = losses.LOSSES[loss]
    defaults = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            for p in inspect.signature(init).parameters.values():
                if p.default is not p.empty and p.name not in defaults:
                    defaults[p.name] = p.default
    for key in config_lib.LOSS_PARAMS[loss]:
        if key in ("kernel",):
            continue
        losses.get(loss, **{key: defaults[key]})


@pytest.mark.parametrize("schedule", config_lib.CRITIC_SCHEDULES)
@pytest.mark.parametrize("distribution", config_lib.LATENT_DISTRIBUTIONS)
def test_every_schedule_and_latent_prior_builds_a_model(schedule, distribution):
    steps = 1 if schedule == "joint" else 2
    model = build.build_model(RunConfig(critic_schedule=schedule, critic_steps=steps,
                                        latent_distribution=distribution))
    assert model.latent_distribution == distribution


@pytest.mark.parametrize("mode", config_lib.ACROSS_REPLICAS)
def test_every_across_replicas_mode_builds(mode):
    from mmd_keras import distribute

    assert (distribute.feature_gather_for(mode) is None) == (mode == "block")


@pytest.mark.parametrize("strategy", [s for s in config_lib.STRATEGIES
                                      if s not in ("multi_worker", "tpu")])
def test_local_strategies_build(strategy):
    """multi_worker needs a TF_CONFIG cluster (tests/test_launch.py runs two workers) and tpu a
    TPU (tests/test_cli.py checks the launcher reaches its creation)."""
    assert build.create_strategy(RunConfig(strategy=strategy)).num_replicas_in_sync >= 1
