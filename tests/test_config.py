"""RunConfig: defaults = configs/digits.cfg, validation messages, flagfile round trip, configs."""

import dataclasses
import glob
import os

import pytest

from mmd_keras.app import config as config_lib
from mmd_keras.app import launch, runner
from mmd_keras.app.config import ConfigError, RunConfig

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "configs")
PAPER_CONFIGS = ("cifar10_mmd_rep_b", "cifar10_sn_smmd", "cifar10_mmd_rqstar_gp", "stl10",
                 "celeba64_rep_b", "celeba160_smmd", "lsun64", "imagenet64",
                 "mnist_mmd_rqstar", "digits", "smoke", "cifar10_mmd_rqstar_gp_official",
                 "cifar10_mmd_dist_official")


def _config_path(name):
    return os.path.join(CONFIG_DIR, f"{name}.cfg")


def test_defaults_are_the_digits_flagfile():
    from_file, _ = launch.parse(["prog", f"--flagfile={_config_path('digits')}"])
    assert from_file == RunConfig()
    no_flags, dry_run = launch.parse(["prog"])
    assert no_flags == RunConfig() and dry_run is False


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_every_config_parses_builds_and_has_a_header(name):
    path = _config_path(name)
    with open(path) as f:
        text = f.read()
    header = text.split("\n\n")[0]
    for word in ("Command:", "Hardware:"):
        assert word in header, f"{name}.cfg header lacks {word!r}"
    assert f"--flagfile=configs/{name}.cfg" in header
    config, _ = launch.parse(["prog", f"--flagfile={path}"])
    # Networks can make the image size and the loss accepts its parameters (no data needed).
    runner.preflight(config, check_data=False)


def test_every_config_file_is_listed():
    names = {os.path.basename(p)[:-4] for p in glob.glob(os.path.join(CONFIG_DIR, "*.cfg"))}
    assert names == set(PAPER_CONFIGS)


def test_paper_settings_of_configs():
    rep_b, _ = launch.parse(["p", f"--flagfile={_config_path('cifar10_mmd_rep_b')}"])
    assert (rep_b.loss, rep_b.architecture, rep_b.critic_schedule) == ("rep_b", "dcgan_s1", "joint")
    assert (rep_b.adam_beta1, rep_b.adam_beta2, rep_b.critic_lr, rep_b.generator_lr) == (
        0.5, 0.999, 5e-4, 2e-4)
    smmd, _ = launch.parse(["p", f"--flagfile={_config_path('imagenet64')}"])
    assert (smmd.loss, smmd.critic_output_dim, smmd.strategy, smmd.mmd_across_replicas) == (
        "smmd", 1, "mirrored", "block")
    assert (smmd.adam_beta2, smmd.generator_lr, smmd.critic_schedule) == (0.9, 2e-4, "paper2")


def test_flagfile_round_trip(tmp_path):
    config = RunConfig(workdir=str(tmp_path / "w"), loss="smmd", critic_output_dim=1,
                       kernel_sigmas=(0.5, 1.0), loss_params=("coefficient=5.0",),
                       generator_widths=(8,), deterministic=True, ema_decay=0.999)
    path = tmp_path / "flags.cfg"
    path.write_text(config_lib.to_flagfile(config, header="a header\nline two"))
    text = path.read_text()
    assert text.startswith("# a header\n# line two\n")
    assert "--deterministic=true" in text and "--kernel_sigmas=0.5,1.0" in text
    parsed, _ = launch.parse(["prog", f"--flagfile={path}"])
    assert parsed == config


def test_loss_params_are_typed():
    config = RunConfig(loss_params=("lam=0.5", "bounded=true", "estimator=u_statistic",
                                    "upper_bound=3"))
    assert config.parsed_loss_params() == {"lam": 0.5, "bounded": True,
                                           "estimator": "u_statistic", "upper_bound": 3}


