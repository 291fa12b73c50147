"""The generator's exponential moving average (EMA): a built copy of a network and its update.

`MMDGAN` keeps ``ema_generator`` (``ema_decay`` set) and uses it in `generate`, `predict` and
export; its weights are saved with the model like any other network's.
"""

import keras


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
