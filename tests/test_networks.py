"""Network builders: parameter counts from the papers' tables, shapes, ranges, SN wiring, errors."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import layers, networks
from mmd_keras.errors import ArgumentError


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def dense(n_in, n_out):
    return n_in * n_out + n_out


def conv(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def bn(c):
    return 2 * c  # trainable γ, β (moving statistics are not trainable)


def test_dcgan_s1_counts_match_paper3_table_s1():
    # Table S1 (CIFAR, h = w = 4): z 128 → 4·4·512 linear; deconv 4×4 512→256, 256→128, 128→64
    # each + BN; 3×3 conv 64→3. Critic: 3×3 3→64, 4×4 64→128, 3×3 128→128, 4×4 128→256,
    # 3×3 256→256, 4×4 256→512, 3×3 512→512, dense 4·4·512 → s = 16.
    generator = (dense(128, 4 * 4 * 512) + conv(4, 512, 256) + bn(256) + conv(4, 256, 128)
                 + bn(128) + conv(4, 128, 64) + bn(64) + conv(3, 64, 3))
    critic = (conv(3, 3, 64) + conv(4, 64, 128) + conv(3, 128, 128) + conv(4, 128, 256)
              + conv(3, 256, 256) + conv(4, 256, 512) + conv(3, 512, 512) + dense(4 * 4 * 512, 16))
    # = 1,056,768 + 2,097,408 + 512 + 524,416 + 256 + 131,136 + 128 + 1,731
    assert generator == 3_812_355
    # = 1,792 + 131,200 + 147,584 + 524,544 + 590,080 + 2,097,664 + 2,359,808 + 131,088
    assert critic == 5_983_760
    assert trainable_count(networks.build_generator("dcgan_s1")) == generator
    assert trainable_count(networks.build_critic("dcgan_s1", sn_mode="none")) == critic
    # STL-10, 48 px: h = w = 6 changes only the two dense layers
    g48 = generator - dense(128, 4 * 4 * 512) + dense(128, 6 * 6 * 512)
    c48 = critic - dense(4 * 4 * 512, 16) + dense(6 * 6 * 512, 16)
    assert trainable_count(networks.build_generator("dcgan_s1", image_size=48)) == g48
    assert trainable_count(networks.build_critic("dcgan_s1", image_size=48)) == c48


def test_dcgan_s2_counts_match_paper3_table_s2():
    generator = (dense(128, 4 * 4 * 1024) + conv(4, 1024, 512) + bn(512) + conv(4, 512, 256)
                 + bn(256) + conv(4, 256, 128) + bn(128) + conv(4, 128, 64) + bn(64)
                 + conv(3, 64, 3))
    # the table's last line reads "4×4×512 → s"; the conv before it has 1024 channels
    critic = (conv(3, 3, 64) + conv(4, 64, 128) + conv(3, 128, 128) + conv(4, 128, 256)
              + conv(3, 256, 256) + conv(4, 256, 512) + conv(3, 512, 512) + conv(4, 512, 1024)
              + conv(3, 1024, 1024) + dense(4 * 4 * 1024, 1))
    assert trainable_count(networks.build_generator("dcgan_s2")) == generator
    assert trainable_count(networks.build_critic("dcgan_s2", output_dim=1)) == critic


def test_sngan_and_dcgan_p1_counts():
    # paper 2 CIFAR CNN (Miyato Table 3): z 128 → 4·4·512 (BN, ReLU), 5×5 deconvs 256/128/64 +
    # BN, 3×3 conv → 3; critic 3×3 64, 4×4 64, 3×3 128, 4×4 128, 3×3 256, 4×4 256, 3×3 512, dense.
    g = (dense(128, 8192) + bn(8192) + conv(5, 512, 256) + bn(256) + conv(5, 256, 128) + bn(128)
         + conv(5, 128, 64) + bn(64) + conv(3, 64, 3))
    c = (conv(3, 3, 64) + conv(4, 64, 64) + conv(3, 64, 128) + conv(4, 128, 128)
         + conv(3, 128, 256) + conv(4, 256, 256) + conv(3, 256, 512) + dense(4 * 4 * 512, 16))
    assert trainable_count(networks.build_generator("sngan")) == g
    assert trainable_count(networks.build_critic("sngan")) == c
    # paper 1 DCGAN at 32 px, critic size 16, output 256 (distance kernel): 4 × 5×5 s2 convs
    # 16, 32, 64, 128 → 2·2·128 → 256. Generator z 100 → 2·2·512 (BN, ReLU), 5×5 deconvs
    # 256/128/64 + BN, 5×5 deconv → 3.
    c = (conv(5, 3, 16) + conv(5, 16, 32) + conv(5, 32, 64) + conv(5, 64, 128)
         + dense(2 * 2 * 128, 256))
    g = (dense(100, 2 * 2 * 512) + bn(2048) + conv(5, 512, 256) + bn(256) + conv(5, 256, 128)
         + bn(128) + conv(5, 128, 64) + bn(64) + conv(5, 64, 3))
    critic = networks.build_critic("dcgan_p1", image_size=32, widths=(16, 32, 64, 128),
                                   output_dim=256)
    assert trainable_count(critic) == c
    assert trainable_count(networks.build_generator("dcgan_p1", image_size=32)) == g


def _up_block(c_in, c_out):
    return bn(c_in) + conv(3, c_in, c_out) + bn(c_out) + conv(3, c_out, c_out) + conv(1, c_in, c_out)


def test_resnet_and_celeba160_counts():
    # paper 2 SN-ResNet 64: z 128 → 4·4·1024, up-blocks 1024→512→256→128→64, BN, 3×3 conv → 3
    g = (dense(128, 4 * 4 * 1024) + _up_block(1024, 512) + _up_block(512, 256)
         + _up_block(256, 128) + _up_block(128, 64) + bn(64) + conv(3, 64, 3))
    # critic: optimized block 3→64 (two 3×3 + 1×1 shortcut), down-blocks 64→128→…→1024
    # (two 3×3 + 1×1 shortcut each), global sum pool, dense 1024 → 1
    c = conv(3, 3, 64) + conv(3, 64, 64) + conv(1, 3, 64)
    for c_in, c_out in [(64, 128), (128, 256), (256, 512), (512, 1024)]:
        c += conv(3, c_in, c_out) + conv(3, c_out, c_out) + conv(1, c_in, c_out)
    c += dense(1024, 1)
    assert trainable_count(networks.build_generator("resnet")) == g
    assert trainable_count(networks.build_critic("resnet", output_dim=1)) == c
    # paper 1 CelebA 160: same generator from 10×10 (z 100); 5-layer critic 5×5 s2 to 5×5×1024
    g160 = g - dense(128, 4 * 4 * 1024) + dense(100, 10 * 10 * 1024)
    c160 = (conv(5, 3, 64) + conv(5, 64, 128) + conv(5, 128, 256) + conv(5, 256, 512)
            + conv(5, 512, 1024) + dense(5 * 5 * 1024, 16))
    assert trainable_count(networks.build_generator("celeba160")) == g160
    assert trainable_count(networks.build_critic("celeba160")) == c160


def test_small_and_mlp_counts_and_learned_gain_adds_one_per_layer():
    # small, 16 px, w = 32: z 32 → 4·4·64 (BN), deconv 4×4 64→64, 64→32 (+BN), 3×3 32→1
    g = (dense(32, 1024) + bn(1024) + conv(4, 64, 64) + bn(64) + conv(4, 64, 32) + bn(32)
         + conv(3, 32, 1))
    c = conv(4, 1, 32) + conv(4, 32, 64) + dense(4 * 4 * 64, 16)
    assert trainable_count(networks.build_generator("small")) == g
    assert trainable_count(networks.build_critic("small")) == c
    # learned gain: one trainable γ per normalized layer (2 convs + dense)
    assert trainable_count(networks.build_critic("small", sn_mode="pim", learned_gain=True)) == c + 3
    g = dense(16, 128) + 2 * dense(128, 128) + dense(128, 2)
    assert trainable_count(networks.build_generator("mlp")) == g
    assert trainable_count(networks.build_critic("mlp")) == dense(2, 128) + 2 * dense(128, 128) + dense(128, 16)


@pytest.mark.parametrize("arch,kwargs", [
    ("small", {}), ("small", {"image_size": 32, "channels": 3}),
    ("dcgan_s1", {"widths": (32, 16, 8, 4)}),
])
def test_generator_shapes_and_tanh_range(arch, kwargs):
    keras.utils.set_random_seed(0)
    generator = networks.build_generator(arch, latent_dim=8, **kwargs)
    z = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32) * 50.0
    images = np.asarray(generator(z, training=True))
    size, channels = kwargs.get("image_size", 16 if arch == "small" else 32), kwargs.get(
        "channels", 1 if arch == "small" else 3)
    assert images.shape == (3, size, size, channels)
    assert np.all(np.abs(images) <= 1.0) and np.abs(images).max() > 0.5  # saturating tanh


@pytest.mark.parametrize("sn_mode", ["none", "pim", "pico", "constraint"])
def test_critic_sn_modes_are_wired(sn_mode):
    critic = networks.build_critic("small", image_size=8, widths=(4,), output_dim=3,
                                   sn_mode=sn_mode)
    kinds = [type(layer) for layer in critic.layers if "conv" in layer.name or "dense" in layer.name]
    assert critic.output_shape == (None, 3) and len(kinds) == 2
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in critic.layers)
    if sn_mode in ("pim", "pico"):
        sn = [l for l in critic.layers if hasattr(l, "sn_mode")]
        assert {l.sn_mode for l in sn} == {sn_mode} and len(sn) == 2
        np.testing.assert_allclose([l.pico_multiplier for l in sn], 64.0 ** 0.5)  # C^L = 64, L = 2
    elif sn_mode == "constraint":
        assert all(isinstance(l.kernel_constraint, layers.SpectralNormConstraint)
                   for l in critic.layers if hasattr(l, "kernel_constraint"))
    out = critic(np.zeros((2, 8, 8, 1), np.float32), training=True)
    assert out.dtype == "float32" and out.shape == (2, 3)


def test_paper3_multiplier_uses_eight_and_ten_layers():
    c1 = networks.build_critic("dcgan_s1", widths=(4,) * 7)
    c2 = networks.build_critic("dcgan_s2", widths=(2,) * 9)
    assert c1.get_layer("conv0").pico_multiplier == pytest.approx(64 ** (1 / 8))
    assert c2.get_layer("dense").pico_multiplier == pytest.approx(64 ** (1 / 10))


@pytest.mark.parametrize("build,arg", [
    (lambda: networks.build_generator("dcgan_s1", image_size=36), "image_size"),
    (lambda: networks.build_critic("small", image_size=24), "image_size"),
    (lambda: networks.build_critic("resnet", image_size=40), "image_size"),
    (lambda: networks.build_critic("small", sn_mode="spectral"), "sn_mode"),
    (lambda: networks.build_critic("small", output_dim=0), "output_dim"),
    (lambda: networks.build_generator("small", latent_dim=0), "latent_dim"),
    (lambda: networks.build_critic("vgg"), "arch"),
    (lambda: networks.build_critic("small", widths=(8, 8)), "widths"),
    (lambda: networks.build_critic("small", colour=3), "colour"),
    (lambda: networks.build_critic("small", learned_gain=True, sn_mode="none"), "sn_mode"),
])
def test_bad_input_raises_value_error_naming_the_argument(build, arg):
    with pytest.raises(ValueError, match=f"`{arg}"):
        build()


# One bad value per keyword argument; each must be refused by the builders' own checks.
BAD_VALUES = {
    "image_size": [0, "32", 32.0], "channels": [0, 2.5], "latent_dim": [0, True],
    "output_dim": [-1], "data_dim": [0], "widths": [7, ("a",), (0,)], "batch_norm": ["sync", 1],
    "leaky_slope": [-0.1, "0.2"], "name": ["", 3], "sn_mode": ["spectral", None],
    "learned_gain": ["yes"], "pico_gain": [0, -1.0], "power_iterations": [0, 1.5],
    "constraint_target": [0.0, float("nan")], "initialization": ["glorot", None],
    "bn_momentum": [1.0, -0.1, "0.9", True],
}


def _bad_cases():
    for arch in networks.ARCHITECTURES:
        for role, build in (("generator", networks.build_generator),
                            ("critic", networks.build_critic)):
            builder = networks._builder(arch, role)
            for arg in networks._accepted(builder):
                for value in BAD_VALUES[arg]:
                    if role == "critic" and arg == "sn_mode" and value is None:
                        continue  # None is the critic's "default"
                    yield pytest.param(build, arch, role, arg, value,
                                       id=f"{arch}-{role}-{arg}={value!r}")


@pytest.mark.parametrize("build,arch,role,arg,value", list(_bad_cases()))
def test_every_bad_argument_raises_argument_error_naming_it(build, arch, role, arg, value):
    with pytest.raises(ArgumentError, match=f"Expected .*Received: `{arg}=") as caught:
        build(arch, **{arg: value})
    assert caught.value.argument == arg and caught.value.owner == role


def test_unknown_argument_and_arch_are_argument_errors():
    with pytest.raises(ArgumentError) as caught:
        networks.build_generator("small", output_dim=3)  # a critic argument
    assert (caught.value.argument, caught.value.owner) == ("output_dim", "generator")
    with pytest.raises(ArgumentError) as caught:
        networks.build_critic("vgg")
    assert (caught.value.argument, caught.value.owner) == ("arch", "critic")


def test_image_size_is_checked_once_by_the_builders():
    """celeba160 at 48 px: the generator (4 up-blocks) builds, the 5-conv critic refuses it."""
    assert networks.build_generator("celeba160", image_size=48, widths=(4,) * 5).output_shape == (
        None, 48, 48, 3)
    with pytest.raises(ArgumentError) as caught:
        networks.build_critic("celeba160", image_size=48, widths=(4,) * 5)
    assert (caught.value.argument, caught.value.owner) == ("image_size", "critic")
    assert not hasattr(networks, "_IMAGE_RULES")


def test_architecture_registry_names():
    assert set(networks.ARCHITECTURES) == {"dcgan_s1", "dcgan_s2", "sngan", "resnet", "dcgan_p1",
                                           "celeba160", "mlp", "small"}


def test_registries_sn_modes_and_default_sn_mode():
    assert networks.SN_MODES == ("default", "none", "pim", "pico", "constraint")
    assert set(networks.SN_MODES) == {"default", "constraint"} | set(layers.SN_LAYER_MODES)
    for arch, entry in networks.ARCHITECTURES.items():
        assert networks.default_sn_mode(arch) == entry.critic_sn_mode
        assert entry.critic_sn_mode in networks.SN_MODES[1:]
    critic = networks.build_critic("small", image_size=8, widths=(2,))
    assert not any(hasattr(layer, "sn_mode") for layer in critic.layers)
    critic = networks.build_critic("dcgan_s1", widths=(2,) * 7, sn_mode="default")
    assert critic.get_layer("conv0").sn_mode == "pico"
    generator = networks.build_generator("dcgan_s1", widths=(2,) * 4, sn_mode="default")
    assert not any(hasattr(layer, "sn_mode") for layer in generator.layers)


def test_networks_import_is_tf_free():
    """The registries load without the builder modules (which import Keras and TensorFlow)."""
    code = textwrap.dedent("""
        import sys
        import mmd_keras
        before = set(sys.modules)
        import mmd_keras.networks
        new = set(sys.modules) - before
        heavy = sorted(m for m in new if m.split(".")[0] in ("tensorflow", "keras")
                       or m.startswith(("mmd_keras.layers", "mmd_keras.networks.common")))
        assert not heavy, heavy
        assert "dcgan_s1" in mmd_keras.networks.ARCHITECTURES
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_generator_batch_norm_modes():
    """batch_norm=False/True/"synchronized": BN layers absent, per-replica, or global-batch."""
    def bn_layers(model):
        return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]

    kwargs = dict(image_size=16, channels=1, latent_dim=4)
    assert not bn_layers(networks.build_generator("small", batch_norm=False, **kwargs))
    plain = bn_layers(networks.build_generator("small", batch_norm=True, **kwargs))
    synced = bn_layers(networks.build_generator("small", batch_norm="synchronized", **kwargs))
    assert plain and len(plain) == len(synced)
    assert not any(layer.synchronized for layer in plain)
    assert all(layer.synchronized for layer in synced)
    resnet = bn_layers(networks.build_generator("resnet", image_size=16, latent_dim=4, widths=(4,) * 5,
                                                batch_norm="synchronized"))
    assert resnet and all(layer.synchronized for layer in resnet)
    with pytest.raises(ValueError, match="batch_norm"):
        networks.build_generator("small", batch_norm="sync", **kwargs)