@pytest.mark.parametrize("changes, flag, words", [
    (dict(loss="mmd2"), "loss", ["repulsive", "smmd"]),
    (dict(kernel="gauss"), "kernel", ["rbf"]),
    (dict(batch_size=1), "batch_size", [">= 2"]),
    (dict(steps=0), "steps", [">= 1"]),
    (dict(adam_beta2=1.0), "adam_beta2", ["[0.0, 1.0)"]),
    (dict(generator_lr=float("nan")), "generator_lr", ["finite"]),
    (dict(kernel_sigmas=()), "kernel_sigmas", ["positive"]),
    (dict(dataset="ring8"), "architecture", ["mlp"]),
    (dict(critic_steps=5), "critic_steps", ["joint"]),
    (dict(steps=10, steps_per_epoch=20), "steps_per_epoch", ["<= `--steps=10`"]),
    (dict(loss_params=("lam",)), "loss_params", ["key=value"]),
    (dict(run_name="a/b"), "run_name", ["'/'"]),
    (dict(data_dir="/data"), "data_dir", ["installed package"]),
    # Steps and seeds live in int64 variables (issue 18 item 10).
    (dict(steps=2**63), "steps", ["2**63-1"]),
    (dict(seed=2**64), "seed", ["int64"]),
    (dict(steps_per_execution=7), "steps", ["multiple of `--steps_per_execution=7`"]),
    (dict(steps_per_execution=0), "steps_per_execution", [">= 1"]),
    # XLA cannot compile one step over several mirrored devices (tests/test_launch.py).
    (dict(strategy="mirrored", jit_compile=True), "jit_compile", ["`--strategy=mirrored`", "tpu"]),
    (dict(strategy="multi_worker", jit_compile=True), "jit_compile", ["`--strategy=multi_worker`"]),
    # Keras's multi-step loop fails under mirrored replicas (keras-team/keras#19246;
    # tests/test_distribute.py runs it).
    (dict(strategy="mirrored", steps_per_execution=2, steps=4, steps_per_epoch=4,
          checkpoint_every=2, sample_every=2, log_every=2, eval_every=2), "steps_per_execution",
     ["`--strategy=mirrored`", "#19246", "tpu"]),
    (dict(strategy="multi_worker", steps_per_execution=2, steps=4, steps_per_epoch=4,
          checkpoint_every=2, sample_every=2, log_every=2, eval_every=2), "steps_per_execution",
     ["`--strategy=multi_worker`"]),
    (dict(image_channels=2), "image_channels", ["[0, 1, 3]"]),
    (dict(image_channels=True), "image_channels", ["[0, 3]"]),
    (dict(image_channels=3), "image_channels", ["fixed: 1", "image_folder"]),
])
def test_validation_errors_name_the_flag(changes, flag, words):
    with pytest.raises(ConfigError) as info:
        RunConfig(**changes)
    message = str(info.value)
    assert info.value.flag == flag
    assert f"`--{flag}" in message and "Received:" in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("changes, flag, words", [
    # One rule, one owner: the model refuses a loss of a one-output critic with more outputs.
    (dict(loss="hinge", critic_output_dim=4), "critic_output_dim",
     ["`--critic_output_dim=4`", "output dimension 1"]),
    # A wrong key lists the keys that loss accepts (issue 12 item 2): the loss's own check.
    (dict(loss_params=("gp_weight=10",)), "loss_params", ["'lam'", "'lower_bound'", "gp_weight"]),
    (dict(loss="smmd", critic_output_dim=1, loss_params=("lam=1",)), "loss_params",
     ["'coefficient'"]),
])
def test_builder_errors_name_the_flag_through_preflight(tmp_path, changes, flag, words):
    """The networks', loss's and model's own checks, mapped to the flag by the application."""
    config = RunConfig(workdir=str(tmp_path / "run"), **changes)  # the flags alone are fine
    with pytest.raises(ConfigError) as info:
        runner.preflight(config, check_data=False)
    message = str(info.value)
    assert info.value.flag == flag
    assert f"`--{flag}" in message and "Received:" in message
    for word in words:
        assert word in message
    assert not (tmp_path / "run").exists()  # nothing written


