"""The benchmarks' timing harness: warm-up, interleaved medians, machine facts, matmul peak, JSON.

Numbers taken on a shared machine drift with the load of other processes. Two rules keep the
*ratios* fair: everything runs in one process, and :func:`interleaved_medians` times the
candidates round-robin (A, B, C, A, B, C, ...) so a load change hits every candidate alike.
Each record carries ``os.getloadavg()`` before and after, so numbers taken under contention
say so.
"""

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mmd_keras import performance  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def load_average():
    """``os.getloadavg()`` (1, 5, 15 min) rounded, or None where unsupported."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def cpu_model():
    """The CPU model string of /proc/cpuinfo (Linux), else `platform.processor()`."""
    return performance.cpu_description()[0]


def machine_info():
    """Host, CPU and its SIMD flags, TensorFlow's CPU kernel set, core count, library versions
    and the current load average (recorded with every result)."""
    import keras

    model, flags = performance.cpu_description()
    return {
        "host": socket.gethostname(), "cpu": model, "cpu_simd_flags": flags,
        "kernel_set": performance.kernel_set(),
        "cpu_count": os.cpu_count(), "cpus_usable": performance.available_cpus(),
        "python": platform.python_version(), "tensorflow": tf.__version__,
        "keras": keras.__version__, "numpy": np.__version__,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "load_average": load_average(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def time_call(fn, sync=None):
    """Seconds of one ``fn()``; ``sync(result)`` (e.g. ``.numpy()``) waits for async work."""
    start = time.perf_counter()
    result = fn()
    if sync is not None:
        sync(result)
    return time.perf_counter() - start


def summarize(seconds):
    """Median, min, max and count of a list of durations (seconds)."""
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
            "repeats": len(seconds)}


def interleaved_medians(candidates, repeats, warmup=1, sync=None, log=None):
    """Times every candidate ``repeats`` times, round-robin, after ``warmup`` untimed calls each.

    Args:
        candidates: dict name -> zero-argument callable.
        repeats: timed calls per candidate (median reported).
        warmup: untimed calls per candidate first (tracing, compilation, caches).
        sync: optional ``sync(result)`` to wait for the result.
        log: optional ``log(str)`` for progress.

    Returns:
        dict name -> :func:`summarize` record plus ``warmup_s`` (the first call: trace/compile).
    """
    warm, times = {}, {name: [] for name in candidates}
    for name, fn in candidates.items():
        start = time.perf_counter()
        for _ in range(warmup):
            result = fn()
            if sync is not None:
                sync(result)
        warm[name] = time.perf_counter() - start
        if log:
            log(f"  warm-up {name}: {warm[name]:.1f} s")
    for round_index in range(repeats):
        for name, fn in candidates.items():
            times[name].append(time_call(fn, sync))
        if log:
            log(f"  round {round_index + 1}/{repeats} done, load {load_average()}")
    return {name: {**summarize(times[name]), "warmup_s": warm[name]} for name in candidates}


def matmul_peak(size=2048, repeats=10, dtype=tf.float32):
    """Dense matmul FLOP/s of this machine through TensorFlow (the same runtime as the steps).

    Returns:
        dict with ``best_flops`` (best of ``repeats``: the achievable peak), ``median_flops``,
        the size and the load average.
    """
    a = tf.random.normal([size, size], dtype=dtype)
    b = tf.random.normal([size, size], dtype=dtype)
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    seconds = [time_call(lambda: matmul(a, b), lambda r: r.numpy()) for _ in range(repeats)]
    flops = 2.0 * size ** 3
    return {"size": size, "dtype": dtype.name, "best_flops": flops / min(seconds),
            "median_flops": flops / statistics.median(seconds), "load_average": load_average()}


def write_json(record, path):
    """Writes ``record`` as indented JSON, creating the folder; returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(record, f, indent=2, sort_keys=False, default=_json_default)
    return path


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value)}")


def format_table(header, rows):
    """A fixed-width text table (docs/performance.md's numbers are pasted from it)."""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value):
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return "" if value is None else str(value)


def positive_int(text):
    """argparse type: an int >= 1 (bad values exit with code 2 and a clear message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def int_list(text):
    """argparse type: comma-separated ints >= 1, e.g. ``64,256``."""
    return [positive_int(part) for part in text.split(",") if part]


def base_parser(description):
    """Shared flags: ``--quick``, ``--repeats``, ``--output`` (JSON path)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a subset of cases")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help="timed repeats per case (default: 2 quick, 5 full)")
    parser.add_argument("--output", default=None, help="JSON path (default: benchmarks/results/...)")
    return parser


def default_output(name, quick):
    """``benchmarks/results/<name>[_quick].json``."""
    return os.path.join(RESULTS_DIR, f"{name}{'_quick' if quick else ''}.json")


def log(message):
    """Progress on stderr (the tables go to stdout)."""
    print(message, file=sys.stderr, flush=True)
