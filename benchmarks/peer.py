"""The library's steps against a PyTorch peer, and paper 1's MNIST step, timed round-robin.

Run from the repository root::

    python -m benchmarks.peer --quick       # S1 joint step and paper 1's MNIST step: library vs eager PyTorch
    python -m benchmarks.peer               # + XLA, torch.compile, the other conv implementation

Cases (all in one process, warmed up, then timed round-robin; medians):

* ``library/joint/graph`` (``/xla``): the library's paper-3 Table S1 step — ``dcgan_s1``
  32 px, batch 64, PICO critic, MMD-rep (Gaussian σ = 1, 16-d features), the joint update —
  exactly :mod:`benchmarks.train_step`'s case ``mmd_rep/joint``;
* ``torch/joint/eager`` (``/compiled``): :mod:`benchmarks.peer_torch`, the same step in
  PyTorch (``torch.compile`` where it works; a failure is recorded, not fatal);
* ``library/paper1_mnist[/phases]``: paper 1's MNIST step as ``configs/mnist_mmd_rqstar.cfg``
  builds it at 32 px (the issue's measurement; the config trains at 28) — ``dcgan_p1`` × 1
  channel, generator widths 512…64 ("64 filters"), critic 16·(1, 2, 4, 8) ("16 filters"), rq*
  kernel, witness GP + L2 penalty, 5 critic steps, clipping 1, batch 64 — with the layers'
  default implementation (``"auto"``) and (full run) with the other one (``"phases"`` where
  "auto" picks TF's kernels, ``"native"`` where it picks the phases);
* ``torch/paper1_mnist/eager`` (``/compiled``): :mod:`benchmarks.peer_torch_mmdgp`, the same
  step in PyTorch (tests replay a whole library step in it). ``torch.compile`` cannot run it:
  AOTAutograd has no double backward, which the gradient penalty needs; the failure is recorded.

The dense FLOPs of each step are counted (the library's from its graph, PyTorch's with its
``FlopCounterMode``), so the time ratio is read against the work ratio.
"""

import sys

import tensorflow as tf

from benchmarks import common
from benchmarks import flops as flops_lib
from benchmarks import peer_torch, peer_torch_mmdgp, train_step
from mmd_keras.layers import conv

PAPER1_FLAGS = ["--flagfile=configs/mnist_mmd_rqstar.cfg", "--image_size=32", "--critic_widths=16,32,64,128",
                "--generator_widths=512,256,128,64", "--workdir=/tmp/mmd_keras_peer_unused"]
#: The PyTorch peers by step name (cases ``torch/<step>/eager|compiled``): ``make``, ``step_flops``.
TORCH_PEERS = {"joint": peer_torch, "paper1_mnist": peer_torch_mmdgp}
#: The issue's measurement of paper 1's MNIST step before this work (graph mode, Eigen kernels).
PAPER1_BEFORE_S = 6.7


def library_joint(jit):
    case = dict(loss="mmd_rep", critic_steps=1, jit=jit, sn_mode="pico", batch=64, small_critic=False,
                joint=True)
    step, real = train_step.build_step(case)
    return step, real


def paper1_step(implementation="auto", jit=False):
    """(tf.function train step, real batch) of paper 1's MNIST configuration."""
    from mmd_keras.app import launch, runner

    config, _ = launch.parse(["peer", *PAPER1_FLAGS])
    previous = conv.set_default_implementation(implementation)  # layers resolve it at build time
    try:
        model = runner.build_model(config)
    finally:
        conv.set_default_implementation(previous)
    real = tf.random.stateless_uniform([64, 32, 32, 1], [0, 1], -1.0, 1.0)
    return tf.function(model.train_step, jit_compile=jit), real


def plan(quick):
    """name -> zero-argument builder of ``(callable, library step or None, real or None)``."""
    cases = {"library/joint/graph": lambda: (*library_joint(False),),
             "torch/joint/eager": lambda: (peer_torch.make(False), None),
             "library/paper1_mnist": lambda: (*paper1_step("auto"),),
             "torch/paper1_mnist/eager": lambda: (peer_torch_mmdgp.make(False), None)}
    if not quick:
        cases["library/joint/xla"] = lambda: (*library_joint(True),)
        cases["torch/joint/compiled"] = lambda: (peer_torch.make(True), None)
        cases["torch/paper1_mnist/compiled"] = lambda: (peer_torch_mmdgp.make(True), None)
        # The other implementation than "auto" picks here, for the before/after of the change.
        other = "native" if conv.default_implementation() == "phases" else "phases"
        cases[f"library/paper1_mnist/{other}"] = lambda: (*paper1_step(other),)
    return cases


