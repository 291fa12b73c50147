"""Small helpers shared by the study scripts of ``examples/`` (public mmd_keras API only).

The scripts train several losses under one budget; these helpers keep what they share
in one place: the command-line checks (exit code 2, nothing written), the critic's output
dimension a loss needs, the optimizers, the JSON record and figure saving.
"""

import argparse
import json
import os
import platform
import time

#: Critic output dimension of the MMD losses (papers 1 and 3); 1-d losses say so themselves.
DEFAULT_OUTPUT_DIM = 16


def critic_output_dim(loss, default=DEFAULT_OUTPUT_DIM):
    """The critic output dimension ``loss`` requires, else ``default``.

    Asked of the loss object (its ``required_output_dim``), so the scripts follow the
    library's rule for SWGAN, WGAN-GP and hinge without repeating it (SMMD takes any size,
    so it gets the MMD losses' 16 outputs; paper 2's image runs used 1).
    """
    required = getattr(loss, "required_output_dim", None)
    return int(required) if required is not None else int(default)


def adam(learning_rate, beta_2, steps=None, decay_at=None):
    """Adam(β1 = 0.5, ``beta_2``); with ``decay_at`` (a fraction of ``steps``) the rate is
    divided by 10 from that step on (the ring8 test's schedule: it lets the generator settle
    into the modes after the exploration phase)."""
    import keras

    if decay_at is None:
        return keras.optimizers.Adam(learning_rate, beta_1=0.5, beta_2=beta_2)
    boundary = max(1, int(decay_at * steps))
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([boundary], [learning_rate, learning_rate / 10])
    return keras.optimizers.Adam(schedule, beta_1=0.5, beta_2=beta_2)


def check_choices(parser, flag, values, accepted):
    """``parser.error`` (exit code 2, before anything is written) on a value not in ``accepted``."""
    unknown = [v for v in values if v not in accepted]
    if unknown:
        parser.error(f"Expected `{flag}` values among {list(accepted)}. Received: `{flag} {' '.join(unknown)}`")
    if len(set(values)) != len(values):
        parser.error(f"Expected distinct `{flag}` values. Received: `{flag} {' '.join(map(str, values))}`")


def check_positive(parser, flag, value):
    if value is not None and value < 1:
        parser.error(f"Expected `{flag}` >= 1. Received: `{flag} {value}`")


def check_seeds(parser, seeds):
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        parser.error(f"Expected one or more distinct `--seeds` >= 0. Received: `--seeds {' '.join(map(str, seeds))}`")


def check_out(parser, out):
    """The output folder must be creatable (checked before any training)."""
    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        parser.error(f"Expected `--out` to be a directory. Received: `--out {out}` (an existing file)")
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.access(path, os.W_OK | os.X_OK):
        parser.error(f"Expected `--out` to be a writable directory. Received: `--out {out}`")


def study_parser(doc, losses, default_steps, quick_steps, default_seeds):
    """The options every study shares: ``--out``, ``--quick``, ``--steps``, ``--seeds``, ``--losses``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the JSON and the PNGs")
    parser.add_argument("--quick", action="store_true", help=f"reduced size: {quick_steps} steps, first seed")
    parser.add_argument("--steps", type=int, default=None, help=f"generator steps per run (default {default_steps})")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(default_seeds))
    parser.add_argument("--losses", nargs="+", default=list(losses), help=f"among {', '.join(losses)}")
    return parser


def check_study_args(parser, args, losses, default_steps, quick_steps):
    """Checks the shared options (``parser.error`` → exit code 2) and applies ``--quick``."""
    check_choices(parser, "--losses", args.losses, losses)
    check_seeds(parser, args.seeds)
    check_positive(parser, "--steps", args.steps)
    check_out(parser, args.out)
    if args.steps is None:
        args.steps = quick_steps if args.quick else default_steps
    if args.quick:
        args.seeds = args.seeds[:1]
    return args


def print_flush(message):
    print(message, flush=True)


def machine():
    """What the numbers were measured on (recorded in every JSON): CPU and its SIMD flags,
    TensorFlow's kernel set (oneDNN or Eigen), cores usable and the load."""
    import keras

    from mmd_keras import performance

    model, flags = performance.cpu_description()
    runtime = performance.runtime_report()
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpu": model, "cpu_simd_flags": flags, "kernel_set": performance.kernel_set(),
            "conv_implementation": runtime["conv_implementation"],
            "intra_op_threads": runtime["intra_op_threads"],
            "cpu_count": os.cpu_count(), "keras": keras.__version__,
            # `taskset` pins a study to some cores; TensorFlow sizes its thread pools from these.
            "cpus_usable": runtime["available_cpus"],
            "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None}


def write_json(path, record):
    with open(path, "w") as f:
        json.dump(record, f, indent=1, sort_keys=False, default=float)
        f.write("\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def save_figure(figure, path, dpi=80):
    """Saves a matplotlib figure as PNG and closes it; returns the path."""
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return path


class Stopwatch:
    """Wall-clock seconds since construction (``elapsed()``)."""

    def __init__(self):
        self.start = time.perf_counter()

    def elapsed(self):
        return round(time.perf_counter() - self.start, 2)
