"""The loss registry: the one list of loss names and of what the command line needs per loss.

``LOSSES`` maps each name to its class; each class declares, as class attributes,
``parameters`` (the keywords ``get(name, **params)`` accepts), ``required_output_dim``
(1 when the loss needs a 1-d critic), ``takes_kernel`` (True for the MMD family) and
``num_fake_batches``. :func:`describe` gives these facts as plain data.

Serialization is Keras's (as for :mod:`mmd_keras.kernels`): every loss class is registered
(``mmd_keras>MMDLoss``, ...), :func:`serialize` is `keras.saving.serialize_keras_object` and
:func:`deserialize` its inverse; a config holds the constructor arguments, not the state values
(those are variables, saved with the model's weights).
"""

import keras

from mmd_keras.errors import ArgumentError
from mmd_keras.losses.base import GANLoss
from mmd_keras.losses.baselines import CramerLoss, HingeLoss, NonSaturatingLoss, SobolevLoss, WGANGPLoss
from mmd_keras.losses.gcmmd import GCMMDLoss
from mmd_keras.losses.mmd_family import (
    BoundedMMDLoss,
    BoundedRepulsiveLoss,
    MMDLoss,
    RepGPLoss,
    RepulsiveLoss,
    SMMDLoss,
    SWGANLoss,
)

LOSSES = {
    cls.name: cls
    for cls in (MMDLoss, RepulsiveLoss, BoundedRepulsiveLoss, BoundedMMDLoss, SMMDLoss, SWGANLoss, RepGPLoss,
                GCMMDLoss, WGANGPLoss, CramerLoss, SobolevLoss, HingeLoss, NonSaturatingLoss)
}


def describe(name):
    """What the CLI needs to know about loss ``name`` (no TensorFlow work).

    Returns:
      dict with ``parameters`` (tuple of accepted keywords),
      ``scalar_critic`` (needs a 1-d critic), ``takes_kernel``, ``num_fake_batches``.
    """
    cls = LOSSES[name]
    return {"parameters": cls.parameters, "scalar_critic": cls.required_output_dim == 1,
            "takes_kernel": cls.takes_kernel, "num_fake_batches": cls.num_fake_batches}


def _check_parameters(name, params):
    cls = LOSSES[name]
    for key in params:
        if key not in cls.parameters:
            raise ArgumentError(
                key, f"Invalid parameters for loss {name!r}: expected keys among {list(cls.parameters)}. "
                f"Received: `{key}={params[key]!r}`", owner="loss")


def get(identifier, **params):
    """Returns a GANLoss.

    Args:
      identifier: a name in ``LOSSES``, a :class:`GANLoss` (returned as is), or a config
        dict (see :func:`deserialize`).
      **params: constructor arguments for a name (``LOSSES[name].parameters``).

    Raises:
      ArgumentError: a parameter the loss does not take (``argument`` names it; the
        message lists the accepted ones).
      ValueError: unknown name (lists the accepted ones), invalid parameter values, or
        parameters given with an instance or a config dict.
    """
    if isinstance(identifier, (GANLoss, dict)):
        if params:
            raise ValueError("Expected no extra parameters with a GANLoss instance or config dict. "
                             f"Received: `params={params}`")
        return identifier if isinstance(identifier, GANLoss) else deserialize(identifier)
    if not isinstance(identifier, str) or identifier not in LOSSES:
        raise ArgumentError("loss", f"Expected `loss` to be one of {sorted(LOSSES)}. Received: `loss={identifier!r}`",
                            owner="loss")
    _check_parameters(identifier, params)
    return LOSSES[identifier](**params)


def serialize(loss):
    """Keras serialization dict of a loss (`keras.saving.serialize_keras_object`): its class
    (``registered_name`` ``mmd_keras>MMDLoss``, ...) and constructor arguments."""
    if not isinstance(loss, GANLoss):
        raise ValueError(f"Expected a GANLoss. Received: `loss={loss!r}`")
    return keras.saving.serialize_keras_object(loss)


_BY_CLASS_NAME = {cls.__name__: cls for cls in LOSSES.values()}


def deserialize(config):
    """The loss of a config dict: :func:`serialize`'s output, or the short form
    ``{"class_name": <a name in LOSSES or a loss class name>, "config": {...}}``.

    Raises:
      ArgumentError: a short form with a parameter the loss does not take.
      ValueError: anything that is not the config of a loss.
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("Expected a loss config dict with keys 'class_name' and 'config'. "
                         f"Received: `config={config!r}`")
    cls = LOSSES.get(config["class_name"]) or _BY_CLASS_NAME.get(config["class_name"])
    if cls is not None and set(config) <= {"class_name", "config"}:
        params = dict(config.get("config") or {})
        _check_parameters(cls.name, params)
        return cls.from_config(params)
    try:
        loss = keras.saving.deserialize_keras_object(config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Expected the config of a mmd_keras loss ({error}). Received: `config={config!r}`") from None
    if not isinstance(loss, GANLoss):
        raise ValueError(f"Expected the config of a mmd_keras loss. Received: `config={config!r}`")
    return loss
