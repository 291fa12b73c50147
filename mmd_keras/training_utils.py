"""Training helpers of `MMDGAN`: stateless seeds, latent sampling and the generator EMA.

Every random draw of a training step is a pure function of ``(seed, step, stream,
replica id)`` so that a run restored from a checkpoint (which saves the step counter)
replays exactly the noise of an uninterrupted run, and so that each replica of a
`tf.distribute` strategy draws its own latents.
"""

import keras
import tensorflow as tf

from mmd_keras import distribute

LATENT_DISTRIBUTIONS = ("uniform", "normal")

# A stream is `4 * index + purpose`; index < 64 (critic steps; 63 is the generator step).
PURPOSE_LATENTS, PURPOSE_LATENTS_2, PURPOSE_LOSS = 0, 1, 2
GENERATOR_INDEX = 63
_REPLICA_BITS, _STREAM_BITS = 12, 8


def step_seed(seed, step, index, purpose, replica=None):
    """An int32 ``[2]`` stateless seed for one draw of one training step.

    Args:
        seed: Python int, the run seed.
        step: int64 scalar tensor, the generator step.
        index: Python int in ``[0, 64)``, the critic-step index (`GENERATOR_INDEX` for the
            generator step).
        purpose: Python int in ``[0, 4)``, e.g. `PURPOSE_LATENTS`.
        replica: Optional int64 scalar, the replica id; defaults to the current one.

    Returns:
        int32 tensor ``[2]``, a hash of ``(seed, step, replica, index, purpose)``.
    """
    replica = tf.cast(distribute.replica_id() if replica is None else replica, tf.int64)
    stream = tf.constant(4 * index + purpose, tf.int64)
    counter = (tf.cast(step, tf.int64) * (1 << (_REPLICA_BITS + _STREAM_BITS))
               + replica * (1 << _STREAM_BITS) + stream)
    key = tf.stack([tf.constant(seed, tf.int64), counter])
    return _random_bits([2], key)


def _random_bits(shape, seed):
    """Philox int32 bits: unlike TF's float samplers, identical with and without XLA."""
    return tf.random.stateless_uniform(shape, seed=seed, minval=None, maxval=None, dtype=tf.int32,
                                       alg="philox")


def stateless_uniform01(shape, seed):
    """Uniform samples in the open interval (0, 1), float32, from 24 random bits each.

    ``tf.random.stateless_uniform`` draws different floats under ``jit_compile=True`` than
    without it (TF 2.21, CPU); its full-range int32 draws agree, so floats are made from those
    and a compiled run replays the noise of an eager one.
    """
    bits = tf.bitwise.right_shift(tf.bitcast(_random_bits(shape, seed), tf.uint32), 8)
    return (tf.cast(bits, tf.float32) + 0.5) * (1.0 / (1 << 24))


def sample_latents(num_samples, latent_dim, distribution, seed):
    """Latents ``[num_samples, latent_dim]`` float32: U[-1, 1] (papers 1-2) or N(0, I) (paper 3).

    Args:
        num_samples: int or int32 scalar tensor.
        latent_dim: int.
        distribution: "uniform" or "normal" (Box-Muller from two uniform draws).
        seed: int32/int64 ``[2]`` stateless seed.
    """
    shape = tf.stack([num_samples, latent_dim])
    if distribution == "uniform":
        return 2.0 * stateless_uniform01(shape, seed) - 1.0
    u = stateless_uniform01(tf.concat([[2], shape], axis=0), seed)
    return tf.sqrt(-2.0 * tf.math.log(u[0])) * tf.cos((2.0 * 3.141592653589793) * u[1])


def clone_network(network):
    """A built copy of ``network`` (same architecture, same weights, separate variables)."""
    try:
        copy = keras.models.clone_model(network)
    except Exception:  # Subclassed models without a clone-able graph.
        copy = network.__class__.from_config(network.get_config())
    if not copy.built:
        copy.build(network.inputs[0].shape if getattr(network, "inputs", None) else None)
    if len(copy.weights) != len(network.weights):
        raise ValueError(
            "Expected a generator that keras.models.clone_model can copy for the EMA. "
            f"Received: `generator={network.name}` whose copy has {len(copy.weights)} "
            f"weights instead of {len(network.weights)}.")
    for target, source in zip(copy.weights, network.weights):
        target.assign(source)
    return copy


def update_ema(ema_network, network, decay):
    """One EMA update: trainable ``e <- decay * e + (1 - decay) * w``; other weights copied.

    Non-trainable weights (batch-norm moving statistics, spectral-norm vectors) are copied
    so that the EMA generator normalizes exactly like the generator it averages.

    Args:
        ema_network: the shadow network (variables updated in place).
        network: the trained network.
        decay: Python float in (0, 1).
    """
    trainable = {id(v) for v in network.trainable_weights}
    for target, source in zip(ema_network.weights, network.weights):
        if id(source) in trainable:
            target.assign(decay * target + (1.0 - decay) * source)
        else:
            target.assign(source)