def _generator_sizes(generator):
    """Spatial side after the reshape, after each deconv block (its BN) and of the image."""
    return [layer.output.shape[1] for layer in generator.layers
            if isinstance(layer, (keras.layers.Reshape, keras.layers.BatchNormalization))
            and len(layer.output.shape) == 4] + [generator.output_shape[1]]


@pytest.mark.parametrize("size,generator_sizes,critic_sizes", [
    (28, [2, 4, 7, 14, 28], [14, 7, 4, 2]),  # paper 1's MNIST (ceil division)
    (32, [2, 4, 8, 16, 32], [16, 8, 4, 2]),
    (64, [4, 8, 16, 32, 64], [32, 16, 8, 4]),
    (30, [2, 4, 8, 15, 30], [15, 8, 4, 2]),
])
def test_dcgan_p1_spatial_sizes_follow_the_official_ceil_rule(size, generator_sizes,
                                                             critic_sizes):
    from mmd_keras.networks import dcgan

    assert dcgan.conv_sizes(size, 4) == (size, *critic_sizes)
    generator = networks.build_generator("dcgan_p1", image_size=size, channels=1,
                                         widths=(8, 4, 4, 2))
    critic = networks.build_critic("dcgan_p1", image_size=size, channels=1, widths=(2, 2, 2, 3))
    assert _generator_sizes(generator) == generator_sizes
    assert [critic.get_layer(f"conv{i}").output.shape[1] for i in range(4)] == critic_sizes
    assert critic.get_layer("dense").kernel.shape == (critic_sizes[-1] ** 2 * 3, 16)
    crops = [l for l in generator.layers if isinstance(l, keras.layers.Cropping2D)]
    # multiples of 16 build exactly as before: no cropping layer, every deconv doubles
    assert bool(crops) == (size % 16 != 0)


