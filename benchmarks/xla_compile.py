"""HLO size and lowering time of a config's train step under XLA (``jit_compile=True``).

Run from the repository root::

    python -m benchmarks.xla_compile --config imagenet64 --image_size 32
    python -m benchmarks.xla_compile --all_configs       # every shipped config, float32 and bf16

Each case builds the model as the launcher does (``--flagfile=configs/<config>.cfg``, batch 2,
one replica, with the case's loss and critic schedule), traces ``train_step`` in a
``tf.function(jit_compile=True)`` and lowers it to HLO (``experimental_get_compiler_ir``,
stage "hlo": TensorFlow → HLO, before XLA's optimizations). Reported: HLO instructions,
convolutions, and the seconds of tracing + lowering. The HLO's size does not depend on the
image size (the same ops on other shapes), so ``--image_size 32`` measures the 64-px graph faster.

``--all_configs`` lowers every ``configs/*.cfg`` as shipped (its own loss, schedule and image
size; batch 2, one replica) under ``float32`` and ``mixed_bfloat16``, and records what the
launcher says to the same config on 2 replicas (``--strategy=mirrored --jit_compile``).
"""

import glob
import os
import re
import sys
import time

from benchmarks import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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


def measure(config_name, flags, batch_size, image_size=None):
    """``{"hlo_instructions", "hlo_convolutions", "lowering_s"}`` of one case (``image_size``
    None: the config's own)."""
    import keras
    import tensorflow as tf

    from mmd_keras.app import launch
    from mmd_keras.app.runner import build

    size = [f"--image_size={image_size}"] if image_size else []
    config, _ = launch.parse(["xla_compile", f"--flagfile={os.path.join(ROOT, 'configs', config_name + '.cfg')}",
                              f"--batch_size={batch_size}", *size, "--strategy=default",
                              "--eval_weights=", "--adaptive_lr=false"] + flags)
    keras.backend.clear_session()  # one model per case: names and graphs do not pile up
    build.set_globals(config)
    model = build.build_model(config)
    data = tf.zeros((batch_size,) + model._image_shape)
    start = time.perf_counter()
    hlo = tf.function(lambda d: model.train_step(d), jit_compile=True).experimental_get_compiler_ir(data)(
        stage="hlo")
    return {"hlo_instructions": hlo_instructions(hlo), "hlo_convolutions": hlo.count(" convolution("),
            "lowering_s": round(time.perf_counter() - start, 1)}


def two_replica_answer(config_name):
    """What the launcher's flag checks say to ``config_name`` with ``--strategy=mirrored
    --jit_compile`` (no TensorFlow device is touched): "accepted" or the error message."""
    from mmd_keras.app import launch
    from mmd_keras.app.config import ConfigError

    try:
        launch.parse(["xla_compile", f"--flagfile={os.path.join(ROOT, 'configs', config_name + '.cfg')}", "--strategy=mirrored",
                      "--jit_compile", "--eval_weights=", "--adaptive_lr=false"])
    except ConfigError as error:
        return f"refused: {error}"
    return "accepted"


def all_configs(batch_size, log):
    """Every shipped config lowered under float32 and mixed_bfloat16, plus the 2-replica answer."""
    from mmd_keras import performance

    names = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(ROOT, "configs", "*.cfg")))
    rows = {}
    for name in names:
        rows[name] = {"two_replicas": two_replica_answer(name)}
        for policy in ("float32", "mixed_bfloat16"):
            try:
                rows[name][policy] = measure(name, [f"--mixed_precision={policy}"], batch_size)
            except Exception as error:  # recorded, not hidden: a config XLA cannot lower
                rows[name][policy] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
            log(f"{name} {policy}: {rows[name][policy]}")
    return {"benchmark": "xla_compile_all_configs", "batch_size": batch_size,
            "machine": common.machine_info(), "kernel_set": performance.kernel_set(), "configs": rows}


def _cell(result):
    if "error" in result:
        return "fails: " + result["error"][:60]
    return f"{result['hlo_instructions']:,} / {result['lowering_s']} s"


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--config", default="imagenet64")
    parser.add_argument("--batch_size", type=common.positive_int, default=2)
    parser.add_argument("--image_size", type=common.positive_int, default=64)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma list of {list(CASES)}")
    parser.add_argument("--label", default="", help="a name for this code version (e.g. before/after)")
    parser.add_argument("--all_configs", action="store_true",
                        help="every configs/*.cfg as shipped, float32 and mixed_bfloat16")
    args = parser.parse_args(argv)
    if args.all_configs:
        record = all_configs(args.batch_size, common.log)
        print(common.format_table(
            ["config", "float32: HLO instr. / lowering", "mixed_bfloat16", "2 replicas + --jit_compile"],
            [[name, _cell(r["float32"]), _cell(r["mixed_bfloat16"]), r["two_replicas"][:70]]
             for name, r in record["configs"].items()]))
        path = args.output or common.default_output("xla_compile_all_configs", args.quick)
        common.write_json(record, path)
        common.log(f"wrote {path}")
        return record
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
