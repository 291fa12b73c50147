"""The loss registry (mmd_keras.losses.registry): names, declared facts, parameter checks, legacy
switches, and the loss lines of the configs (issues 12, 14 and 17)."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import kernels, losses
from mmd_keras.errors import ArgumentError
from references import close, np_expectations, np_mmd2, np_rq

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "configs")
GAN_ARGS = ["gradient_penalty_weight", "activation_penalty_weight", "legacy_gp_axis"]
KERNEL_ARGS = GAN_ARGS + ["kernel", "estimator", "legacy_constant_diagonal"]
# Hand-listed: what the CLI needs per loss.
ACCEPTED = {
    "mmd": KERNEL_ARGS, "smmd": KERNEL_ARGS + ["coefficient", "offset"],
    "swgan": KERNEL_ARGS + ["coefficient", "offset"], "rep_gp": KERNEL_ARGS + ["coefficient"],
    "repulsive": KERNEL_ARGS + ["lam", "bounded", "lower_bound", "upper_bound"],
    "rep_b": KERNEL_ARGS + ["lam", "bounded", "lower_bound", "upper_bound"],
    "mmd_rbf_b": KERNEL_ARGS + ["lam", "bounded", "lower_bound", "upper_bound"],
    "gcmmd": GAN_ARGS + ["kernel", "estimator", "lam"],
    "wgan_gp": GAN_ARGS, "cramer": GAN_ARGS, "hinge": GAN_ARGS, "non_saturating": GAN_ARGS,
    "sobolev": GAN_ARGS + ["rho"],
}
SCALAR_CRITIC = {"swgan", "rep_gp", "wgan_gp", "sobolev", "hinge", "non_saturating"}
TAKES_KERNEL = {"mmd", "smmd", "swgan", "rep_gp", "repulsive", "rep_b", "mmd_rbf_b", "gcmmd"}


def test_registry_declares_the_facts_the_cli_needs():
    assert set(losses.LOSSES) == set(ACCEPTED)
    for name, cls in losses.LOSSES.items():
        facts = losses.describe(name)
        assert sorted(facts["parameters"]) == sorted(ACCEPTED[name]), name
        assert facts["scalar_critic"] == (name in SCALAR_CRITIC), name
        assert facts["takes_kernel"] == (name in TAKES_KERNEL), name
        # The declared parameters are exactly what the object serializes (one source).
        assert sorted(losses.get(name).get_config()) == sorted(cls.parameters), name


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_a_wrong_key_raises_argument_error_listing_the_accepted_keys(name):
    with pytest.raises(ArgumentError) as info:
        losses.get(name, sigma=1.0)
    assert info.value.argument == "sigma" and info.value.owner == "loss"
    for key in ACCEPTED[name]:
        assert key in str(info.value)


# ---- issue 14 item 3: the legacy switches reach the official numbers through losses.get ----------
def test_legacy_constant_diagonal_through_losses_get(rng):
    x, y = rng.normal(size=(6, 3)) * 2, rng.normal(size=(6, 3)) + 1
    alphas = (0.1, 1.0, 10.0)
    rq_dot = lambda a, b: np_rq(a, b, alphas) + a @ b.T  # noqa: E731
    kernel = kernels.get("rq_dot", alphas=alphas)
    loss = losses.get("mmd", kernel=kernel, legacy_constant_diagonal=True)
    critic = lambda images: tf.reshape(images, [tf.shape(images)[0], -1])  # noqa: E731
    out = loss(critic, tf.constant(x, tf.float32), tf.constant(y, tf.float32), seed=[0, 0], mode="generator")
    # Paper 1's code removes Σw = 3 as "the diagonal", not Σw + ‖x_i‖².
    e = np_expectations(rq_dot(x, x), rq_dot(x, y), rq_dot(y, y), "unbiased", diagonal=3.0)
    close(out.generator_loss, e[0] + e[2] - 2 * e[1], rtol=2e-5)
    true = np_mmd2(x, y, "unbiased", kernel=rq_dot)
    assert abs((e[0] + e[2] - 2 * e[1]) - true) > 1e-2  # the switch changes the number
    rep = losses.get("repulsive", kernel=kernel, legacy_constant_diagonal=True)
    out = rep(critic, tf.constant(x, tf.float32), tf.constant(y, tf.float32), seed=[0, 0], mode="critic")
    close(out.critic_loss, e[0] - e[2], rtol=2e-5)
    with pytest.raises(ValueError, match="constant diagonal"):
        losses.get("mmd", kernel=kernels.get("dot"), legacy_constant_diagonal=True)


def _config_loss(path):
    from mmd_keras.app import runner
    from mmd_keras.app import launch

    config, _ = launch.parse(["prog", f"--flagfile={path}"])
    return losses.get(config.loss, **runner.loss_params(config))


# ---- issue 14 item 4: paper 3's configs use its U-statistic (App. A.3, Eq. S4) -------------------
@pytest.mark.parametrize("name", ["cifar10_mmd_rep_b", "stl10", "celeba64_rep_b", "lsun64"])
def test_paper3_configs_use_the_u_statistic(rng, name):
    loss = _config_loss(os.path.join(CONFIG_DIR, f"{name}.cfg"))
    x, y = rng.normal(size=(6, 16)) * 0.3, rng.normal(size=(6, 16)) * 0.3 + 0.1
    critic = lambda images: tf.reshape(images, [tf.shape(images)[0], -1])  # noqa: E731
    out = loss(critic, tf.constant(x, tf.float32), tf.constant(y, tf.float32), seed=[0, 0], mode="generator")
    # Eq. S4: i ≠ j in all three terms, each divided by n(n − 1).
    k = lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / 2)  # noqa: E731
    off = lambda m: (m.sum() - np.trace(m)) / (len(m) * (len(m) - 1))  # noqa: E731
    close(out.generator_loss, off(k(x, x)) + off(k(y, y)) - 2 * off(k(x, y)), rtol=2e-5)


# ---- issue 14 item 3: one config per paper with the official code's switches ---------------------
def test_official_configs_set_the_legacy_switches():
    paths = sorted(glob.glob(os.path.join(CONFIG_DIR, "*_official.cfg")))
    assert [os.path.basename(p) for p in paths] == ["cifar10_mmd_dist_official.cfg",
                                                    "cifar10_mmd_rqstar_gp_official.cfg"]
    rq = _config_loss(paths[1]).get_config()
    assert rq["legacy_constant_diagonal"] and rq["legacy_gp_axis"]
    assert kernels.get(rq["kernel"]).alphas == (0.1, 1.0, 10.0)
    dist = _config_loss(paths[0])
    assert dist.legacy_gp_axis and dist.gradient_penalty_weight == 10.0
    assert (dist.kernel.scale, dist.kernel.eps) == (2.0, 1e-5)