def test_dcgan_p1_at_28_matches_tf_conv2d_transpose_to_odd_sizes():
    """The 28 px generator equals the official construction: TF's conv2d_transpose with an
    explicit output_shape (4 → 7 needs it), written out here layer by layer."""
    keras.utils.set_random_seed(3)
    generator = networks.build_generator("dcgan_p1", image_size=28, channels=1, latent_dim=5,
                                         widths=(4, 3, 2, 2))
    z = np.random.default_rng(0).uniform(-1, 1, size=(3, 5)).astype(np.float32)
    generator(z, training=True)  # move the BN statistics off their init

    def bn(x, name):
        gamma, beta, mean, var = (np.asarray(w) for w in generator.get_layer(name).weights)
        return (x - mean) / np.sqrt(var + 1e-3) * gamma + beta

    def deconv(x, name, size):
        kernel, bias = (np.asarray(w) for w in generator.get_layer(name).weights)
        y = tf.nn.conv2d_transpose(x, kernel, output_shape=[3, size, size, kernel.shape[2]],
                                   strides=2, padding="SAME")
        return np.asarray(y) + bias

    kernel, bias = (np.asarray(w) for w in generator.get_layer("dense").weights)
    x = np.maximum(bn(z @ kernel + bias, "dense_bn"), 0).reshape(3, 2, 2, 4)
    for i, size in enumerate((4, 7, 14)):
        x = np.maximum(bn(deconv(x, f"deconv{i}", size), f"deconv{i}_bn"), 0)
    expected = np.tanh(deconv(x, "to_image", 28))
    np.testing.assert_allclose(generator(z, training=False), expected, atol=1e-5)


