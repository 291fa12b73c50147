"""Shared pieces of the network builders: argument validation and the SN layer factory."""

import math

import keras

from mmd_keras import layers as sn_layers
from mmd_keras.layers import conv as conv_layers

SN_MODES = ("none", "pim", "pico", "constraint")
#: Generator batch norm: off, per-replica statistics, or statistics of the global batch
#: (all-reduced across tf.distribute replicas, so a multi-replica run normalizes like one
#: device on the concatenated batch).
BATCH_NORM_MODES = (False, True, "synchronized")


def check_batch_norm(value):
    """Returns ``value`` if it is one of ``BATCH_NORM_MODES``; else ``ValueError``."""
    if not any(value is mode or (isinstance(value, str) and value == mode) for mode in BATCH_NORM_MODES):
        raise ValueError(f"Expected `batch_norm` to be one of {list(BATCH_NORM_MODES)}. "
                         f"Received: `batch_norm={value!r}`")
    return value


def batch_norm_layer(mode, name):
    """A ``BatchNormalization`` layer for a generator with ``batch_norm=mode`` (truthy)."""
    return keras.layers.BatchNormalization(synchronized=(mode == "synchronized"), name=name)


def check_int(value, arg, minimum=1):
    """Returns ``value`` if it is an int ≥ ``minimum``; else ``ValueError`` naming ``arg``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Expected `{arg}` to be an int >= {minimum}. Received: `{arg}={value!r}`")
    return value


def check_widths(widths, length, arg="widths"):
    """Returns ``widths`` as a tuple of ``length`` positive ints; else ``ValueError``."""
    widths = tuple(widths)
    if len(widths) != length or any(
        isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths
    ):
        raise ValueError(
            f"Expected `{arg}` to be {length} positive ints. Received: `{arg}={widths!r}`"
        )
    return widths


def check_image_size(image_size, divisor, arch, minimum=None):
    """``image_size`` must be a positive multiple of ``divisor`` (≥ ``minimum``)."""
    minimum = minimum or divisor
    check_int(image_size, "image_size")
    if image_size % divisor or image_size < minimum:
        raise ValueError(
            f"Expected `image_size` to be a multiple of {divisor} (>= {minimum}) for "
            f"arch={arch!r}. Received: `image_size={image_size}`"
        )
    return image_size


def power_of_two_steps(image_size, start, arch):
    """Number ``k ≥ 1`` with ``image_size = start·2^k``; else ``ValueError`` naming image_size."""
    check_int(image_size, "image_size")
    k = round(math.log2(image_size / start)) if image_size >= start else 0
    if k < 1 or start * 2**k != image_size:
        raise ValueError(
            f"Expected `image_size` = {start}·2^k (k >= 1) for arch={arch!r}. "
            f"Received: `image_size={image_size}`"
        )
    return k


class LayerFactory:
    """Makes Conv2D / Conv2DTranspose / Dense layers with one SN setting for a whole network.

    Args:
        sn_mode: "none", "pim", "pico" (``SNConv2D`` … with ``C = pico_gain^(1/num_sn_layers)``)
            or "constraint" (plain layers with :class:`SpectralNormConstraint`).
        learned_gain: γ of paper 2 (needs "pim" or "pico").
        num_sn_layers: L, the number of normalized layers in the network (for C).
        pico_gain: C^L (64 in paper 3's code).
        power_iterations: per training call.
        constraint_target: σ bound of the projection constraint.
    """

    def __init__(self, sn_mode="none", learned_gain=False, num_sn_layers=1, pico_gain=64.0,
                 power_iterations=1, constraint_target=1.0):
        if sn_mode not in SN_MODES:
            raise ValueError(
                f"Expected `sn_mode` to be one of {SN_MODES}. Received: `sn_mode={sn_mode!r}`"
            )
        if learned_gain and sn_mode not in ("pim", "pico"):
            raise ValueError(
                "Expected `sn_mode` 'pim' or 'pico' with `learned_gain=True`. "
                f"Received: `sn_mode={sn_mode!r}`"
            )
        if not pico_gain > 0:
            raise ValueError(f"Expected `pico_gain` > 0. Received: `pico_gain={pico_gain!r}`")
        self.sn_mode = sn_mode
        self.sn_kwargs = {}
        self.constraint = None
        if sn_mode in ("pim", "pico"):
            self.sn_kwargs = dict(
                sn_mode=sn_mode, learned_gain=learned_gain, power_iterations=power_iterations,
                pico_multiplier=float(pico_gain) ** (1.0 / num_sn_layers),
            )
        elif sn_mode == "constraint":
            self.constraint = sn_layers.SpectralNormConstraint(target=constraint_target)

    def _make(self, sn_class, keras_class, *args, **kwargs):
        if self.sn_kwargs:
            return sn_class(*args, **kwargs, **self.sn_kwargs)
        return keras_class(*args, kernel_constraint=self.constraint, **kwargs)

    def conv(self, filters, kernel_size, strides=1, name=None):
        return self._make(sn_layers.SNConv2D, conv_layers.Conv2D, filters, kernel_size,
                          strides=strides, padding="same", name=name)

    def deconv(self, filters, kernel_size, strides=2, name=None):
        return self._make(sn_layers.SNConv2DTranspose, conv_layers.Conv2DTranspose, filters,
                          kernel_size, strides=strides, padding="same", name=name)

    def dense(self, units, name=None):
        return self._make(sn_layers.SNDense, keras.layers.Dense, units, name=name)

