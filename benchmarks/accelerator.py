"""Train-step throughput on a GPU or TPU: mixed bfloat16 / float16 and XLA, images/s and % of peak.

Run from the repository root on the accelerator machine::

    python -m benchmarks.accelerator                     # every precision × XLA on/off
    python -m benchmarks.accelerator --reduced           # tiny networks (the CPU test runs this)
    python -m benchmarks.accelerator --tpu=my-tpu        # a TPU node (default: the TPU VM's own)

Cases: paper 3's Table S1 joint MMD-rep step (``dcgan_s1`` 32 px, PICO critic, batch 64) and
paper 1's MNIST step (``dcgan_p1`` 32 px, rq* kernel, witness GP + L2, 5 critic steps), each
under the Keras policies ``float32``, ``mixed_bfloat16`` and (GPU only) ``mixed_float16``, with
``jit_compile`` off and on. On a TPU the step runs under ``TPUStrategy`` (one replica per core,
global batch 64 split across them). Each case is warmed up, then the cases are timed round-robin.

% of peak: the step's dense FLOPs (counted from its graph on the host, :mod:`benchmarks.flops`)
per second over the device's **measured** dense matmul rate in the policy's compute dtype
(8192² on GPU/TPU, float32 accumulation), and over the nominal peak of :data:`NOMINAL_TFLOPS`
when the device name matches one there.
"""

import sys

import keras
import tensorflow as tf

from benchmarks import common
from benchmarks import flops as flops_lib
from mmd_keras import distribute

#: Nominal dense peak (TFLOP/s) by device-name fragment and compute dtype (vendor data sheets).
NOMINAL_TFLOPS = {
    "H100": {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0},
    "A100": {"bfloat16": 312.0, "float16": 312.0, "float32": 19.5},
    "L4": {"bfloat16": 121.0, "float16": 121.0, "float32": 30.3},
    "T4": {"float16": 65.0, "float32": 8.1},
    "V100": {"float16": 125.0, "float32": 15.7},
    "TPU v4": {"bfloat16": 275.0},
    "TPU v5 lite": {"bfloat16": 197.0},
}
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def device_kind():
    """``("TPU" | "GPU" | "CPU", name)`` of the first accelerator TF sees."""
    for kind in ("TPU", "GPU"):
        devices = tf.config.list_logical_devices(kind)
        if devices:
            details = {}
            if kind == "GPU":
                details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            return kind, details.get("device_name", devices[0].name)
    return "CPU", common.cpu_model()


def nominal_peak(name, dtype):
    """Nominal TFLOP/s of ``name`` in ``dtype`` from :data:`NOMINAL_TFLOPS`, or None."""
    for fragment, peaks in NOMINAL_TFLOPS.items():
        if fragment.lower() in name.lower():
            return peaks.get(dtype)
    return None


def strategy_for(kind, tpu=None):
    """``TPUStrategy`` on a TPU (``tpu``: a TPU name/``grpc://`` address, None: the VM's own
    TPU, ``"local"``), else the default strategy. Without ``"local"`` TF's resolver asks for a
    TPU name unless ``TPU_NAME`` is set, so the TPU goes through :func:`distribute.create_strategy`."""
    if kind == "TPU":
        return distribute.create_strategy("tpu", tpu=tpu)
    return tf.distribute.get_strategy()


def build_case(case, strategy, reduced):
    """(step callable, FLOPs per step) of one case under its policy and jit setting."""
    from mmd_keras import losses, networks
    from mmd_keras.models import MMDGAN

    keras.mixed_precision.set_global_policy(case["policy"])
    try:
        if reduced:
            size, channels, batch, arch, out = 16, 1, 8, "small", {"output_dim": 16}
        else:
            size, channels, batch, arch, out = 32, 3 if case["step"] == "s1_joint" else 1, 64, None, {}
        with strategy.scope():
            if case["step"] == "s1_joint":
                arch = arch or "dcgan_s1"
                generator = networks.build_generator(arch, image_size=size, channels=channels)
                critic = networks.build_critic(arch, image_size=size, channels=channels, output_dim=16)
                model = MMDGAN(generator, critic, critic_schedule="joint", seed=0)
                model.compile(loss=losses.get("repulsive"))
            else:
                arch = arch or "dcgan_p1"
                widths = {} if reduced else {"widths": (16, 32, 64, 128)}
                generator = networks.build_generator(arch, image_size=size, channels=channels,
                                                     latent_dim=100 if not reduced else 32)
                critic = networks.build_critic(arch, image_size=size, channels=channels, output_dim=16,
                                               **widths)
                model = MMDGAN(generator, critic, latent_dim=generator.input_shape[-1],
                               latent_distribution="uniform", critic_schedule="fixed",
                               critic_steps=5, clip_norm=1.0, seed=0)
                model.compile(loss=losses.get("mmd", kernel="rq_dot", gradient_penalty_weight=1.0,
                                              activation_penalty_weight=1.0))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    real = tf.random.stateless_uniform([batch, size, size, channels], [0, 1], -1.0, 1.0)
    step = tf.function(model.train_step, jit_compile=case["jit"])
    gflop = flops_lib.function_flops(step, tf.TensorSpec(real.shape, tf.float32))["total"] / 1e9
    if strategy is tf.distribute.get_strategy():
        return (lambda: step(real)["generator_loss"]), gflop, batch
    distributed = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.split(real, ctx.num_replicas_in_sync)[ctx.replica_id_in_sync_group])
    run = tf.function(lambda r: strategy.run(model.train_step, args=(r,)))
    return (lambda: strategy.reduce("MEAN", run(distributed)["generator_loss"], axis=None)), gflop, batch


