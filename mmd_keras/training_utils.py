"""Training helpers of `MMDGAN`: the generator EMA (the RNG moved to `mmd_keras.rng`).

Every random draw of a training step is a pure function of ``(seed, step, stream,
replica id)`` so that a run restored from a checkpoint (which saves the step counter)
replays exactly the noise of an uninterrupted run, and so that each replica of a
`tf.distribute` strategy draws its own latents.
"""

import keras

# The RNG lives in `mmd_keras.rng`; these names stay for existing imports.
from mmd_keras.rng import (  # noqa: E402,F401
    GENERATOR_INDEX, LATENT_DISTRIBUTIONS, PURPOSE_LATENTS, PURPOSE_LATENTS_2, PURPOSE_LOSS,
    sample_latents, step_seed)
from mmd_keras.rng import uniform01 as stateless_uniform01  # noqa: E402,F401


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
