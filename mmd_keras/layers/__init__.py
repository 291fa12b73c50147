"""Spectrally normalized layers (PIM, PICO, learned gain), the projection constraint, sum pooling.

See :mod:`mmd_keras.layers.spectral_norm` for the forms and paper references.
"""

from mmd_keras.layers.constraints import SpectralNormConstraint
from mmd_keras.layers.power_iteration import (
    conv2d_operator,
    conv2d_transpose_operator,
    dense_operator,
    matrix_power_iteration,
    matrix_sigma,
    operator_power_iteration,
    operator_sigma,
)
from mmd_keras.layers.pooling import GlobalSumPooling2D
from mmd_keras.layers.spectral_norm import (
    SN_LAYER_MODES,
    SNConv2D,
    SNConv2DTranspose,
    SNDense,
    validate_sn_mode,
)

__all__ = [
    "GlobalSumPooling2D",
    "SN_LAYER_MODES",
    "SNConv2D",
    "SNConv2DTranspose",
    "SNDense",
    "SpectralNormConstraint",
    "conv2d_operator",
    "conv2d_transpose_operator",
    "dense_operator",
    "matrix_power_iteration",
    "matrix_sigma",
    "operator_power_iteration",
    "operator_sigma",
    "validate_sn_mode",
]
