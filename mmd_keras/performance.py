"""CPU runtime settings chosen at start-up: thread pools, and a report of what TF runs with.

TensorFlow sizes two thread pools from the machine: ``intra_op`` (threads inside one op, e.g. a
convolution) and ``inter_op`` (ops run concurrently), both defaulting to the number of logical
CPUs. On a small machine the product oversubscribes the cores: two independent convolutions of
a GAN step (the critic on real and fake halves, a gradient and the optimizer) each start a full
set of intra-op threads. :func:`configure_cpu_threads` sets ``inter_op = 1`` and ``intra_op``
= the CPUs this process may use (``os.sched_getaffinity``, which also respects ``taskset``
and container CPU sets, unlike ``os.cpu_count``) — **only** when the user set nothing (neither
``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` / ``OMP_NUM_THREADS`` nor
``tf.config.threading``). It must run before TensorFlow executes its first op.

:func:`runtime_report` states what matters for speed on this process: oneDNN on/off (TF
enables its oneDNN CPU kernels by default only on x86 CPUs with AVX-512/AMX features; with the
Eigen kernels a transposed convolution runs 10–70× below a forward convolution,
docs/performance.md), the convolution implementation the library's layers pick
(:mod:`mmd_keras.layers.conv`), the thread pools and the visible devices.
"""

import logging
import os

USER_THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
#: TensorFlow reads this once, when it is imported: "1" runs its oneDNN CPU kernels, "0" Eigen's.
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
#: Where oneDNN is TensorFlow's default only on some CPUs: x86-64 builds turn it on by default
#: on CPUs with AVX-512 and leave Eigen on AVX2-only CPUs.
X86_MACHINES = ("x86_64", "amd64", "i686", "i386")
_ONEDNN_HOW = (f"set {ONEDNN_VARIABLE}=1 before TensorFlow is imported (the first line of a notebook: "
               f"`import os; os.environ['{ONEDNN_VARIABLE}'] = '1'`); `python -m mmd_keras.launch` does it")
_noted = {"kernel_set": False}


def is_x86():
    """Whether this is an x86 CPU (where TensorFlow ships both kernel sets)."""
    import platform

    return platform.machine().lower() in X86_MACHINES


def prefer_onednn(environ=None):
    """Asks TensorFlow for its oneDNN CPU kernels unless the user chose (call before importing TF).

    On x86 CPUs without AVX-512 TensorFlow defaults to its Eigen kernels; its oneDNN kernels
    pass the same numerical tests here and run the papers' steps faster (docs/performance.md).
    A value the user set in ``TF_ENABLE_ONEDNN_OPTS`` is kept; non-x86 machines are left alone.

    Args:
        environ: the environment to change (default ``os.environ``; tests pass a dict).

    Returns:
        The value in effect afterwards ("1", the user's value, or None when left unset).
    """
    environ = os.environ if environ is None else environ
    if ONEDNN_VARIABLE not in environ and is_x86():
        environ[ONEDNN_VARIABLE] = "1"
    return environ.get(ONEDNN_VARIABLE)


def cpu_description():
    """``(model, simd_flags)``: the CPU's model name and its SIMD flags that decide TensorFlow's
    kernels (``avx*``, ``fma``, ``amx*``, sorted), from /proc/cpuinfo; elsewhere
    ``(platform.processor(), [])``. Benchmarks and studies record both with every result."""
    import platform

    model, flags = platform.processor() or "unknown", []
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = sorted(f for f in value.split() if f.startswith(("avx", "fma", "amx")))
                    break
    except OSError:
        pass
    return model, flags


def kernel_set():
    """``"oneDNN"`` or ``"Eigen"``: the CPU kernels TensorFlow runs in this process."""
    from mmd_keras.layers import conv

    return "oneDNN" if conv.onednn_enabled() else "Eigen"


def note_kernel_set(log=None):
    """Once per process: on an x86 CPU running TF's Eigen kernels, one line saying how to get
    the faster oneDNN kernels (unless the user chose Eigen with TF_ENABLE_ONEDNN_OPTS=0).

    Returns the line, or None when there is nothing to say (or it was said already)."""
    if _noted["kernel_set"] or not is_x86() or os.environ.get(ONEDNN_VARIABLE) == "0":
        return None
    _noted["kernel_set"] = True
    if kernel_set() == "oneDNN":
        return None
    line = (f"mmd_keras: TensorFlow runs its Eigen CPU kernels on this x86 CPU; its oneDNN kernels "
            f"are faster here: {_ONEDNN_HOW}.")
    (log or logging.getLogger("mmd_keras").warning)(line)
    return line


def available_cpus():
    """CPUs this process may run on (affinity mask where the OS has one, else ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def configure_cpu_threads(intra_op=None, inter_op=1, environ=None):
    """Sizes TF's CPU thread pools unless the user did; returns what was applied (or None).

    Args:
        intra_op: threads per op; None → :func:`available_cpus`.
        inter_op: ops run concurrently (default 1: one op at a time uses every core).
        environ: the environment to inspect (default ``os.environ``; tests pass a dict).

    Returns:
        ``{"intra_op": n, "inter_op": m}`` if applied, None if the user had set threads (by
        environment or ``tf.config.threading``) or TF's runtime was already initialized.

    Raises:
        ValueError: ``intra_op`` / ``inter_op`` not a positive int.
    """
    import tensorflow as tf

    for name, value in (("intra_op", intra_op), ("inter_op", inter_op)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"Expected `{name}` to be a positive int or None. Received: `{name}={value!r}`")
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in USER_THREAD_VARIABLES):
        return None
    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() or threading.get_inter_op_parallelism_threads():
        return None
    applied = {"intra_op": intra_op or available_cpus(), "inter_op": inter_op}
    try:
        threading.set_intra_op_parallelism_threads(applied["intra_op"])
        threading.set_inter_op_parallelism_threads(applied["inter_op"])
    except RuntimeError:  # the runtime already started: the pools are fixed for this process
        return None
    return applied


def runtime_report():
    """dict: oneDNN on/off, the layers' convolution implementation, thread pools, devices."""
    import tensorflow as tf

    from mmd_keras.layers import conv

    threading = tf.config.threading
    return {
        "onednn": conv.onednn_enabled(),
        "conv_implementation": conv.default_implementation(),
        "intra_op_threads": threading.get_intra_op_parallelism_threads() or "default",
        "inter_op_threads": threading.get_inter_op_parallelism_threads() or "default",
        "available_cpus": available_cpus(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }
