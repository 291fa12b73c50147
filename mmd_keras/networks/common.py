"""Shared pieces of the network builders: the SN layer factory and batch norm.

The argument checks live in :mod:`mmd_keras.networks.checks` (TF-free).
"""

import keras

from mmd_keras import layers as sn_layers
from mmd_keras.layers import conv as conv_layers
from mmd_keras.networks.checks import check_sn


def kernel_initializers(initialization):
    """``{"conv", "deconv", "dense"}`` → kernel initializer of ``initialization`` (one of
    `checks.INITIALIZATIONS`, checked by the builders; None: Keras's default)."""
    if initialization == "keras":
        return {"conv": None, "deconv": None, "dense": None}
    return {"conv": keras.initializers.TruncatedNormal(stddev=0.02),
            "deconv": keras.initializers.RandomNormal(stddev=0.02),
            "dense": keras.initializers.RandomNormal(stddev=0.01)}


def batch_norm_layer(mode, name, momentum=0.99):
    """A ``BatchNormalization`` layer for a generator with ``batch_norm=mode`` (truthy).

    ``momentum``: of the moving statistics (Keras's 0.99; paper 1's official code 0.9).
    """
    return keras.layers.BatchNormalization(synchronized=(mode == "synchronized"), momentum=momentum,
                                           name=name)


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
                 power_iterations=1, constraint_target=1.0, initialization="keras"):
        self.initializers = kernel_initializers(initialization)
        settings = check_sn(sn_mode, learned_gain, pico_gain, power_iterations,
                            constraint_target)
        sn_mode, pico_gain = settings["sn_mode"], settings["pico_gain"]
        constraint_target = settings["constraint_target"]
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

    def _make(self, sn_class, keras_class, *args, role, **kwargs):
        initializer = self.initializers[role]
        if initializer is not None:  # A fresh instance per layer: Keras initializers are stateful.
            kwargs["kernel_initializer"] = initializer.from_config(initializer.get_config())
        if self.sn_kwargs:
            return sn_class(*args, **kwargs, **self.sn_kwargs)
        return keras_class(*args, kernel_constraint=self.constraint, **kwargs)

    def conv(self, filters, kernel_size, strides=1, name=None):
        return self._make(sn_layers.SNConv2D, conv_layers.Conv2D, filters, kernel_size,
                          strides=strides, padding="same", name=name, role="conv")

    def deconv(self, filters, kernel_size, strides=2, name=None):
        return self._make(sn_layers.SNConv2DTranspose, conv_layers.Conv2DTranspose, filters,
                          kernel_size, strides=strides, padding="same", name=name, role="deconv")

    def dense(self, units, name=None):
        return self._make(sn_layers.SNDense, keras.layers.Dense, units, name=name, role="dense")

