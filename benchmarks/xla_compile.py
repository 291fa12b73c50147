"""HLO size and lowering time of a config's train step under XLA (``jit_compile=True``).

Run from the repository root::

    python -m benchmarks.xla_compile --config imagenet64 --image_size 32

Each case builds the model as the launcher does (``--flagfile=configs/<config>.cfg``, batch 2,
one replica, with the case's loss and critic schedule), traces ``train_step`` in a
``tf.function(jit_compile=True)`` and lowers it to HLO (``experimental_get_compiler_ir``,
stage "hlo": TensorFlow → HLO, before XLA's optimizations). Reported: HLO instructions,
convolutions, and the seconds of tracing + lowering. The HLO's size does not depend on the
image size (the same ops on other shapes), so ``--image_size 32`` measures the 64-px graph faster.
"""

import re
import sys
import time

from benchmarks import common

#: name -> launcher flags replacing the config's loss / critic schedule.
CASES = {
    "mmd_nogp/c1": ["--loss=mmd", "--loss_params=gradient_penalty_weight=0", "--critic_schedule=fixed",
                    "--critic_steps=1"],
    "smmd/c1": ["--loss=smmd", "--critic_schedule=fixed", "--critic_steps=1"],
    "smmd/c5": ["--loss=smmd", "--critic_schedule=fixed", "--critic_steps=5"],
    "smmd/paper2": ["--loss=smmd", "--critic_schedule=paper2"],
}


def hlo_instructions(hlo):
    """Instruction lines (``name = op(...)``) of an HLO module's text."""
    return sum(1 for line in hlo.splitlines() if re.match(r"\s+(ROOT )?%?[\w.\-]+ = ", line))


def measure(config_name, flags, batch_size, image_size):
    """``{"hlo_instructions", "hlo_convolutions", "lowering_s"}`` of one case."""
    import tensorflow as tf

    from mmd_keras.app import launch
    from mmd_keras.app.runner import build

    config, _ = launch.parse(["xla_compile", f"--flagfile=configs/{config_name}.cfg",
                              f"--batch_size={batch_size}", f"--image_size={image_size}", "--strategy=default",
                              "--eval_weights=", "--adaptive_lr=false"] + flags)
    build.set_globals(config)
    model = build.build_model(config)
    data = tf.zeros((batch_size,) + model._image_shape)
    start = time.perf_counter()
    hlo = tf.function(lambda d: model.train_step(d), jit_compile=True).experimental_get_compiler_ir(data)(
        stage="hlo")
    return {"hlo_instructions": hlo_instructions(hlo), "hlo_convolutions": hlo.count(" convolution("),
            "lowering_s": round(time.perf_counter() - start, 1)}


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--config", default="imagenet64")
    parser.add_argument("--batch_size", type=common.positive_int, default=2)
    parser.add_argument("--image_size", type=common.positive_int, default=64)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma list of {list(CASES)}")
    parser.add_argument("--label", default="", help="a name for this code version (e.g. before/after)")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"--cases must name cases in {list(CASES)}; got {unknown}")
    record = {"benchmark": "xla_compile", "label": args.label, "config": args.config,
              "batch_size": args.batch_size, "image_size": args.image_size, "machine": common.machine_info(),
              "note": "2 cores shared with other processes: seconds are indicative, counts exact",
              "cases": {}}
    for name in cases:
        record["cases"][name] = measure(args.config, CASES[name], args.batch_size, args.image_size)
        common.log(f"{name}: {record['cases'][name]}")
    rows = [[name, r["hlo_instructions"], r["hlo_convolutions"], r["lowering_s"]] for name, r in record["cases"].items()]
    print(common.format_table(["case", "HLO instructions", "convolutions", "lowering s"], rows))
    path = args.output or common.default_output(f"xla_compile_{args.config}_{args.label or 'run'}", args.quick)
    common.write_json(record, path)
    common.log(f"wrote {path}")
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
