"""Every random draw of the library: stateless, XLA-stable, a pure function of a seed.

One module for training (latents and the losses' noise of each step), the losses
(gradient-penalty interpolation) and generation/export (``MMDGAN.generate`` and the
SavedModel's ``sample`` signature draw the same latents for the same seed).

Why stateless and why Philox bits: a run restored from a checkpoint (which saves the step
counter) must replay exactly the noise of an uninterrupted run, each replica of a
`tf.distribute` strategy must draw its own noise, and a ``jit_compile=True`` step must draw
the same numbers as an uncompiled one. TensorFlow's float samplers differ under XLA (TF 2.21,
CPU); its full-range int32 Philox draws agree, so every float here is made from those.
"""

import tensorflow as tf

from mmd_keras import distribute
from mmd_keras.catalog import LATENT_DISTRIBUTIONS  # U[-1, 1]^d (papers 1-2), N(0, I) (paper 3)

# A stream is `4 * index + purpose`; index < 64 (critic steps; 63 is the generator step).
PURPOSE_LATENTS, PURPOSE_LATENTS_2, PURPOSE_LOSS = 0, 1, 2
GENERATOR_INDEX = 63
_REPLICA_BITS, _STREAM_BITS = 12, 8
#: Second word of the seed of `generation_latents` (keeps generation apart from training).
GENERATION_STREAM = 0x5EED


def random_bits(shape, seed):
    """Philox int32 bits ``shape`` for an int32/int64 ``[2]`` seed (identical under XLA)."""
    return tf.random.stateless_uniform(shape, seed=seed, minval=None, maxval=None,
                                       dtype=tf.int32, alg="philox")


def step_seed(seed, step, index, purpose, replica=None):
    """An int32 ``[2]`` stateless seed for one draw of one training step.

    Args:
        seed: Python int, the run seed.
        step: int64 scalar tensor, the generator step.
        index: Python int or int tensor in ``[0, 64)``, the critic-step index (`GENERATOR_INDEX` for the
            generator step).
        purpose: Python int in ``[0, 4)``, e.g. `PURPOSE_LATENTS`.
        replica: Optional int64 scalar, the replica id; defaults to the current one.

    Returns:
        int32 tensor ``[2]``, a hash of ``(seed, step, replica, index, purpose)``.
    """
    replica = tf.cast(distribute.replica_id() if replica is None else replica, tf.int64)
    stream = tf.cast(4 * index + purpose, tf.int64)  # index: Python int or int tensor (a loop)
    counter = (tf.cast(step, tf.int64) * (1 << (_REPLICA_BITS + _STREAM_BITS))
               + replica * (1 << _STREAM_BITS) + stream)
    key = tf.stack([tf.constant(seed, tf.int64), counter])
    return random_bits([2], key)


def uniform01(shape, seed):
    """Uniform samples in the open interval (0, 1), float32, from 24 random bits each."""
    bits = tf.bitwise.right_shift(tf.bitcast(random_bits(shape, seed), tf.uint32), 8)
    return (tf.cast(bits, tf.float32) + 0.5) * (1.0 / (1 << 24))


def sample_latents(num_samples, latent_dim, distribution, seed):
    """Latents ``[num_samples, latent_dim]`` float32: U[-1, 1] (papers 1-2) or N(0, I) (paper 3).

    Args:
        num_samples: int or int32 scalar tensor.
        latent_dim: int.
        distribution: "uniform" or "normal" (Box-Muller from two uniform draws).
        seed: int32/int64 ``[2]`` stateless seed.
    """
    if distribution not in LATENT_DISTRIBUTIONS:
        raise ValueError(f"Expected `distribution` one of {LATENT_DISTRIBUTIONS}. "
                         f"Received: `distribution={distribution!r}`")
    shape = tf.stack([tf.cast(num_samples, tf.int32), latent_dim])
    if distribution == "uniform":
        return 2.0 * uniform01(shape, seed) - 1.0
    u = uniform01(tf.concat([[2], shape], axis=0), seed)
    return tf.sqrt(-2.0 * tf.math.log(u[0])) * tf.cos((2.0 * 3.141592653589793) * u[1])


def generation_latents(num_samples, latent_dim, distribution, seed):
    """The latents of ``MMDGAN.generate(num_samples, seed)`` and of the SavedModel's ``sample``.

    Args:
        num_samples: int or int32 scalar tensor.
        latent_dim: int.
        distribution: "uniform" or "normal".
        seed: int or int64 scalar tensor (any value; the stream is fixed).

    Returns:
        float32 ``[num_samples, latent_dim]``.
    """
    key = tf.stack([tf.cast(seed, tf.int64), tf.constant(GENERATION_STREAM, tf.int64)])
    return sample_latents(num_samples, latent_dim, distribution, key)