def matmul_rate(dtype, size):
    """Measured dense matmul FLOP/s on the default device in ``dtype``."""
    a = tf.random.normal([size, size], dtype=tf.float32)
    a = tf.cast(a, dtype)
    matmul = tf.function(lambda x: tf.reduce_sum(tf.cast(tf.matmul(x, x), tf.float32)))
    matmul(a).numpy()
    best = min(common.time_call(lambda: matmul(a), lambda r: r.numpy()) for _ in range(5))
    return 2.0 * size ** 3 / best


def plan(kind, reduced):
    policies = [p for p in POLICIES if not (p == "mixed_float16" and kind != "GPU")]
    steps = ("s1_joint",) if reduced else ("s1_joint", "paper1_mnist")
    return [{"step": s, "policy": p, "jit": j, "name": f"{s}/{p}/{'xla' if j else 'graph'}"}
            for s in steps for p in policies for j in (False, True)]


def run(reduced, repeats, log=common.log, tpu=None):
    kind, name = device_kind()
    strategy = strategy_for(kind, tpu)
    cases = plan(kind, reduced)
    candidates, info = {}, {}
    for case in cases:
        log(f"  building {case['name']}")
        fn, gflop, batch = build_case(case, strategy, reduced)
        candidates[case["name"]], info[case["name"]] = fn, (gflop, batch)
    timings = common.interleaved_medians(candidates, repeats, warmup=1, sync=lambda out: out.numpy(), log=log)
    size = 512 if reduced or kind == "CPU" else 8192
    rates = {p: matmul_rate(tf.bfloat16 if "bfloat16" in p else tf.float16 if "float16" in p else tf.float32,
                            size) for p in {c["policy"] for c in cases}}
    rows = []
    for case in cases:
        gflop, batch = info[case["name"]]
        seconds = timings[case["name"]]["median_s"]
        dtype = case["policy"].replace("mixed_", "")
        nominal = nominal_peak(name, dtype)
        rows.append({**case, **timings[case["name"]], "batch": batch, "images_per_s": batch / seconds,
                     "gflop_per_step": gflop, "tflops": gflop / seconds / 1e3,
                     "pct_of_measured_matmul": 100 * gflop * 1e9 / seconds / rates[case["policy"]],
                     "nominal_peak_tflops": nominal,
                     "pct_of_nominal_peak": None if nominal is None else 100 * gflop / seconds / 1e3 / nominal})
    return {"benchmark": "accelerator", "reduced": reduced, "device_kind": kind, "device": name,
            "replicas": strategy.num_replicas_in_sync, "machine": common.machine_info(),
            "matmul_tflops": {p: r / 1e12 for p, r in rates.items()}, "cases": rows,
            "load_average_end": common.load_average()}


def print_report(record):
    print(f"\n== {record['device_kind']} {record['device']} ({record['replicas']} replica(s)); matmul TFLOP/s "
          + ", ".join(f"{p} {v:.2f}" for p, v in record["matmul_tflops"].items()))
    print(common.format_table(
        ["case", "ms/step", "images/s", "GFLOP/step", "TFLOP/s", "% matmul", "% nominal"],
        [[r["name"], 1e3 * r["median_s"], r["images_per_s"], r["gflop_per_step"], r["tflops"],
          r["pct_of_measured_matmul"], r["pct_of_nominal_peak"]] for r in record["cases"]]))


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--reduced", action="store_true", help="tiny networks at 16 px, batch 8 (CPU test)")
    parser.add_argument("--tpu", default=None,
                        help="TPU name or grpc:// address (default: the Cloud TPU VM's own TPU)")
    args = parser.parse_args(argv)
    record = run(args.reduced or args.quick, args.repeats or (1 if args.reduced else 5), tpu=args.tpu)
    path = common.write_json(record, args.output or common.default_output("accelerator", args.reduced))
    print_report(record)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
