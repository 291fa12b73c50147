"""Checks of the inputs every loss takes: image batches, critic outputs, seeds, weights.

One place for them so each loss function validates its arguments the same way and names
the argument at fault (``ValueError("Expected … Received: `arg=…`")``).
"""

import numpy as np
import tensorflow as tf


def images(t, name):
    """``t`` as a tensor of rank ≥ 2 ``[batch, ...]``; ValueError naming ``name`` otherwise."""
    t = tf.convert_to_tensor(t)
    if t.shape.rank is None or t.shape.rank < 2:
        raise ValueError(
            f"Expected `{name}` of rank ≥ 2 with shape [batch, ...]. Received: `{name}.shape={t.shape}`"
        )
    return t


def check_image_pair(real_images, fake_images, fake_name="fake_images"):
    """Validates two image batches of one sample shape; returns them, fake cast to the real dtype."""
    real = images(real_images, "real_images")
    fake = images(fake_images, fake_name)
    if real.shape[1:] != fake.shape[1:] and real.shape[1:].is_fully_defined() and fake.shape[1:].is_fully_defined():
        raise ValueError(
            f"Expected `real_images` and `{fake_name}` with the same sample shape. "
            f"Received: `real_images.shape={real.shape}`, `{fake_name}.shape={fake.shape}`"
        )
    return real, tf.cast(fake, real.dtype)


def scalar_output(features, name="critic output"):
    """[b, 1] or [b] critic output -> [b] float32; anything wider is a ValueError."""
    features = tf.convert_to_tensor(features)
    if features.shape.rank == 2 and features.shape[1] == 1:
        features = features[:, 0]
    if features.shape.rank != 1:
        raise ValueError(
            f"Expected a 1-d critic output of shape [batch, 1] for this loss. Received: `{name}.shape={features.shape}`"
        )
    return tf.cast(features, tf.float32)


def scalar(value, name):
    """A scalar tensor as float32; ValueError naming ``name`` for anything else."""
    value = tf.convert_to_tensor(value)
    if value.shape.rank not in (0, None):
        raise ValueError(f"Expected `{name}` to be a scalar. Received: `{name}.shape={value.shape}`")
    return tf.cast(value, tf.float32)


def seed_pair(seed):
    """An int32 [2] stateless seed (see :mod:`mmd_keras.rng`)."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    if seed.shape != (2,):
        raise ValueError(f"Expected `seed` an int32 tensor of shape [2]. Received: `seed.shape={seed.shape}`")
    return seed


def non_negative(value, name):
    """A Python number ≥ 0 as float; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"Expected `{name}` to be a non-negative number. Received: `{name}={value!r}`")
    return float(value)


def boolean(value, name):
    """A Python/NumPy bool as bool; ValueError naming ``name`` otherwise (no truthy strings)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"Expected `{name}` to be True or False. Received: `{name}={value!r}`")
    return bool(value)
