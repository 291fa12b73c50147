"""Where a train step's time goes: TensorFlow profiler, op-level self time by category.

Run from the repository root::

    python -m benchmarks.profile_step                       # Table S1 joint MMD-rep step, graph
    python -m benchmarks.profile_step --case mmd_rep/c1 --xla
    python -m benchmarks.profile_step --case paper1_mnist           # paper 1's MNIST step (benchmarks.peer)

Traces one warmed-up step with ``tf.profiler.experimental`` and converts the trace with the
profiler's own ``framework_op_stats`` tool (the table TensorBoard's profile plugin shows). Self
times are summed over the host threads (so they add up to more than the wall time when ops run in
parallel) and grouped into :data:`CATEGORIES` by op type and op name; ``IDLE`` is the profiler's
own idle time of the executor threads.
"""

import glob
import json
import sys
import tempfile
import time

import tensorflow as tf

from benchmarks import common, train_step

# (category, predicate on (op type, op name)) — first match wins.
CATEGORIES = (
    ("transposed conv (forward)", lambda t, n: "BackpropInput" in t and "gradient_tape" not in n),
    ("conv input gradient", lambda t, n: "BackpropInput" in t),
    ("conv filter gradient", lambda t, n: "BackpropFilter" in t),
    ("conv forward", lambda t, n: "Conv2D" in t or t.endswith("Conv")),
    ("matmul", lambda t, n: "MatMul" in t),
    ("optimizer (Adam)", lambda t, n: "adam" in n.lower() or "Assign" in t or "optimizer" in n.lower()),
    ("spectral norm (power iteration, σ)", lambda t, n: "sn_" in n or "spectral" in n.lower()),
    ("activation gradients", lambda t, n: t.endswith("Grad")),
    ("casts", lambda t, n: t == "Cast"),
    ("idle", lambda t, n: t == "IDLE"),
)


def categorize(op_type, name):
    for category, matches in CATEGORIES:
        if matches(op_type, name):
            return category
    return "other element-wise / data movement"


def op_stats(step, real, logdir):
    """Rows ``{type, name, self_us, occurrences}`` of one profiled call of ``step(real)``."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

    tf.profiler.experimental.start(logdir)
    step(real)["generator_loss"].numpy()
    tf.profiler.experimental.stop()
    path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
    data, ok = _pywrap_profiler_plugin.xspace_to_tools_data([path], "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"The profiler could not convert {path}")
    table = json.loads(data)[0]
    cols = [c["id"] for c in table["cols"]]
    rows = []
    for raw in table["rows"]:
        row = {c: (v or {}).get("v") for c, v in zip(cols, raw["c"])}
        rows.append({"type": row["type"], "name": row["operation"], "self_us": row["total_self_time"],
                     "occurrences": row["occurrences"]})
    return rows


def breakdown(rows):
    """Per category: self milliseconds and share of the summed self time."""
    total = sum(r["self_us"] for r in rows) or 1.0
    out = {}
    for r in rows:
        cat = categorize(r["type"], r["name"])
        out.setdefault(cat, 0.0)
        out[cat] += r["self_us"]
    return {k: {"ms": v / 1e3, "share": v / total}
            for k, v in sorted(out.items(), key=lambda item: -item[1])}


#: Paper 1's MNIST step (``benchmarks.peer.paper1_step``: 5 critic steps, witness GP + L2, 32 px).
PAPER1_CASE = "paper1_mnist"


def run(case_name, jit):
    if case_name == PAPER1_CASE:
        from benchmarks import peer

        step, real = peer.paper1_step("auto", jit=jit)
    else:
        loss, schedule = case_name.split("/")
        case = dict(loss=loss, critic_steps=int(schedule[1:]) if schedule.startswith("c") else 1, jit=jit,
                    sn_mode="pico", batch=64, small_critic=False, joint=schedule == "joint")
        step, real = train_step.build_step(case)
    for _ in range(2):
        step(real)["generator_loss"].numpy()
    start = time.perf_counter()
    step(real)["generator_loss"].numpy()
    wall = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as logdir:
        rows = op_stats(step, real, logdir)
    from mmd_keras import performance

    return {"benchmark": "profile_step", "case": case_name, "jit": jit, "wall_s": wall,
            "runtime": performance.runtime_report(), "machine": common.machine_info(),
            "breakdown": breakdown(rows),
            "top_ops": sorted(rows, key=lambda r: -r["self_us"])[:25]}


def print_report(record):
    print(f"\n== profile of {record['case']} ({'XLA' if record['jit'] else 'graph'}): step {record['wall_s']:.2f} s, "
          f"load {record['machine']['load_average']}; {record['runtime']}")
    print(common.format_table(["category", "self ms", "share %"],
                              [[k, v["ms"], 100 * v["share"]] for k, v in record["breakdown"].items()]))


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--case", default="mmd_rep/joint", help="LOSS/joint or LOSS/cN (N critic steps) on Table S1's networks, or paper1_mnist")
    parser.add_argument("--xla", action="store_true")
    args = parser.parse_args(argv)
    loss, _, schedule = args.case.partition("/")
    steps = schedule[1:] if schedule.startswith("c") else ""
    if args.case != PAPER1_CASE and (
            loss not in train_step.LOSSES or not (schedule == "joint" or (steps.isdigit() and int(steps) > 0))):
        parser.error(f"--case: expected {PAPER1_CASE!r}, LOSS/joint or LOSS/cN with LOSS in {list(train_step.LOSSES)}; "
                     f"got {args.case!r}")
    record = run(args.case, args.xla)
    path = common.write_json(record, args.output or common.default_output("profile_step", False))
    print_report(record)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
