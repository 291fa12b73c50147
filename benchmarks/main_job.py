"""The main job end to end: wall time of ``python -m mmd_keras.launch`` against its training time.

The launcher runs as a subprocess, as a user runs it (default: ``configs/digits.cfg``, the
offline default run: 3,000 steps, KID every 1,000 steps, export at the end). Every line it prints
is time-stamped on arrival, so the wall time splits into phases:

* ``startup``: process start to the run directory's announcement (Python and TensorFlow
  imports, flag checks, preflight, building the networks and the dataset);
* ``training``: the launcher's own "Trained to generator step N in X s" (``model.fit``, with the
  periodic KID evaluations and checkpoints it runs);
* ``end``: what follows training (final report, export of the generator) to process exit.

Target: wall ≤ 1.3 × training. Usage::

    python -m benchmarks.main_job                      # digits config, one run
    python -m benchmarks.main_job --repeats 3 --steps 1000
"""

import os
import re
import subprocess
import sys
import tempfile
import time

from benchmarks import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINED = re.compile(r"Trained to generator step (\d+) in ([0-9.]+) s")
TARGET_RATIO = 1.3


def run_once(config, steps, extra_flags, log):
    """One launcher run; returns its phases (seconds) and the ratio wall / training."""
    with tempfile.TemporaryDirectory() as workdir:
        # Workdir and export both in the temporary folder: nothing is left in the checkout.
        command = [sys.executable, "-u", "-m", "mmd_keras.launch", f"--flagfile={config}",
                   f"--workdir={workdir}/run", f"--export_dir={workdir}/export", *extra_flags]
        if steps:
            command.append(f"--steps={steps}")
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        lines = [(time.perf_counter() - start, line.rstrip()) for line in process.stdout]
        code = process.wait()
        wall = time.perf_counter() - start
    if code != 0:
        tail = "\n".join(text for _, text in lines[-20:])
        raise RuntimeError(f"launcher exited with {code}:\n{tail}")
    announced = next(t for t, text in lines if text.startswith("Run directory:"))
    trained_at, match = next((t, TRAINED.search(text)) for t, text in lines if TRAINED.search(text))
    training = float(match.group(2))
    last_line = lines[-1][0] if lines else wall
    record = {"wall_s": wall, "training_s": training, "steps": int(match.group(1)),
              "startup_s": announced, "end_s": wall - trained_at,
              "exit_after_last_line_s": wall - last_line,
              "ratio_wall_to_training": wall / training,
              # Every line the launcher printed (TensorFlow's log lines left out), with its
              # arrival time: where the time between the phases went.
              "timeline": [(round(t, 2), text[:160]) for t, text in lines
                           if not text.startswith(("I0000", "W0000", "E0000", "WARNING"))]}
    log(f"  wall {wall:.1f} s, training {training:.1f} s, startup {announced:.1f} s, "
        f"after training {record['end_s']:.1f} s: ratio {record['ratio_wall_to_training']:.3f}")
    return record


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.cfg", help="flagfile of the run")
    parser.add_argument("--steps", type=common.positive_int, default=None,
                        help="override the config's --steps")
    args = parser.parse_args(argv)
    repeats = args.repeats or 1
    machine = common.machine_info()
    common.log(f"main job: {args.config}, {repeats} run(s), load {machine['load_average']}")
    runs = [run_once(args.config, args.steps, [], common.log) for _ in range(repeats)]
    ratios = sorted(run["ratio_wall_to_training"] for run in runs)
    median = ratios[len(ratios) // 2]
    record = {"machine": machine, "config": args.config, "runs": runs,
              "load_average_after": common.load_average(),
              "targets": {"wall_within_1_3x_training": {"median_ratio": median,
                                                        "target": TARGET_RATIO,
                                                        "met": median <= TARGET_RATIO}}}
    print(common.format_table(["run", "wall s", "training s", "startup s", "after training s", "ratio"],
                              [[i, r["wall_s"], r["training_s"], r["startup_s"], r["end_s"],
                                r["ratio_wall_to_training"]] for i, r in enumerate(runs)]))
    path = args.output or common.default_output("main_job", args.quick)
    common.log(f"wrote {common.write_json(record, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