def run(quick, repeats, log=common.log):
    machine = common.machine_info()
    # The machine's dense matmul rate through TF, measured in the same process: the steps'
    # GFLOP/s are read against it (issue 16's "≥ 80 % of the matmul rate" target).
    peak = common.matmul_peak()
    candidates, gflop, failed = {}, {}, {}
    for name, build in plan(quick).items():
        log(f"  building {name}")
        try:
            built = build()
        except Exception as error:  # torch.compile on a machine without a compiler, etc.
            failed[name] = f"{type(error).__name__}: {error}"[:300]
            continue
        if name.startswith("library"):
            step, real = built
            candidates[name] = (lambda s=step, r=real: s(r)["generator_loss"].numpy())
            gflop[name] = flops_lib.function_flops(step, tf.TensorSpec(real.shape, tf.float32))["total"] / 1e9
        else:
            candidates[name] = built[0]
            gflop[name] = TORCH_PEERS[name.split("/")[1]].step_flops() / 1e9
    # Warm-up failures of torch.compile are recorded and the case dropped.
    for name in [n for n in candidates if n.endswith("compiled")]:
        try:
            candidates[name]()
        except Exception as error:
            failed[name] = f"{type(error).__name__}: {error}"[:300]
            del candidates[name]
    timings = common.interleaved_medians(candidates, repeats, warmup=1, log=log)
    rows = [{"case": name, **timings[name], "gflop_per_step": gflop[name],
             "gflops": gflop[name] / timings[name]["median_s"],
             "fraction_of_matmul_peak": gflop[name] * 1e9 / timings[name]["median_s"] / peak["best_flops"]}
            for name in candidates]
    by = {r["case"]: r["median_s"] for r in rows}

    def ratio(a, b):
        return by[a] / by[b] if a in by and b in by else None

    ratios = {"library graph / torch eager": ratio("library/joint/graph", "torch/joint/eager"),
              "library xla / torch eager": ratio("library/joint/xla", "torch/joint/eager"),
              "library graph / torch compiled": ratio("library/joint/graph", "torch/joint/compiled"),
              "paper1 phases / native": (ratio("library/paper1_mnist/phases", "library/paper1_mnist")
                                         or ratio("library/paper1_mnist", "library/paper1_mnist/native"))}
    best_paper1 = min((by[n] for n in by if n.startswith("library/paper1")), default=None)
    # The library's best implementation against the eager peer (torch.compile cannot run this step).
    ratios["paper1 library / torch eager"] = (best_paper1 / by["torch/paper1_mnist/eager"]
                                              if best_paper1 and "torch/paper1_mnist/eager" in by else None)
    return {"benchmark": "peer", "quick": quick, "machine": machine, "peak": peak, "onednn": conv.onednn_enabled(),
            "default_implementation": conv.default_implementation(),
            "load_average_end": common.load_average(), "cases": rows, "failed": failed, "ratios": ratios,
            "paper1_speedup_vs_6_7_s": None if best_paper1 is None else PAPER1_BEFORE_S / best_paper1}


def print_report(record):
    print(f"\n== library vs PyTorch peer; load {record['machine']['load_average']} -> "
          f"{record['load_average_end']}; oneDNN {record['onednn']}, conv implementation "
          f"{record['default_implementation']!r}")
    print(f"matmul peak (float32, {record['peak']['size']}², best of 10): "
          f"{record['peak']['best_flops'] / 1e9:.0f} GFLOP/s")
    print(common.format_table(["case", "median s", "min s", "warm-up s", "GFLOP/step", "GFLOP/s", "of matmul peak"],
                              [[r["case"], r["median_s"], r["min_s"], r["warmup_s"], r["gflop_per_step"],
                                r["gflops"], r["fraction_of_matmul_peak"]] for r in record["cases"]]))
    print(common.format_table(["ratio (time)", "value"], [[k, v] for k, v in record["ratios"].items()]))
    if record["paper1_speedup_vs_6_7_s"] is not None:
        print(f"paper 1 MNIST step: {record['paper1_speedup_vs_6_7_s']:.2f}x faster than the issue's 6.7 s")
    for name, error in record["failed"].items():
        print(f"not run: {name}: {error}")


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    record = run(args.quick, args.repeats or (3 if args.quick else 5))
    path = common.write_json(record, args.output or common.default_output("peer", args.quick))
    print_report(record)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
