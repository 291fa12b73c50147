"""The cost of MMD² alone, per kernel, batch size and feature dimension.

Run from the repository root::

    python -m benchmarks.kernel_cost --quick
    python -m benchmarks.kernel_cost [--batches 64,256,1024,2048] [--dims 1,16,256]

Each case times ``mmd2(real, fake, kernel)`` and its gradient with respect to both feature
batches (what a training step needs) in one `tf.function`, for batch n and feature dimension
d. The three kernel matrices make the cost ``a + b·n²`` (d enters ``b`` through one matmul):
the table gives ``t(2n)/t(n)`` (4 when the quadratic term dominates) and the least-squares
fit. With a train-step time (``--step_ms``, or from `benchmarks.run_all`) it also prints the
share of a full step that the kernel takes at batch 64 (the loss is evaluated twice per
generator step with one critic step: once per update).
"""

import sys

import numpy as np
import tensorflow as tf

from benchmarks import common
from mmd_keras import kernels
from mmd_keras.losses import estimators, mmd_family

KERNELS = {
    "rbf (paper 1, 6 sigmas)": lambda: kernels.get("rbf"),
    "rbf (sigma 1)": lambda: kernels.get("rbf", sigmas=(1.0,)),
    "rq": lambda: kernels.get("rq"),
    "rq* (rq_dot)": lambda: kernels.get("rq_dot"),
    "dot": lambda: kernels.get("dot"),
    "distance": lambda: kernels.get("distance"),
    "polynomial": lambda: kernels.get("polynomial"),
    "rbf-b (rep_b critic)": None,  # the bounded repulsive critic loss with rbf sigma 1
}


def mmd_function(kernel_name):
    """``f(real, fake) -> (value, grads)`` of the kernel's MMD² (or RBF-B critic loss)."""
    factory = KERNELS[kernel_name]
    kernel = factory() if factory is not None else kernels.get("rbf", sigmas=(1.0,))

    def value(real, fake):
        if factory is None:
            return mmd_family.repulsive_critic_loss(real, fake, kernel, 1.0, bounds=(0.25, 4.0))
        return estimators.mmd2(real, fake, kernel)

    @tf.function
    def with_gradient(real, fake):
        with tf.GradientTape() as tape:
            tape.watch([real, fake])
            v = value(real, fake)
        return v, tape.gradient(v, [real, fake])

    return with_gradient


def time_case(kernel_name, batch, dim, repeats):
    """Median seconds of value + gradient at ``[batch, dim]`` (after one warm-up call)."""
    real = tf.random.stateless_normal([batch, dim], [0, 1])
    fake = tf.random.stateless_normal([batch, dim], [0, 2]) + 0.1
    f = mmd_function(kernel_name)
    timings = common.interleaved_medians({"case": lambda: f(real, fake)}, repeats,
                                         sync=lambda out: out[0].numpy())
    return timings["case"]


def quadratic_fit(batches, seconds):
    """Least-squares ``t = a + b·n²``; returns (a, b)."""
    n2 = np.asarray(batches, np.float64) ** 2
    design = np.stack([np.ones_like(n2), n2], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, np.asarray(seconds, np.float64), rcond=None)
    return float(a), float(b)


def run(batches, dims, repeats, step_ms=None, kernel_names=None, log=common.log):
    kernel_names = kernel_names or list(KERNELS)
    machine = common.machine_info()
    log(f"kernel_cost: {len(kernel_names)} kernels x {batches} x {dims}, load {machine['load_average']}")
    rows = []
    for name in kernel_names:
        for dim in dims:
            seconds = []
            for batch in batches:
                t = time_case(name, batch, dim, repeats)
                seconds.append(t["median_s"])
                rows.append({"kernel": name, "dim": dim, "batch": batch, **t, "ms": 1e3 * t["median_s"]})
            a, b = quadratic_fit(batches, seconds) if len(batches) > 1 else (None, None)
            for row in rows[-len(batches):]:
                row["fit_a_s"], row["fit_b_s"] = a, b
                row["quadratic_share"] = None if b is None else b * row["batch"] ** 2 / (a + b * row["batch"] ** 2)
            log(f"  {name} d={dim}: " + ", ".join(f"{n}: {1e3 * s:.2f} ms" for n, s in zip(batches, seconds)))
    for row in rows:
        share = None
        if step_ms and row["batch"] == 64:
            share = 2.0 * row["ms"] / step_ms
        row["share_of_step_c1"] = share
    return {"benchmark": "kernel_cost", "machine": machine, "load_average_end": common.load_average(),
            "batches": batches, "dims": dims, "step_ms": step_ms, "cases": rows}


def print_report(record):
    print(f"\n== kernel_cost: MMD² value + gradient, load {record['machine']['load_average']} -> "
          f"{record['load_average_end']}")
    batches = record["batches"]
    header = ["kernel", "d"] + [f"n={n} ms" for n in batches]
    if len(batches) > 1:
        header += [f"t({batches[-1]})/t({batches[-2]})", "n² share at max n"]
    if record["step_ms"]:
        header.append("share of step (n=64)")
    by_key = {}
    for row in record["cases"]:
        by_key.setdefault((row["kernel"], row["dim"]), []).append(row)
    table = []
    for (kernel, dim), rows in by_key.items():
        line = [kernel, dim] + [r["ms"] for r in rows]
        if len(batches) > 1:
            line += [rows[-1]["ms"] / rows[-2]["ms"], rows[-1]["quadratic_share"]]
        if record["step_ms"]:
            share = next((r["share_of_step_c1"] for r in rows if r["batch"] == 64), None)
            line.append(None if share is None else f"{100 * share:.2f}%")
        table.append(line)
    print(common.format_table(header, table))
    n_ratio = batches[-1] / batches[-2] if len(batches) > 1 else None
    if n_ratio:
        print(f"(a purely quadratic cost gives t({batches[-1]})/t({batches[-2]}) = {n_ratio ** 2:.0f})")


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batches", type=common.int_list, default=None, help="e.g. 64,256,1024,2048")
    parser.add_argument("--dims", type=common.int_list, default=None, help="e.g. 1,16,256")
    parser.add_argument("--step_ms", type=float, default=None, help="a train step's ms (for the share)")
    args = parser.parse_args(argv)
    batches = args.batches or ([64, 512] if args.quick else [64, 256, 1024, 2048])
    dims = args.dims or ([16, 256] if args.quick else [1, 16, 256])
    if any(n < 2 for n in batches):
        parser.error(f"--batches must be >= 2 (the unbiased estimator); got {batches}")
    repeats = args.repeats or (2 if args.quick else 5)
    record = run(sorted(batches), sorted(dims), repeats, args.step_ms)
    path = common.write_json(record, args.output or common.default_output("kernel_cost", args.quick))
    print_report(record)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
