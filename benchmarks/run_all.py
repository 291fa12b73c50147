"""Every benchmark in one process: tables, the issue's ratios and targets, one JSON file.

Run from the repository root::

    python -m benchmarks.run_all --quick          # a few minutes on a free 2-core CPU
    python -m benchmarks.run_all [--label NAME]   # writes benchmarks/results/NAME.json

Order: matmul peak, train steps (:mod:`benchmarks.train_step`), the library's step against the
PyTorch peer and paper 1's MNIST step (:mod:`benchmarks.peer`, round-robin in one run), the
transposed-convolution / input-gradient micro-benchmark (:mod:`benchmarks.conv_ops`), input
pipelines against the fastest train step's consumption (:mod:`benchmarks.input_pipeline`),
kernel cost (:mod:`benchmarks.kernel_cost`) with its share of the MMD-rep step, evaluation
(:mod:`benchmarks.evaluation`), then the matmul peak again (load drift shows as a change).
"""

import json
import os
import socket
import sys

from benchmarks import common, conv_ops, evaluation, input_pipeline, kernel_cost, peer, train_step

INPUT_TARGET = 5.0


def input_vs_step(batch_size, seconds, step_record):
    """Pipeline images/s against the fastest measured step's consumption (images/s)."""
    rates = input_pipeline.pipeline_rates(batch_size, seconds)
    fastest = min((r for r in step_record["cases"] if r["batch"] == batch_size),
                  key=lambda r: r["median_s"])
    consumption = batch_size / fastest["median_s"]
    rows = [{"pipeline": label, "images_per_s": rate * batch_size,
             "ratio_to_step": rate * batch_size / consumption} for label, rate in rates.items()]
    worst = min(row["ratio_to_step"] for row in rows)
    return {"step_case": fastest["name"], "step_images_per_s": consumption, "pipelines": rows,
            "target": INPUT_TARGET, "worst_ratio": worst, "met": worst >= INPUT_TARGET,
            "load_average": common.load_average()}


def run(quick, repeats, path=None, log=common.log):
    """All stages; with ``path``, the record so far is written after each stage (a crash or a
    kill late in a long run keeps the numbers already taken)."""
    record = {"benchmark": "run_all", "quick": quick, "machine": common.machine_info()}

    def save():
        if path:
            common.write_json(record, path)

    log("run_all: matmul peak")
    record["peak"] = common.matmul_peak()
    losses = train_step.QUICK_LOSSES if quick else tuple(train_step.LOSSES)
    record["train_step"] = train_step.run(losses, quick, repeats or (2 if quick else 3), peak=record["peak"])
    save()
    log("run_all: library vs PyTorch peer")
    record["peer"] = peer.run(quick, repeats or (3 if quick else 5))
    save()
    log("run_all: transposed convolutions and input gradients")
    record["conv_ops"] = conv_ops.run(conv_ops.QUICK if quick else tuple(conv_ops.SHAPES), 64,
                                      repeats or (3 if quick else 10))
    save()
    log("run_all: input pipelines")
    record["input_pipeline"] = input_vs_step(64, 2.0 if quick else 5.0, record["train_step"])
    save()
    step_ms = next(r["ms_per_generator_step"] for r in record["train_step"]["cases"]
                   if r["name"] == "mmd_rep/c1/graph")
    record["kernel_cost"] = kernel_cost.run([64, 512] if quick else [64, 256, 1024, 2048],
                                            [16, 256] if quick else [1, 16, 256],
                                            2 if quick else 5, step_ms=step_ms)
    save()
    record["evaluation"] = evaluation.run(50000, 10 if quick else 100, 1000, 10000 if quick else 50000,
                                          inception_batch=32, inception_batches=2 if quick else 5)
    record["peak_end"] = common.matmul_peak()
    record["load_average_end"] = common.load_average()
    record["targets"] = targets(record)
    return record


def targets(record):
    """Every target of the issue with its measured value and verdict."""
    ratios = record["train_step"]["ratios"]
    check = record["train_step"]["compiled_call_check"]
    kid = record["evaluation"]["targets"]["kid_100x1000_50k_under_5_s"]
    out = {name: {"value": ratios[name]["ratio"], "target": f"<= {ratios[name]['target']}",
                  "met": ratios[name]["met"]}
           for name in ("mmd_rep/hinge", "smmd/mmd_gp", "pico/pim (mmd_rep)")}
    out["one compiled call per generator step"] = {
        "value": f"{check['host_calls_per_step']:g} call, {check['traces']} trace, "
                 f"{check['critic_updates_per_step']:g} critic updates per call",
        "target": "1 call, 1 trace", "met": check["host_calls_per_step"] == 1 and check["traces"] == 1}
    pipe = record["input_pipeline"]
    out["input pipeline / step consumption"] = {"value": pipe["worst_ratio"], "target": f">= {INPUT_TARGET}",
                                                "met": pipe["met"]}
    out["KID 100x1000 on 50k x 2048 (s)"] = {"value": kid["value_s"], "target": "< 5", "met": kid["met"]}
    peer_ratio = record["peer"]["ratios"]["library graph / torch eager"]
    out["joint MMD-rep step / eager PyTorch"] = {
        "value": peer_ratio, "target": "<= 1.0", "met": None if peer_ratio is None else peer_ratio <= 1.0}
    speedup = record["peer"]["paper1_speedup_vs_6_7_s"]
    out["paper 1 MNIST step speed-up vs 6.7 s"] = {
        "value": speedup, "target": ">= 5", "met": None if speedup is None else speedup >= 5}
    worst = min(c["library_vs_forward"] for c in record["conv_ops"]["cases"])
    out["transposed conv / forward conv GFLOP/s (worst shape)"] = {
        "value": worst, "target": f">= {conv_ops.TARGET}", "met": worst >= conv_ops.TARGET}
    return out


