"""MLP generator and critic for 2-D toy data (mixtures of Gaussians, rings, …)."""

import keras

from mmd_keras.networks import checks, common


def mlp_generator(*, latent_dim=16, data_dim=2, widths=(128, 128, 128), batch_norm=False,
                  sn=None, name="mlp_generator"):
    """Dense layers with ReLU (optional BN) → dense ``data_dim``, linear (points, not images).

    Returns:
        ``keras.Model``: ``[b, latent_dim] → [b, data_dim]`` float32.
    """
    checks.check_int(data_dim, "data_dim")
    widths = checks.check_widths(widths)
    factory = common.LayerFactory(num_sn_layers=len(widths) + 1, **(sn or {}))
    z = keras.Input((latent_dim,), name="latents")
    x = z
    for i, width in enumerate(widths):
        x = factory.dense(width, name=f"dense{i}")(x)
        if batch_norm:
            x = common.batch_norm_layer(batch_norm, f"dense{i}_bn")(x)
        x = keras.layers.ReLU()(x)
    x = factory.dense(data_dim, name="to_data")(x)
    points = keras.layers.Activation("linear", dtype="float32", name="points")(x)
    return keras.Model(z, points, name=name)


def mlp_critic(*, data_dim=2, widths=(128, 128, 128), leaky_slope=0.2, output_dim=16,
               sn=None, name="mlp_critic"):
    """Dense layers with LeakyReLU → dense ``output_dim`` (linear); no normalization.

    Returns:
        ``keras.Model``: ``[b, data_dim] → [b, output_dim]`` float32.
    """
    checks.check_int(data_dim, "data_dim")
    widths = checks.check_widths(widths)
    factory = common.LayerFactory(num_sn_layers=len(widths) + 1, **(sn or {}))
    points = keras.Input((data_dim,), name="points")
    x = points
    for i, width in enumerate(widths):
        x = factory.dense(width, name=f"dense{i}")(x)
        x = keras.layers.LeakyReLU(negative_slope=leaky_slope)(x)
    x = factory.dense(output_dim, name="dense_out")(x)
    features = keras.layers.Activation("linear", dtype="float32", name="features")(x)
    return keras.Model(points, features, name=name)
