"""TF's default thread pools vs :func:`mmd_keras.performance.configure_cpu_threads`, per step.

Run from the repository root::

    python -m benchmarks.threads [--rounds 3] [--steps 3]

Thread pools are fixed when TensorFlow's runtime starts, so each setting runs in its own
subprocess; the settings alternate (A, B, A, B, ...) so that a change of machine load hits both
alike. Each subprocess builds the paper-3 Table S1 joint MMD-rep step
(:mod:`benchmarks.train_step` case ``mmd_rep/joint/graph``), warms it up and prints the median
of ``--steps`` timed steps.
"""

import json
import os
import statistics
import subprocess
import sys

from benchmarks import common

CHILD = """
import json, statistics, sys, time
mode = sys.argv[1]
if mode == "configured":
    from mmd_keras import performance
    applied = performance.configure_cpu_threads()
else:
    applied = None
from benchmarks import train_step
case = dict(loss="mmd_rep", critic_steps=1, jit=False, sn_mode="pico", batch=64, small_critic=False, joint=True)
step, real = train_step.build_step(case)
step(real)["generator_loss"].numpy()
times = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    step(real)["generator_loss"].numpy()
    times.append(time.perf_counter() - start)
print(json.dumps({"mode": mode, "applied": applied, "median_s": statistics.median(times)}))
"""
SETTINGS = ("default", "configured")


def run(rounds, steps, log=common.log):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        env.pop(name, None)
    results = {mode: [] for mode in SETTINGS}
    applied = None
    for index in range(rounds):
        for mode in SETTINGS:
            done = subprocess.run([sys.executable, "-c", CHILD, mode, str(steps)], capture_output=True,
                                  text=True, env=env, check=True)
            out = json.loads(done.stdout.strip().splitlines()[-1])
            results[mode].append(out["median_s"])
            applied = out["applied"] or applied
            log(f"  round {index + 1}: {mode} {out['median_s']:.2f} s, load {common.load_average()}")
    medians = {mode: statistics.median(v) for mode, v in results.items()}
    return {"benchmark": "threads", "machine": common.machine_info(), "applied": applied,
            "seconds": results, "median_s": medians,
            "configured_over_default": medians["configured"] / medians["default"],
            "load_average_end": common.load_average()}


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=common.positive_int, default=3)
    parser.add_argument("--steps", type=common.positive_int, default=3)
    args = parser.parse_args(argv)
    record = run(args.rounds, args.steps)
    path = common.write_json(record, args.output or common.default_output("threads", args.quick))
    print(f"threads: default {record['median_s']['default']:.2f} s, configured {record['applied']} "
          f"{record['median_s']['configured']:.2f} s per step (ratio {record['configured_over_default']:.3f}); "
          f"load {record['machine']['load_average']} -> {record['load_average_end']}")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
