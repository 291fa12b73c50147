"""Shared set-up of the subprocess workers of tests/test_distribute.py.

Logical CPU devices must be configured before TensorFlow runs any op, so every
multi-device check runs in its own Python process: the worker configures
``num_devices`` virtual CPUs, runs its checks and prints one JSON line
``RESULT {...}`` that the test parses.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Run from anywhere: make the repository root importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def setup_devices(num_devices):
    """Splits the physical CPU into ``num_devices`` logical devices (before any op)."""
    tf.config.experimental.enable_tensor_float_32_execution(False)
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
    )
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def max_abs_diff(a, b):
    """Largest |a - b| over matching (nested lists of) arrays, as a Python float."""
    if isinstance(a, (list, tuple)):
        return max(max_abs_diff(x, y) for x, y in zip(a, b, strict=True))
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def emit(result):
    """Prints the one line the test reads."""
    print("RESULT " + json.dumps(result), flush=True)


def replica_values(variable):
    """Per-replica numpy values of a (Keras or tf) variable; one value off-strategy."""
    tf_variable = getattr(variable, "_value", None)
    tf_variable = variable if tf_variable is None else tf_variable
    values = getattr(tf_variable, "values", None)
    return [np.asarray(v.numpy()) for v in (values or [tf_variable])]


def replica_spread(variables):
    """Largest difference between any replica's copy of any variable and replica 0's."""
    spread = 0.0
    for variable in variables:
        copies = replica_values(variable)
        spread = max([spread] + [max_abs_diff(c, copies[0]) for c in copies])
    return spread


def progress(message):
    """A timestamped line on stderr (shows where a slow worker spends its time)."""
    import time

    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