def test_paper2_schedule_keeps_several_steps_per_call_over_mirrored_replicas():
    """Paper 2's schedule runs the model's own multi-step loop under mirrored replicas (tested
    in tests/test_distribute.py), so only the other schedules are refused there."""
    spread = dict(steps=4, steps_per_epoch=4, checkpoint_every=2, sample_every=2, log_every=2,
                  eval_every=2, steps_per_execution=2)
    config = RunConfig(strategy="mirrored", critic_schedule="paper2", **spread)
    assert config.steps_per_execution == 2
    with pytest.raises(ConfigError, match="critic_schedule=fixed"):
        RunConfig(strategy="mirrored", critic_schedule="fixed", loss="mmd", **spread)


def test_config_is_frozen_and_replace_validates():
    config = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 5
    assert config.replace(steps=100, steps_per_epoch=50).steps == 100
    with pytest.raises(ConfigError):
        config.replace(batch_size=0)


def test_identity_check_refuses_another_architecture(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / runner.RUN_FILE).write_text(
        '{"identity": {"architecture": "dcgan_s1", "image_size": 16}}')
    with pytest.raises(ConfigError) as info:
        runner.check_workdir(RunConfig(workdir=str(workdir)))
    assert info.value.flag == "architecture" and "dcgan_s1" in str(info.value)
    # The same identity passes.
    (workdir / runner.RUN_FILE).write_text(
        '{"identity": {"architecture": "small", "image_size": 16, "critic_widths": [8]}}')
    runner.check_workdir(RunConfig(workdir=str(workdir), critic_widths=(8,)))


def test_image_channels_choose_the_image_folder_networks_and_identity():
    folder = dict(dataset="image_folder", data_dir="/data")
    assert [RunConfig(**folder, image_channels=c).channels for c in (0, 1, 3)] == [3, 1, 3]
    assert RunConfig(image_channels=1).channels == 1  # digits: its own value is accepted
    # 0 and the dataset's own value build the same networks: one identity.
    identity = config_lib.identity
    assert identity(RunConfig(**folder)) == identity(RunConfig(**folder, image_channels=3))
    assert identity(RunConfig(**folder))["image_channels"] == 3
    generator_kwargs, critic_kwargs = runner.networks_kwargs(
        RunConfig(**folder, image_channels=1))
    assert generator_kwargs["channels"] == critic_kwargs["channels"] == 1


def test_synchronized_bn_flag_reaches_the_generator():
    config, _ = launch.parse(["prog", "--synchronized_bn"])
    generator_kwargs, critic_kwargs = runner.networks_kwargs(config)
    assert generator_kwargs["batch_norm"] == "synchronized" and "batch_norm" not in critic_kwargs
    default, _ = launch.parse(["prog"])
    assert "batch_norm" not in runner.networks_kwargs(default)[0]
    mlp, _ = launch.parse(["prog", "--synchronized_bn", "--architecture=mlp", "--dataset=ring8"])
    assert "batch_norm" not in runner.networks_kwargs(mlp)[0]  # the MLP has no batch norm


def test_multi_worker_processes_get_their_own_workdir():
    base, _ = launch.parse(["prog", "--strategy=multi_worker", "--workdir=/tmp/mw"])
    cluster = '"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}'
    chief = runner.worker_config(base, '{%s, "task": {"type": "worker", "index": 0}}' % cluster)
    assert chief == base
    other = runner.worker_config(base, '{%s, "task": {"type": "worker", "index": 1}}' % cluster)
    assert other.workdir == "/tmp/mw/.worker_1" and other.export is False
    with_chief = '{"cluster": {"chief": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 0}}'
    assert runner.worker_config(base, with_chief).workdir == "/tmp/mw/.worker_0"
    single, _ = launch.parse(["prog", "--workdir=/tmp/mw"])
    assert runner.worker_config(single, '{%s, "task": {"type": "worker", "index": 1}}' % cluster) == single
