"""The loss registry: the one list of loss names and of what the command line needs per loss.

``LOSSES`` maps each name to its class; each class declares, as class attributes,
``parameters`` (the keywords ``get(name, **params)`` accepts), ``required_output_dim``
(1 when the loss needs a 1-d critic), ``takes_kernel`` (True for the MMD family) and
``num_fake_batches``. :func:`describe` gives these facts as plain data.
"""

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
      identifier: a name in ``LOSSES``, a :class:`GANLoss` (returned as is), or a
        config dict ``{"class_name": name, "config": {...}}`` (see :func:`serialize`).
      **params: constructor arguments for a name (``LOSSES[name].parameters``).

    Raises:
      ArgumentError: a parameter the loss does not take (``argument`` names it; the
        message lists the accepted ones).
      ValueError: unknown name (lists the accepted ones) or invalid parameter values.
    """
    if isinstance(identifier, GANLoss):
        if params:
            raise ValueError(f"Expected no extra parameters with a GANLoss instance. Received: `params={params}`")
        return identifier
    if isinstance(identifier, dict):
        if not {"class_name", "config"} <= set(identifier):
            raise ValueError("Expected a loss config dict with keys 'class_name' and 'config'. "
                             f"Received: `identifier={identifier!r}`")
        return get(identifier["class_name"], **{**identifier["config"], **params})
    if not isinstance(identifier, str) or identifier not in LOSSES:
        raise ArgumentError("loss", f"Expected `loss` to be one of {sorted(LOSSES)}. Received: `loss={identifier!r}`",
                            owner="loss")
    _check_parameters(identifier, params)
    return LOSSES[identifier](**params)


def serialize(loss):
    """Config dict ``{"class_name": loss.name, "config": loss.get_config()}``."""
    return {"class_name": loss.name, "config": loss.get_config()}
