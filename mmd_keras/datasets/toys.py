"""2-D toy distributions for the MLP networks, with helpers to count captured modes.

=========  ==============================================================  =====
name       modes (centres)                                                 std
=========  ==============================================================  =====
ring8      8 points on a circle of radius 2: (2cos(2πk/8), 2sin(2πk/8))    0.02
grid25     5×5 grid {-4, -2, 0, 2, 4}²                                      0.05
moons      scikit-learn's two moons: upper arc (cos t, sin t) and lower arc  0.05
           (1 − cos t, 0.5 − sin t), t ~ U[0, π] (no discrete modes)
=========  ==============================================================  =====

ring8 and grid25 are equal-weight isotropic Gaussian mixtures (Metz et al. 2017;
Srivastava et al. 2017). Samples are raw coordinates (not scaled to [-1, 1]).
Batches are drawn with stateless RNG seeded ``[seed, batch_index]``: the stream is
a function of ``seed`` alone, endless, and never replays.
"""

import numpy as np
import tensorflow as tf

from mmd_keras import catalog

TOYS = catalog.TOY_DATASETS
DEFAULT_STDS = {"ring8": 0.02, "grid25": 0.05, "moons": 0.05}


def ring8_modes(radius=2.0):
    """Centres ``[8, 2]`` float32 of ring8, mode ``k`` at angle ``2πk/8``."""
    angles = 2.0 * np.pi * np.arange(8) / 8.0
    return (radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype(np.float32)


def grid25_modes(spacing=2.0):
    """Centres ``[25, 2]`` float32 of grid25: ``spacing · {-2, …, 2}²``, row-major in x."""
    axis = spacing * np.arange(-2, 3, dtype=np.float32)
    xs, ys = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def toy_modes(name):
    """``(centres [K, 2] float32, std float)`` for ``ring8`` or ``grid25``."""
    if name == "ring8":
        return ring8_modes(), DEFAULT_STDS[name]
    if name == "grid25":
        return grid25_modes(), DEFAULT_STDS[name]
    raise ValueError(
        'Expected `name` to be "ring8" or "grid25" (moons has no discrete modes). '
        f"Received: `name={name!r}`"
    )


def count_modes(samples, centres, std, num_std=3.0):
    """Assigns 2-D samples to their nearest mode and counts them.

    Args:
        samples: ``[N, 2]`` array.
        centres: ``[K, 2]`` mode centres (e.g. :func:`ring8_modes`).
        std: the modes' standard deviation.
        num_std: a sample is *on* its nearest mode when within ``num_std · std``.

    Returns:
        ``(counts [K] int, fraction_on_mode float)``: ``counts[k]`` is the number of
        samples within ``num_std · std`` of centre ``k`` (its nearest), and the
        fraction of all samples that are within that radius of some mode.
    """
    samples = np.asarray(samples, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    distances = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=-1)
    nearest = np.argmin(distances, axis=1)
    on_mode = distances[np.arange(len(samples)), nearest] <= num_std * std
    counts = np.bincount(nearest[on_mode], minlength=len(centres))
    return counts, float(on_mode.mean()) if len(samples) else 0.0


def _upper_half_circle_distance(points):
    """Distance from ``points`` [N, 2] to the unit half circle {(cos t, sin t), t in [0, π]}."""
    radius = np.linalg.norm(points, axis=1)
    on_arc_side = points[:, 1] >= 0.0  # the nearest circle point then lies on the arc
    to_ends = np.minimum(
        np.linalg.norm(points - [1.0, 0.0], axis=1), np.linalg.norm(points - [-1.0, 0.0], axis=1)
    )
    return np.where(on_arc_side, np.abs(radius - 1.0), to_ends)


def moons_distance(samples):
    """Distance ``[N]`` of each 2-D sample to the nearer noiseless moon arc.

    Upper arc (cos t, sin t); lower arc (1 − cos t, 0.5 − sin t) = (1, 0.5) minus
    the upper arc, t in [0, π].
    """
    samples = np.asarray(samples, dtype=np.float64)
    upper = _upper_half_circle_distance(samples)
    lower = _upper_half_circle_distance(np.array([1.0, 0.5]) - samples)
    return np.minimum(upper, lower)


def sample_toy(name, batch_size, seed, std=None):
    """One batch ``[batch_size, 2]`` float32 of a toy, from a stateless seed ``[2]``.

    Args:
        name: one of :data:`TOYS`.
        batch_size: number of samples.
        seed: int tensor ``[2]`` for ``tf.random.stateless_*``.
        std: Gaussian noise std (default :data:`DEFAULT_STDS`).
    """
    std = DEFAULT_STDS[name] if std is None else std
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    noise = std * tf.random.stateless_normal([batch_size, 2], seed=seeds[0])
    if name == "moons":
        uniform = tf.random.stateless_uniform([batch_size, 2], seed=seeds[1])
        t = np.pi * uniform[:, 0]
        lower = tf.cast(uniform[:, 1] < 0.5, tf.float32)
        x = (1.0 - lower) * tf.cos(t) + lower * (1.0 - tf.cos(t))
        y = (1.0 - lower) * tf.sin(t) + lower * (0.5 - tf.sin(t))
        return tf.stack([x, y], axis=1) + noise
    centres = tf.constant(toy_modes(name)[0])
    index = tf.random.stateless_uniform(
        [batch_size], seed=seeds[1], minval=0, maxval=int(centres.shape[0]), dtype=tf.int32
    )
    return tf.gather(centres, index) + noise


def toy_dataset(
    name,
    batch_size,
    *,
    seed=0,
    repeat=True,
    num_samples=10_000,
    std=None,
    start_batch=0,
    deterministic=True,
    **unused,
):
    """A toy as a stream of ``[batch_size, 2]`` float32 batches.

    Batch ``i`` is ``sample_toy(name, batch_size, [seed, i], std)``. With
    ``repeat=False`` the stream has ``num_samples // batch_size`` batches.
    ``shuffle`` and ``cache`` do not apply (samples are i.i.d.).
    """
    if name not in TOYS:
        raise ValueError(f"Expected `name` to be one of {TOYS}. Received: `name={name!r}`")
    if std is not None and not std > 0:
        raise ValueError(f"Expected `std` > 0. Received: `std={std!r}`")
    if repeat:
        indices = tf.data.Dataset.counter(start=start_batch)
    else:
        indices = tf.data.Dataset.range(start_batch, num_samples // batch_size)
    seed = int(seed)

    def batch(index):
        return sample_toy(name, batch_size, tf.stack([tf.constant(seed, tf.int64), index]), std)

    dataset = indices.map(batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return dataset.with_options(options)
