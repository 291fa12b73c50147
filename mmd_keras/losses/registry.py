"""The loss registry: ``get(name | GANLoss | config dict, **params)`` and ``serialize``."""

from mmd_keras.losses.baseline_objectives import CramerLoss, HingeLoss, NonSaturatingLoss, SobolevLoss, WGANGPLoss
from mmd_keras.losses.kernel_objectives import (
    BoundedMMDLoss,
    BoundedRepulsiveLoss,
    GCMMDLoss,
    MMDLoss,
    RepGPLoss,
    RepulsiveLoss,
    SMMDLoss,
    SWGANLoss,
)
from mmd_keras.losses.objectives import GANLoss

LOSSES = {
    cls.name: cls
    for cls in (MMDLoss, RepulsiveLoss, BoundedRepulsiveLoss, BoundedMMDLoss, SMMDLoss, SWGANLoss, RepGPLoss,
                GCMMDLoss, WGANGPLoss, CramerLoss, SobolevLoss, HingeLoss, NonSaturatingLoss)
}


def get(identifier, **params):
    """Returns a GANLoss.

    Args:
      identifier: a name in ``LOSSES``, a :class:`GANLoss` (returned as is), or a
        config dict ``{"class_name": name, "config": {...}}`` (see :func:`serialize`).
      **params: constructor arguments for a name.

    Raises:
      ValueError: unknown name (lists the accepted ones) or invalid parameters.
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
        raise ValueError(f"Expected `loss` to be one of {sorted(LOSSES)}. Received: `loss={identifier!r}`")
    try:
        return LOSSES[identifier](**params)
    except TypeError as error:
        raise ValueError(f"Invalid parameters for loss {identifier!r}: {error}. Received: `params={params}`") from None


def serialize(loss):
    """Config dict ``{"class_name": loss.name, "config": loss.get_config()}``."""
    return {"class_name": loss.name, "config": loss.get_config()}