def test_paper1_official_initialization_and_batch_norm_momentum():
    """``initialization="paper1_official"`` draws the official ``ops.py`` kernels: convs from
    N(0, 0.02²) truncated at 2σ (SD 0.02 · 0.8796), deconvs N(0, 0.02²), dense N(0, 0.01²);
    ``bn_momentum`` reaches every batch norm. Sample SDs of ≥ 12,800 draws are within 3 %
    (the SD's relative standard error is ~1/√(2n) < 0.7 %)."""
    import math

    from scipy import stats

    gen = networks.build_generator("dcgan_p1", image_size=28, channels=1, latent_dim=100,
                                   widths=(64, 32, 16, 8), initialization="paper1_official",
                                   bn_momentum=0.9)
    critic = networks.build_critic("dcgan_p1", image_size=28, channels=1, widths=(16, 32, 64, 128),
                                   initialization="paper1_official")
    a = 2.0  # truncation in SDs; SD of the truncated standard normal:
    truncated_sd = math.sqrt(1 - 2 * a * stats.norm.pdf(a) / (2 * stats.norm.cdf(a) - 1))
    expected = {"Conv2D": 0.02 * truncated_sd, "Conv2DTranspose": 0.02, "Dense": 0.01}
    seen = set()
    for layer in gen.layers + critic.layers:
        kind = next((k for k in expected if type(layer).__name__ == k), None)
        if kind is None or layer.kernel.shape.num_elements() < 12_800:
            continue
        kernel = np.asarray(layer.kernel)
        np.testing.assert_allclose(kernel.std(), expected[kind], rtol=0.03)
        if kind == "Conv2D":
            assert np.abs(kernel).max() <= 2 * 0.02 + 1e-7
        seen.add(kind)
    assert seen == set(expected)
    momenta = {layer.momentum for layer in gen.layers if "BatchNormalization" in type(layer).__name__}
    assert momenta == {0.9}
    keras_default = networks.build_critic("dcgan_p1", image_size=28, channels=1, widths=(16, 32, 64, 128))
    conv = next(layer for layer in keras_default.layers if type(layer).__name__ == "Conv2D")
    fan_in, fan_out = 25 * conv.kernel.shape[2], 25 * conv.kernel.shape[3]  # Glorot-uniform SD
    np.testing.assert_allclose(np.asarray(conv.kernel).std(), math.sqrt(2 / (fan_in + fan_out)), rtol=0.1)
