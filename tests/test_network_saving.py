"""Every network the library builds round-trips through a `.keras` file in safe mode.

Keras's own ``save_model``/``load_model(safe_mode=True)`` (no ``Lambda``, no pickled code): the
reloaded model has bitwise the same variables (kernels, biases, learned gains, SN vectors, BN
moving statistics) and the same outputs, in inference and in a training call (which advances
the power iteration and the BN statistics identically).
"""

import inspect

import keras
import numpy as np
import pytest

from mmd_keras import layers, networks


# Small image sizes (keep the cases fast); dcgan_p1 at 28 px has cropping layers.
SMALLEST = {"dcgan_s1": 8, "dcgan_s2": 16, "sngan": 8, "resnet": 16, "dcgan_p1": 28,
            "celeba160": 32, "small": 8, "mlp": None}


def _tiny(arch, role):
    default = inspect.signature(networks._builder(arch, role)).parameters["widths"].default
    kwargs = {"widths": (3,) * len(default)}
    if SMALLEST[arch]:
        kwargs["image_size"] = SMALLEST[arch]
    return kwargs


def _inputs(model, seed):
    shape = (2,) + tuple(model.input_shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# Per architecture, every custom layer and state in its networks: SNConv2D/SNDense (critics)
# and SNConv2DTranspose (generators) under PIM (sn_u) and PICO (sn_x/sn_y), the learned gain, the
# projection constraint, BN and synchronized BN. "none" builds the same graph from plain Keras
# layers (checked once per role).
CASES = [(arch, "critic", dict(sn_mode="pim")) for arch in networks.ARCHITECTURES]
CASES += [(arch, "critic", dict(sn_mode="pico", learned_gain=True))
          for arch in networks.ARCHITECTURES]
CASES += [(arch, "critic", dict(sn_mode="constraint")) for arch in networks.ARCHITECTURES]
CASES += [(arch, "generator", dict(sn_mode="pim", learned_gain=True, batch_norm="synchronized"))
          for arch in networks.ARCHITECTURES]
CASES += [(arch, "generator", dict(sn_mode="pico", batch_norm=True))
          for arch in networks.ARCHITECTURES]
CASES += [("small", "critic", dict(sn_mode="none")),
          ("resnet", "generator", dict(sn_mode="none", batch_norm=True)),
          ("small", "generator", dict(sn_mode="constraint", batch_norm=False))]


def _by_path(model):
    return {v.path: np.asarray(v) for v in model.variables}


@pytest.mark.parametrize("arch,role,kwargs", CASES,
                         ids=[f"{a}-{r}-" + "-".join(f"{v}" for v in k.values()) for a, r, k in CASES])
def test_network_round_trips_through_keras_file_in_safe_mode(arch, role, kwargs, tmp_path):
    keras.utils.set_random_seed(1)
    build = networks.build_generator if role == "generator" else networks.build_critic
    model = build(arch, **_tiny(arch, role), **kwargs)
    model(_inputs(model, 0), training=True)  # moves SN vectors and BN statistics off their init
    for layer in model.layers:
        if getattr(layer, "learned_gain", False):
            layer.gain.assign(1.5)  # a trained-looking γ (init is 1)
    path = str(tmp_path / "model.keras")
    keras.saving.save_model(model, path)
    loaded = keras.saving.load_model(path, safe_mode=True)

    before, after = _by_path(model), _by_path(loaded)
    assert sorted(before) == sorted(after)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    state = [p for p in before if p.endswith(("/gain", "/sn_u", "/sn_x", "/sn_y", "/moving_mean"))]
    assert bool(state) == (kwargs["sn_mode"] in ("pim", "pico")
                           or bool(kwargs.get("batch_norm")))
    x = _inputs(model, 1)
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))
    np.testing.assert_array_equal(loaded(x, training=True), model(x, training=True))
    for name, value in _by_path(model).items():
        np.testing.assert_array_equal(_by_path(loaded)[name], value, err_msg=name)
    if kwargs["sn_mode"] == "constraint":
        constraints = [l.kernel_constraint for l in loaded.layers
                       if getattr(l, "kernel_constraint", None) is not None]
        assert constraints and all(isinstance(c, layers.SpectralNormConstraint)
                                   for c in constraints)


def test_resnet_critic_sums_over_space_with_a_registered_layer():
    critic = networks.build_critic("resnet", image_size=16, widths=(3,) * 5, sn_mode="none")
    pool = critic.get_layer("sum_pool")
    assert isinstance(pool, layers.GlobalSumPooling2D)
    assert not any(isinstance(l, keras.layers.Lambda) for l in critic.layers)
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(pool(x), x.astype(np.float64).sum(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(layers.GlobalSumPooling2D(keepdims=True)(x),
                               x.astype(np.float64).sum(axis=(1, 2), keepdims=True), rtol=1e-6)
    with pytest.raises(ValueError, match="`keepdims="):
        layers.GlobalSumPooling2D(keepdims="yes")
