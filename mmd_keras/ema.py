"""The generator's exponential moving average (EMA): a built copy of a network and its update.

`MMDGAN` keeps ``ema_generator`` (``ema_decay`` set) and uses it in `generate`, `predict` and
export; its weights are saved with the model like any other network's. The copy is named
``ema_generator`` (``model.summary()`` and ``model.get_layer`` tell it from the generator) and is
not trainable (no optimizer updates it; the summary's trainable count is the generator's and
the critic's). Saved layouts do not depend on either: ``.keras``/``save_weights`` files and
`tf.train.Checkpoint` key the copy by the attribute ``ema_generator``, not by its name.
"""

import keras


def clone_network(network, name=None, trainable=True):
    """A built copy of ``network`` (same architecture, same weights, separate variables).

    Args:
        network: a built `keras.Model`.
        name: the copy's name (default: the network's). Its layers keep their names.
        trainable: the copy's ``trainable`` flag (False for a shadow network that only
            `update_ema` writes).
    """
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
    if name is not None:
        copy.name = name
    copy.trainable = trainable
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
