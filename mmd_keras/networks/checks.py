"""Argument checks of the network builders; each raises ``ArgumentError`` naming the argument.

TF-free, so that ``mmd_keras.networks`` (its registries ``ARCHITECTURES`` and ``SN_MODES``) can be
imported without TensorFlow. The builders are the only callers: a value is valid exactly when
the network can be built with it (there is no second copy of these rules).
"""

import math
import numbers

from mmd_keras.errors import ArgumentError

#: Kernel initializations of the networks: Keras's defaults (Glorot-uniform kernels), or paper
#: 1's official code (mbinkowski/MMD-GAN ``gan/core/ops.py``: ``conv2d`` truncated N(0, 0.02²),
#: ``deconv2d`` N(0, 0.02²), ``linear`` N(0, 0.01²); zero biases in both).
INITIALIZATIONS = ("keras", "paper1_official")

#: ``sn_mode`` of the builders. "default" is the paper's mode of the network (critics: the
#: architecture's ``critic_sn_mode``; generators: "none"); "none", "pim" and "pico" are the
#: modes of the SN layers (``mmd_keras.layers.SN_LAYER_MODES``); "constraint" is plain layers
#: with a ``SpectralNormConstraint`` projection after each optimizer step.
SN_MODES = ("default", "none", "pim", "pico", "constraint")
#: Generator batch norm: off, per-replica statistics, or statistics of the global batch
#: (all-reduced across tf.distribute replicas, so a multi-replica run normalizes like one
#: device on the concatenated batch).
BATCH_NORM_MODES = (False, True, "synchronized")


def check_int(value, arg, minimum=1):
    """Returns ``value`` as an int if it is an integer ≥ ``minimum``; else ``ArgumentError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ArgumentError(arg, f"Expected `{arg}` to be an int >= {minimum}. "
                                 f"Received: `{arg}={value!r}`")
    return int(value)


def check_number(value, arg, minimum=0.0, inclusive=True):
    """Returns ``value`` as a float if it is a finite real ≥ (or >) ``minimum``; else ``ArgumentError``."""
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Real)
          and math.isfinite(value) and (value >= minimum if inclusive else value > minimum))
    if not ok:
        relation = ">=" if inclusive else ">"
        raise ArgumentError(arg, f"Expected `{arg}` to be a number {relation} {minimum}. "
                                 f"Received: `{arg}={value!r}`")
    return float(value)


def check_bool(value, arg):
    """Returns ``value`` if it is a bool; else ``ArgumentError``."""
    if not isinstance(value, bool):
        raise ArgumentError(arg, f"Expected `{arg}` to be True or False. Received: `{arg}={value!r}`")
    return value


def check_name(value):
    """Returns ``value`` if it is a non-empty str (a Keras model name); else ``ArgumentError``."""
    if not isinstance(value, str) or not value:
        raise ArgumentError("name", f"Expected `name` to be a non-empty str. Received: `name={value!r}`")
    return value


def check_widths(widths, length=None, arg="widths"):
    """Returns ``widths`` as a tuple of positive ints, ``length`` of them (any ≥ 1 if None)."""
    try:
        values = tuple(widths)
    except TypeError:
        values = None
    expected = f"{length}" if length is not None else "one or more"
    if (values is None or len(values) != (length or len(values)) or not values
            or any(isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1
                   for w in values)):
        raise ArgumentError(arg, f"Expected `{arg}` to be {expected} positive ints. "
                                 f"Received: `{arg}={widths!r}`")
    return tuple(int(w) for w in values)


def check_batch_norm(value):
    """Returns ``value`` if it is one of ``BATCH_NORM_MODES``; else ``ArgumentError``."""
    if not any(value is mode or (isinstance(value, str) and value == mode)
               for mode in BATCH_NORM_MODES):
        raise ArgumentError("batch_norm", f"Expected `batch_norm` to be one of "
                                          f"{list(BATCH_NORM_MODES)}. Received: `batch_norm={value!r}`")
    return value


def check_image_size(image_size, divisor, arch, minimum=None):
    """Returns ``image_size`` if it is a positive multiple of ``divisor`` (≥ ``minimum``)."""
    minimum = minimum or divisor
    check_int(image_size, "image_size")
    if image_size % divisor or image_size < minimum:
        raise ArgumentError("image_size", f"Expected `image_size` to be a multiple of {divisor} "
                                          f"(>= {minimum}) for `arch={arch!r}`. "
                                          f"Received: `image_size={image_size}`")
    return image_size


def power_of_two_steps(image_size, start, arch):
    """Number ``k ≥ 1`` with ``image_size = start·2^k``; else ``ArgumentError``."""
    check_int(image_size, "image_size")
    k = round(math.log2(image_size / start)) if image_size >= start else 0
    if k < 1 or start * 2**k != image_size:
        raise ArgumentError("image_size", f"Expected `image_size` = {start}·2^k (k >= 1) for "
                                          f"`arch={arch!r}`. Received: `image_size={image_size}`")
    return k


def check_sn(sn_mode="none", learned_gain=False, pico_gain=64.0, power_iterations=1,
             constraint_target=1.0):
    """Checks one network's SN settings (``sn_mode`` already resolved from "default").

    Returns:
        The settings as a dict (``pico_gain``/``constraint_target`` as floats).
    """
    concrete = SN_MODES[1:]
    if not isinstance(sn_mode, str) or sn_mode not in concrete:
        raise ArgumentError("sn_mode", f"Expected `sn_mode` to be one of {concrete}. "
                                       f"Received: `sn_mode={sn_mode!r}`")
    check_bool(learned_gain, "learned_gain")
    if learned_gain and sn_mode not in ("pim", "pico"):
        raise ArgumentError("sn_mode", "Expected `sn_mode` 'pim' or 'pico' with "
                                       f"`learned_gain=True`. Received: `sn_mode={sn_mode!r}`")
    return dict(sn_mode=sn_mode, learned_gain=learned_gain,
                pico_gain=check_number(pico_gain, "pico_gain", inclusive=False),
                power_iterations=check_int(power_iterations, "power_iterations"),
                constraint_target=check_number(constraint_target, "constraint_target",
                                               inclusive=False))


def check_initialization(initialization):
    """``initialization`` among :data:`INITIALIZATIONS`, else `ArgumentError`."""
    if initialization not in INITIALIZATIONS:
        raise ArgumentError("initialization", f"Expected `initialization` in {INITIALIZATIONS}. "
                            f"Received: `initialization={initialization!r}`")
    return initialization


def check_momentum(momentum):
    """``momentum`` as a float in [0, 1), else `ArgumentError` naming ``bn_momentum``."""
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0.0 <= momentum < 1.0:
        raise ArgumentError("bn_momentum", "Expected `bn_momentum` a number in [0, 1). "
                            f"Received: `bn_momentum={momentum!r}`")
    return float(momentum)
