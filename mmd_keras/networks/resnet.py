"""ResNet generators and critics: paper 2 SN-ResNet (ImageNet 64) and paper 1 CelebA 160.

Blocks follow Miyato et al. (2018) / Gulrajani et al. (2017): generator up-blocks
``BN, ReLU, 2× nearest up-sampling, 3×3 conv, BN, ReLU, 3×3 conv`` + shortcut
``up-sampling, 1×1 conv``; critic down-blocks ``act, 3×3 conv, act, 3×3 conv, 2×2 mean pool``
+ shortcut ``1×1 conv, mean pool`` (the first block is Miyato's "optimized" block: conv, act,
conv, pool + shortcut ``pool, 1×1 conv``), then ``act``, global **sum** pooling and a dense
layer. Critic blocks down-sample while the feature map stays ≥ 2×2; the remaining blocks
(the "extra non-resampling blocks") keep the size. No normalization in the critic.
"""

import keras

from mmd_keras import layers as sn_layers
from mmd_keras.networks import checks, common, dcgan


def _up_block(x, filters, factory, batch_norm, name):
    shortcut = keras.layers.UpSampling2D(2)(x)
    shortcut = factory.conv(filters, 1, name=f"{name}_shortcut")(shortcut)
    if batch_norm:
        x = common.batch_norm_layer(batch_norm, f"{name}_bn0")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.UpSampling2D(2)(x)
    x = factory.conv(filters, 3, name=f"{name}_conv0")(x)
    if batch_norm:
        x = common.batch_norm_layer(batch_norm, f"{name}_bn1")(x)
    x = keras.layers.ReLU()(x)
    x = factory.conv(filters, 3, name=f"{name}_conv1")(x)
    return keras.layers.Add()([x, shortcut])


def _down_block(x, filters, factory, slope, downsample, first, name):
    shortcut = x
    if first:  # Miyato's optimized block: pool then 1×1 conv on the raw input
        shortcut = factory.conv(filters, 1, name=f"{name}_shortcut")(
            keras.layers.AveragePooling2D(2)(shortcut))
    else:
        if downsample or x.shape[-1] != filters:
            shortcut = factory.conv(filters, 1, name=f"{name}_shortcut")(shortcut)
        if downsample:
            shortcut = keras.layers.AveragePooling2D(2)(shortcut)
        x = keras.layers.LeakyReLU(negative_slope=slope)(x)
    x = factory.conv(filters, 3, name=f"{name}_conv0")(x)
    x = keras.layers.LeakyReLU(negative_slope=slope)(x)
    x = factory.conv(filters, 3, name=f"{name}_conv1")(x)
    if downsample:
        x = keras.layers.AveragePooling2D(2)(x)
    return keras.layers.Add()([x, shortcut])


def resnet_generator(*, image_size=64, channels=3, latent_dim=128,
                     widths=(1024, 512, 256, 128, 64), batch_norm=True, sn=None,
                     name="resnet_generator"):
    """Dense → (image_size/2^k)²·widths[0] → k = len(widths)−1 up-blocks → BN, ReLU, 3×3 conv, tanh.

    Returns:
        ``keras.Model``: ``[b, latent_dim] → [b, image_size, image_size, channels]`` in [-1, 1].
    """
    return _resnet_generator("resnet", image_size, channels, latent_dim, widths, batch_norm, sn,
                             name)


def _resnet_generator(arch, image_size, channels, latent_dim, widths, batch_norm, sn, name):
    widths = checks.check_widths(widths)
    blocks = len(widths) - 1
    checks.check_image_size(image_size, 2**blocks, arch)
    factory = common.LayerFactory(num_sn_layers=3 * blocks + 2, **(sn or {}))
    start = image_size // 2**blocks
    z = keras.Input((latent_dim,), name="latents")
    x = factory.dense(start * start * widths[0], name="dense")(z)
    x = keras.layers.Reshape((start, start, widths[0]))(x)
    for i, filters in enumerate(widths[1:]):
        x = _up_block(x, filters, factory, batch_norm, name=f"up{i}")
    if batch_norm:
        x = common.batch_norm_layer(batch_norm, "out_bn")(x)
    x = keras.layers.ReLU()(x)
    x = factory.conv(channels, 3, name="to_image")(x)
    images = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(z, images, name=name)


def resnet_critic(*, image_size=64, channels=3, widths=(64, 128, 256, 512, 1024),
                  leaky_slope=0.0, output_dim=16, sn=None, name="resnet_critic"):
    """Optimized block + down-blocks (``widths``) → act → global sum pool → dense ``output_dim``.

    ``leaky_slope=0`` is ReLU (Miyato's ResNet critic).

    Returns:
        ``keras.Model``: ``[b, image_size, image_size, channels] → [b, output_dim]`` float32.
    """
    checks.check_image_size(image_size, 16, "resnet")
    widths = checks.check_widths(widths)
    plan, size, channels_in = [], image_size, channels
    for i, filters in enumerate(widths):
        downsample = size // 2 >= 2 and size % 2 == 0
        plan.append((filters, downsample, i == 0 or downsample or channels_in != filters))
        size, channels_in = (size // 2 if downsample else size), filters
    num_sn_layers = 2 * len(widths) + sum(p[2] for p in plan) + 1
    factory = common.LayerFactory(num_sn_layers=num_sn_layers, **(sn or {}))
    images = keras.Input((image_size, image_size, channels), name="images")
    x = images
    for i, (filters, downsample, _) in enumerate(plan):
        x = _down_block(x, filters, factory, leaky_slope, downsample, first=i == 0,
                        name=f"down{i}")
    x = keras.layers.LeakyReLU(negative_slope=leaky_slope)(x)
    x = sn_layers.GlobalSumPooling2D(name="sum_pool")(x)
    x = factory.dense(output_dim, name="dense")(x)
    features = keras.layers.Activation("linear", dtype="float32", name="features")(x)
    return keras.Model(images, features, name=name)


def celeba160_generator(*, image_size=160, channels=3, latent_dim=100,
                        widths=(1024, 512, 256, 128, 64), batch_norm=True, sn=None,
                        name="celeba160_generator"):
    """Paper 1's 10-layer ResNet generator (dense, 4 up-blocks, conv): 10×10 → 160×160."""
    return _resnet_generator("celeba160", image_size, channels, latent_dim, widths, batch_norm,
                             sn, name)


def celeba160_critic(*, image_size=160, channels=3, widths=(64, 128, 256, 512, 1024),
                     leaky_slope=0.2, output_dim=16, sn=None, name="celeba160_critic"):
    """Paper 1's 5-layer DCGAN critic: 5×5 stride-2 convs (df … 16·df), LeakyReLU, dense."""
    widths = checks.check_widths(widths)
    checks.check_image_size(image_size, 2 ** len(widths), "celeba160")
    return dcgan.dcgan_critic(image_size=image_size, channels=channels,
                              convs=[(w, 5, 2) for w in widths], leaky_slope=leaky_slope,
                              output_dim=output_dim, sn=sn, name=name)