def print_report(record):
    peak, peak_end = record["peak"], record["peak_end"]
    print(f"machine: {record['machine']['cpu']}, {record['machine']['cpu_count']} CPUs, "
          f"TF {record['machine']['tensorflow']}; load {record['machine']['load_average']} -> "
          f"{record['load_average_end']}; matmul peak {peak['best_flops'] / 1e9:.0f} -> "
          f"{peak_end['best_flops'] / 1e9:.0f} GFLOP/s")
    train_step.print_report(record["train_step"])
    peer.print_report(record["peer"])
    conv_ops.print_report(record["conv_ops"])
    pipe = record["input_pipeline"]
    print(f"\n== input pipeline vs {pipe['step_case']} ({pipe['step_images_per_s']:.1f} images/s), "
          f"load {pipe['load_average']}")
    print(common.format_table(["pipeline", "images/s", "x step"],
                              [[p["pipeline"], p["images_per_s"], p["ratio_to_step"]] for p in pipe["pipelines"]]))
    kernel_cost.print_report(record["kernel_cost"])
    evaluation.print_report(record["evaluation"])
    print("\n== targets")
    print(common.format_table(["target", "value", "wanted", ""],
                              [[k, v["value"], v["target"], _verdict(v["met"])]
                               for k, v in record["targets"].items()]))


def _md_table(header, rows):
    def cell(value):
        return common._cell(value).replace("|", "/")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(record):
    """docs/performance.md's tables (markdown) from a saved run_all record."""
    steps, peak = record["train_step"], record["peak"]
    end = record.get("peak_end")
    out = [f"Machine: {record['machine']['cpu']}, {record['machine']['cpu_count']} CPUs, TF "
           f"{record['machine']['tensorflow']}; load average {record['machine']['load_average']} at the start, "
           f"{record.get('load_average_end')} at the end; matmul peak {peak['best_flops'] / 1e9:.0f} GFLOP/s "
           f"(float32 {peak['size']}², best of 10"
           + (f"; {end['best_flops'] / 1e9:.0f} at the end)." if end else ")."), ""]
    out.append(_md_table(
        ["case", "ms / generator step", "images/s", "warm-up s", "GFLOP / step", "GFLOP/s", "% of peak"],
        [[r["name"], r["ms_per_generator_step"], r["images_per_s"], r["warmup_s"], r["gflop_per_step"],
          r["achieved_flops"] / 1e9, 100 * r["fraction_of_peak"]] for r in steps["cases"]]))
    out += ["", _md_table(["ratio", "time", "FLOPs", "target"],
                          [[k, v["ratio"], v["flop_ratio"], "" if v["target"] is None else f"≤ {v['target']}"]
                           for k, v in steps["ratios"].items()])]
    pipe = record["input_pipeline"]
    out += ["", _md_table(["pipeline (batch 64, 32 px)", "images/s", f"× {pipe['step_case']} consumption"],
                          [[p["pipeline"], p["images_per_s"], p["ratio_to_step"]] for p in pipe["pipelines"]])]
    kc = record["kernel_cost"]
    by_key = {}
    for row in kc["cases"]:
        by_key.setdefault((row["kernel"], row["dim"]), []).append(row)
    out += ["", _md_table(["kernel", "d"] + [f"n={n} ms" for n in kc["batches"]] + ["share of step (n=64)"],
                          [[k, d] + [r["ms"] for r in rows]
                           + [f"{100 * rows[0]['share_of_step_c1']:.2f}%" if rows[0]["share_of_step_c1"] else ""]
                           for (k, d), rows in by_key.items()])]
    ev = record["evaluation"]
    out += ["", _md_table(["evaluation", "seconds", "note"], [
        [f"KID {ev['kid']['subsets']}×{ev['kid']['subset_size']} on {ev['kid']['n']}×{ev['kid']['dim']}",
         ev["kid"]["seconds"], f"{ev['kid']['achieved_flops'] / 1e9:.1f} GFLOP/s float64"],
        [f"FID on {ev['fid']['n']}×{ev['fid']['dim']}", ev["fid"]["seconds"],
         f"statistics {ev['fid']['statistics_s']:.1f} s, sqrtm + distance {ev['fid']['sqrtm_distance_s']:.1f} s"],
        ["FID-Inception featurization (32 px → 299, batch 32)", ev["inception"]["median_s"],
         f"{ev['inception']['images_per_s']:.1f} images/s"]])]
    out += ["", _md_table(["target", "value", "wanted", ""],
                          [[k, v["value"], v["target"], _verdict(v["met"])] for k, v in record["targets"].items()])]
    return "\n".join(out)


def _verdict(met):
    return "not run" if met is None else ("met" if met else "MISSED")


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--label", default=None, help="results file name (default: the host name)")
    parser.add_argument("--markdown", default=None, metavar="JSON",
                        help="print the docs/performance.md tables of a saved run_all JSON and exit (runs nothing)")
    args = parser.parse_args(argv)
    if args.markdown:
        if not os.path.isfile(args.markdown):
            parser.error(f"--markdown: no such file {args.markdown!r}")
        with open(args.markdown) as f:
            print(markdown(json.load(f)))
        return
    if args.label is not None and (not args.label or os.sep in args.label):
        parser.error(f"--label must be a plain file name; got {args.label!r}")
    label = args.label or socket.gethostname() + ("_quick" if args.quick else "")
    path = args.output or os.path.join(common.RESULTS_DIR, f"{label}.json")
    record = run(args.quick, args.repeats, path)
    common.write_json(record, path)
    print_report(record)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
