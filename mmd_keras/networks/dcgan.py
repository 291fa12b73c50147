"""DCGAN-family generators and critics: paper 3 Tables S1/S2, paper 1 DCGAN, paper 2 CNN, small.

Every conv/dense layer has a bias; BatchNorm (generators only) has γ and β. Critics have no
normalization layers (gradient penalties need per-sample gradients); generators end with tanh.
Spatial sizes follow the DCGAN rule of paper 1's code (:func:`conv_sizes`): each stride-2
``same`` convolution maps ``n`` to ``⌈n/2⌉``, and the generator's stride-2 deconvolutions retrace
that chain backwards (MNIST 28 px: 2 → 4 → 7 → 14 → 28).
"""

import keras

from mmd_keras.networks import checks, common


def conv_sizes(image_size, layers, stride=2):
    """The spatial sizes of the DCGAN rule: ``(n, ⌈n/s⌉, ⌈n/s²⌉, …)``, ``layers + 1`` of them.

    The critic's ``same`` stride-``s`` convolutions produce them in order; the generator's
    deconvolutions produce them in reverse (paper 1's code builds MNIST this way at 28 px).

    Example: ``conv_sizes(28, 4) == (28, 14, 7, 4, 2)``.
    """
    sizes = [image_size]
    for _ in range(layers):
        sizes.append(-(-sizes[-1] // stride))
    return tuple(sizes)


def _crop_to(x, size, kernel_size, stride, name):
    """Crops a ``same`` stride-``s`` deconvolution output ``[b, s·n, s·n, c]`` to ``size``.

    TF's ``conv2d_transpose`` to an output of ``size`` (what the official codes call) is the
    adjoint of a ``same`` convolution of a ``size`` input, whose padding before is
    ``⌊(s(n−1) + k − size)/2⌋``; Keras's ``same`` deconvolution is the one for ``s·n``. Both
    are windows of the same full transposed convolution, so the first differs from the second
    by dropping the first ``offset`` rows and columns (and the tail). No layer when
    ``size == s·n`` (all power-of-two sizes).
    """
    produced = x.shape[1]
    if produced == size:
        return x
    full = stride * (produced // stride - 1) + kernel_size
    offset = max(full - size, 0) // 2 - max(full - produced, 0) // 2
    crop = (offset, produced - size - offset)
    return keras.layers.Cropping2D((crop, crop), name=name)(x)


def dcgan_generator(*, latent_dim, image_size, start_filters, up_filters, up_kernel, channels,
                    batch_norm, dense_activation, final, sn=None, name=None, initialization="keras",
                    bn_momentum=0.99):
    """Dense → ``n₀²·start_filters`` → stride-2 deconvs (BN, ReLU) → tanh output.

    The spatial sizes are :func:`conv_sizes` of ``image_size`` in reverse (``n₀`` the smallest),
    so any ``image_size`` works: a power-of-two multiple of ``n₀`` doubles at every deconv,
    otherwise a deconv whose target is odd is followed by a ``Cropping2D`` (see
    :func:`_crop_to`) and matches TF's ``conv2d_transpose`` to that size.

    Args:
        latent_dim: size of the latent vector z.
        image_size: output height = width.
        start_filters: channels of the dense layer's reshaped output.
        up_filters: filters of the stride-2 deconvolutions (each followed by BN and ReLU).
        up_kernel: their kernel size.
        channels: image channels.
        batch_norm: BN after the dense layer (if ``dense_activation``) and after each deconv.
        dense_activation: ``True`` → BN+ReLU after the dense layer (paper 1, paper 2);
            ``False`` → linear (paper 3 Tables S1/S2).
        final: ``"conv3"`` (3×3 stride-1 conv to ``channels``) or ``"deconv"`` (a last
            stride-2 ``up_kernel`` deconv to ``channels``, paper 1 DCGAN).
        sn: keyword arguments of :class:`~mmd_keras.networks.common.LayerFactory` (without
            ``num_sn_layers``, which is counted here: C = pico_gain^(1/L)).
        name: model name.
        initialization: kernel initialization, one of `checks.INITIALIZATIONS`.
        bn_momentum: momentum of the batch-norm moving statistics.

    Returns:
        ``keras.Model``: ``[b, latent_dim] → [b, image_size, image_size, channels]`` in [-1, 1].
    """
    factory = common.LayerFactory(num_sn_layers=len(up_filters) + 2, initialization=initialization,
                                  **(sn or {}))
    sizes = conv_sizes(image_size, len(up_filters) + (final == "deconv"))[::-1]
    start_size = sizes[0]
    z = keras.Input((latent_dim,), name="latents")
    x = factory.dense(start_size * start_size * start_filters, name="dense")(z)
    if dense_activation:
        if batch_norm:
            x = common.batch_norm_layer(batch_norm, "dense_bn", bn_momentum)(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.Reshape((start_size, start_size, start_filters))(x)
    for i, filters in enumerate(up_filters):
        x = factory.deconv(filters, up_kernel, strides=2, name=f"deconv{i}")(x)
        x = _crop_to(x, sizes[i + 1], up_kernel, 2, name=f"deconv{i}_crop")
        if batch_norm:
            x = common.batch_norm_layer(batch_norm, f"deconv{i}_bn", bn_momentum)(x)
        x = keras.layers.ReLU()(x)
    if final == "deconv":
        x = factory.deconv(channels, up_kernel, strides=2, name="to_image")(x)
        x = _crop_to(x, image_size, up_kernel, 2, name="to_image_crop")
    else:
        x = factory.conv(channels, 3, strides=1, name="to_image")(x)
    images = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(z, images, name=name)


def dcgan_critic(*, image_size, channels, convs, leaky_slope, output_dim, sn=None, name=None,
                 initialization="keras"):
    """Convs (``same`` padding, LeakyReLU) → flatten → dense ``output_dim`` (linear).

    Args:
        convs: sequence of ``(filters, kernel_size, stride)``.
        leaky_slope: negative slope of LeakyReLU.
        output_dim: critic output size s.
        sn, initialization: as in :func:`dcgan_generator`.

    Returns:
        ``keras.Model``: ``[b, image_size, image_size, channels] → [b, output_dim]`` float32.
    """
    factory = common.LayerFactory(num_sn_layers=len(convs) + 1, initialization=initialization,
                                  **(sn or {}))
    images = keras.Input((image_size, image_size, channels), name="images")
    x = images
    for i, (filters, kernel_size, stride) in enumerate(convs):
        x = factory.conv(filters, kernel_size, strides=stride, name=f"conv{i}")(x)
        x = keras.layers.LeakyReLU(negative_slope=leaky_slope)(x)
    x = keras.layers.Flatten()(x)
    x = factory.dense(output_dim, name="dense")(x)
    features = keras.layers.Activation("linear", dtype="float32", name="features")(x)
    return keras.Model(images, features, name=name)


def _paired_convs(widths):
    """Paper 3 / Miyato pattern: 3×3 s1, then alternating 4×4 s2 and 3×3 s1."""
    return [(w, 3 if i % 2 == 0 else 4, 1 if i % 2 == 0 else 2) for i, w in enumerate(widths)]


# --- Paper 3, Tables S1 (32 px, 48 px) and S2 (64 px) -------------------------------------------

def s1_generator(*, image_size=32, channels=3, latent_dim=128, widths=(512, 256, 128, 64),
                 batch_norm=True, sn=None, name="dcgan_s1_generator"):
    checks.check_image_size(image_size, 8, "dcgan_s1")
    widths = checks.check_widths(widths, 4)
    return dcgan_generator(
        latent_dim=latent_dim, image_size=image_size,
        start_filters=widths[0], up_filters=widths[1:], up_kernel=4, channels=channels,
        batch_norm=batch_norm, dense_activation=False, final="conv3", sn=sn, name=name)


def s1_critic(*, image_size=32, channels=3, widths=(64, 128, 128, 256, 256, 512, 512),
              leaky_slope=0.1, output_dim=16, sn=None, name="dcgan_s1_critic"):
    checks.check_image_size(image_size, 8, "dcgan_s1")
    widths = checks.check_widths(widths, 7)
    return dcgan_critic(image_size=image_size, channels=channels, convs=_paired_convs(widths),
                        leaky_slope=leaky_slope, output_dim=output_dim, sn=sn, name=name)


def s2_generator(*, image_size=64, channels=3, latent_dim=128,
                 widths=(1024, 512, 256, 128, 64), batch_norm=True, sn=None,
                 name="dcgan_s2_generator"):
    checks.check_image_size(image_size, 16, "dcgan_s2")
    widths = checks.check_widths(widths, 5)
    return dcgan_generator(
        latent_dim=latent_dim, image_size=image_size,
        start_filters=widths[0], up_filters=widths[1:], up_kernel=4, channels=channels,
        batch_norm=batch_norm, dense_activation=False, final="conv3", sn=sn, name=name)


def s2_critic(*, image_size=64, channels=3,
              widths=(64, 128, 128, 256, 256, 512, 512, 1024, 1024), leaky_slope=0.1,
              output_dim=16, sn=None, name="dcgan_s2_critic"):
    checks.check_image_size(image_size, 16, "dcgan_s2")
    widths = checks.check_widths(widths, 9)
    return dcgan_critic(image_size=image_size, channels=channels, convs=_paired_convs(widths),
                        leaky_slope=leaky_slope, output_dim=output_dim, sn=sn, name=name)


# --- Paper 2 "sngan" CIFAR CNN (Miyato et al. 2018, Table 3) -------------------------------------

def sngan_generator(*, image_size=32, channels=3, latent_dim=128, widths=(512, 256, 128, 64),
                    batch_norm=True, sn=None, name="sngan_generator"):
    checks.check_image_size(image_size, 8, "sngan")
    widths = checks.check_widths(widths, 4)
    return dcgan_generator(
        latent_dim=latent_dim, image_size=image_size,
        start_filters=widths[0], up_filters=widths[1:], up_kernel=5, channels=channels,
        batch_norm=batch_norm, dense_activation=True, final="conv3", sn=sn, name=name)


def sngan_critic(*, image_size=32, channels=3, widths=(64, 64, 128, 128, 256, 256, 512),
                 leaky_slope=0.2, output_dim=16, sn=None, name="sngan_critic"):
    checks.check_image_size(image_size, 8, "sngan")
    widths = checks.check_widths(widths, 7)
    return dcgan_critic(image_size=image_size, channels=channels, convs=_paired_convs(widths),
                        leaky_slope=leaky_slope, output_dim=output_dim, sn=sn, name=name)


# --- Paper 1 DCGAN (Radford et al.; critic size 16 or 64) -----------------------------------------

def p1_generator(*, image_size=64, channels=3, latent_dim=100, widths=(512, 256, 128, 64),
                 batch_norm=True, sn=None, name="dcgan_p1_generator", initialization="keras",
                 bn_momentum=0.99):
    """Dense → ⌈n/16⌉²·w₀ (BN, ReLU) → 5×5 s2 deconvs w₁, w₂, w₃ (BN, ReLU) → 5×5 s2 deconv, tanh.

    Any ``image_size`` n, with the sizes of :func:`conv_sizes` (28: 2 → 4 → 7 → 14 → 28).
    ``initialization="paper1_official"`` and ``bn_momentum=0.9`` are paper 1's official code
    (``ops.py``: N(0, 0.02²) deconvs, N(0, 0.01²) linear, batch-norm decay 0.9); the defaults
    are Keras's (Glorot-uniform, 0.99).
    """
    checks.check_int(image_size, "image_size")
    widths = checks.check_widths(widths, 4)
    return dcgan_generator(
        latent_dim=latent_dim, image_size=image_size,
        start_filters=widths[0], up_filters=widths[1:], up_kernel=5, channels=channels,
        batch_norm=batch_norm, dense_activation=True, final="deconv", sn=sn, name=name,
        initialization=initialization, bn_momentum=bn_momentum)


def p1_critic(*, image_size=64, channels=3, widths=(64, 128, 256, 512), leaky_slope=0.2,
              output_dim=16, sn=None, name="dcgan_p1_critic", initialization="keras"):
    """Four 5×5 s2 ``same`` convs (LeakyReLU) → dense; any ``image_size`` (28: 14, 7, 4, 2).

    ``initialization="paper1_official"``: truncated N(0, 0.02²) convs and N(0, 0.01²) dense
    (paper 1's official ``ops.py``); default Keras's Glorot-uniform.
    """
    checks.check_int(image_size, "image_size")
    widths = checks.check_widths(widths, 4)
    return dcgan_critic(image_size=image_size, channels=channels,
                        convs=[(w, 5, 2) for w in widths], leaky_slope=leaky_slope,
                        output_dim=output_dim, sn=sn, name=name, initialization=initialization)


# --- "small": tiny pair for the offline 16/32 px digits default ---------------------------------

def small_generator(*, image_size=16, channels=1, latent_dim=32, widths=(32,),
                    batch_norm=True, sn=None, name="small_generator"):
    """Dense → 4×4×(w·2^(k−1)) (BN, ReLU) → k deconvs 4×4 s2 (halving) → 3×3 conv, tanh."""
    steps = checks.power_of_two_steps(image_size, 4, "small")
    (width,) = checks.check_widths(widths, 1)
    up = [width * 2 ** (steps - 1 - i) for i in range(steps)]
    return dcgan_generator(
        latent_dim=latent_dim, image_size=image_size, start_filters=up[0],
        up_filters=up, up_kernel=4, channels=channels, batch_norm=batch_norm,
        dense_activation=True, final="conv3", sn=sn, name=name)


def small_critic(*, image_size=16, channels=1, widths=(32,), leaky_slope=0.2, output_dim=16,
                 sn=None, name="small_critic"):
    """k convs 4×4 s2 (w, 2w, …) down to 4×4 → dense ``output_dim``."""
    steps = checks.power_of_two_steps(image_size, 4, "small")
    (width,) = checks.check_widths(widths, 1)
    return dcgan_critic(image_size=image_size, channels=channels,
                        convs=[(width * 2**i, 4, 2) for i in range(steps)],
                        leaky_slope=leaky_slope, output_dim=output_dim, sn=sn, name=name)
