"""Old name of :mod:`mmd_keras.layers.power_iteration` (it holds PIM and PICO); kept as a shim."""

from mmd_keras.layers.power_iteration import (  # noqa: F401
    EPSILON,
    conv2d_operator,
    conv2d_transpose_operator,
    dense_operator,
    l2_normalize,
    matrix_power_iteration,
    matrix_sigma,
    operator_power_iteration,
    operator_sigma,
)
