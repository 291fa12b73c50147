"""Milliseconds per generator step of the paper-3 Table S1 DCGAN (32 px) for every loss.

Run from the repository root::

    python -m benchmarks.train_step --quick      # 4 losses + PIM, 1 critic step
    python -m benchmarks.train_step              # 9 losses; 5 critic steps and XLA for 2 of them
    python -m benchmarks.train_step --all_critic_steps --all_xla   # the whole grid (hours on 2 cores)

Every case is an `MMDGAN` with ``networks.build_generator/build_critic("dcgan_s1")`` at
batch 64 (critic SN: PICO, the Table S1 default), ``critic_schedule="fixed"`` with 1 or 5
critic steps, its `train_step` in one `tf.function` (``jit_compile`` off or on), fed one
constant real batch so only the step is timed. All cases are built, then warmed up (trace,
compile, first call: reported as ``warmup_s``), then timed round-robin (medians). The step's
dense FLOPs are counted from its graph (:mod:`benchmarks.flops`) and compared with the
matmul peak measured in the same process.

The compiled-call check runs `fit` on a small network with 5 critic steps and counts, per
generator step, the host calls of Keras's train function, the traces of `train_step` and the
optimizer updates: one call and one trace carry all five critic updates.
"""

import sys

import tensorflow as tf

from benchmarks import common
from benchmarks import flops as flops_lib
from mmd_keras import networks
from mmd_keras.models import MMDGAN

# name -> (mmd_keras loss, loss parameters, critic output dim)
LOSSES = {
    "hinge": ("hinge", {}, 1),
    "non_saturating": ("non_saturating", {}, 1),
    "mmd_rq_star": ("mmd", {"gradient_penalty_weight": 0.0}, 16),
    "mmd_rep": ("repulsive", {}, 16),
    "mmd_rep_b": ("rep_b", {}, 16),
    "smmd": ("smmd", {}, 1),
    "swgan": ("swgan", {}, 1),
    "mmd_gp": ("mmd", {}, 16),
    "wgan_gp": ("wgan_gp", {}, 1),
}
QUICK_LOSSES = ("hinge", "mmd_rep", "smmd", "mmd_gp")
#: The default full run measures 5 critic steps and XLA for these (the rest on request):
#: one S1 step is ~330 dense GFLOP, i.e. seconds on 2 cores, and 5 critic steps five times that.
FULL_C5_LOSSES = ("mmd_rep",)
FULL_XLA_LOSSES = ("hinge", "mmd_rep")
#: Paper 1's claim is that MMD needs a smaller critic than WGAN-GP: the S1 critic at 1/4 width.
SMALL_CRITIC_WIDTHS = (16, 32, 32, 64, 64, 128, 128)


def case_name(loss, critic_steps, jit, sn_mode="pico", batch=64, small_critic=False, joint=False):
    parts = [loss, "joint" if joint else f"c{critic_steps}", "xla" if jit else "graph"]
    if sn_mode != "pico":
        parts.append(sn_mode)
    if batch != 64:
        parts.append(f"b{batch}")
    if small_critic:
        parts.append("small_critic")
    return "/".join(parts)


def plan_cases(losses, quick, all_critic_steps=False, all_xla=False):
    """The list of case dicts for ``losses`` (names of `LOSSES`).

    Every loss at 1 critic step; 5 critic steps and XLA for `FULL_C5_LOSSES` /
    `FULL_XLA_LOSSES` in a full run (every loss with ``all_critic_steps`` / ``all_xla``);
    PICO vs PIM (at batch 64 and 128) and paper 3's joint update on MMD-rep; MMD-GP with a
    quarter-width critic.
    """
    cases = []

    def add(loss, critic_steps=1, jit=False, sn_mode="pico", batch=64, small_critic=False, joint=False):
        if loss in losses:
            cases.append(dict(loss=loss, critic_steps=critic_steps, jit=jit, sn_mode=sn_mode, batch=batch,
                              small_critic=small_critic, joint=joint,
                              name=case_name(loss, critic_steps, jit, sn_mode, batch, small_critic, joint)))

    for loss in losses:
        add(loss, 1)
    for loss in losses:
        if all_critic_steps or (not quick and loss in FULL_C5_LOSSES):
            add(loss, 5)
    for loss in losses:
        if all_xla or (not quick and loss in FULL_XLA_LOSSES):
            add(loss, 1, jit=True)
    add("mmd_rep", 1, sn_mode="pim")
    # Paper 3's joint update (one forward pass for both networks): the step a peer
    # implementation of paper 3 times.
    add("mmd_rep", joint=True)
    if not quick:
        add("mmd_rep", joint=True, jit=True)
        add("mmd_rep", 1, sn_mode="pim", batch=128)
        add("mmd_gp", 1, small_critic=True)
    return cases


def build_step(case, seed=0):
    """(tf.function step, real batch) of one case."""
    loss, params, output_dim = LOSSES[case["loss"]]
    generator = networks.build_generator("dcgan_s1", image_size=32)
    critic_kwargs = {"widths": SMALL_CRITIC_WIDTHS} if case["small_critic"] else {}
    critic = networks.build_critic("dcgan_s1", image_size=32, output_dim=output_dim,
                                   sn_mode=case["sn_mode"], **critic_kwargs)
    model = MMDGAN(generator, critic, latent_distribution="normal",
                   critic_schedule="joint" if case.get("joint") else "fixed",
                   critic_steps=case["critic_steps"], seed=seed)
    from mmd_keras import losses

    model.compile(loss=losses.get(loss, **params))
    real = tf.random.stateless_uniform([case["batch"], 32, 32, 3], [seed, 1], -1.0, 1.0)
    step = tf.function(model.train_step, jit_compile=case["jit"])
    return step, real


def compiled_call_check(critic_steps=5, steps=4):
    """Counts host calls, traces and optimizer updates per generator step of `MMDGAN.fit`.

    Returns:
        dict: ``host_calls_per_step``, ``traces``, ``critic_updates_per_step``,
        ``generator_updates_per_step`` over ``steps`` fit steps.
    """
    generator = networks.build_generator("small", image_size=16, channels=1, latent_dim=16)
    critic = networks.build_critic("small", image_size=16, channels=1, output_dim=16)
    model = MMDGAN(generator, critic, critic_schedule="fixed", critic_steps=critic_steps)
    model.compile(loss="repulsive")
    counts = {"traces": 0, "calls": 0}
    train_step = model.train_step

    def counting_train_step(data):
        counts["traces"] += 1  # Python runs only while tracing
        return train_step(data)

    model.train_step = counting_train_step
    model.make_train_function()
    train_function = model.train_function

    def counting_train_function(iterator):
        counts["calls"] += 1
        return train_function(iterator)

    model.train_function = counting_train_function
    images = tf.data.Dataset.from_tensors(tf.zeros([8, 16, 16, 1])).repeat()
    model.fit(images, epochs=1, steps_per_epoch=steps, verbose=0)
    return {
        "generator_steps": steps, "host_calls_per_step": counts["calls"] / steps,
        "traces": counts["traces"],
        "critic_updates_per_step": int(model.critic_optimizer.iterations.numpy()) / steps,
        "generator_updates_per_step": int(model.generator_optimizer.iterations.numpy()) / steps,
    }


def run(losses, quick, repeats, peak=None, all_critic_steps=False, all_xla=False, log=common.log):
    """Builds, warms up and times every case; returns the JSON record."""
    cases = plan_cases(losses, quick, all_critic_steps, all_xla)
    machine = common.machine_info()
    if peak is None:
        peak = common.matmul_peak()
    log(f"train_step: {len(cases)} cases, {repeats} repeats, load {machine['load_average']}")
    candidates, flop_counts = {}, {}
    for case in cases:
        log(f"  building {case['name']}")
        step, real = build_step(case)
        candidates[case["name"]] = (lambda s=step, r=real: s(r))
        case["_step"], case["_real"] = step, real
    timings = common.interleaved_medians(candidates, repeats, warmup=1,
                                         sync=lambda out: out["generator_loss"].numpy(), log=log)
    for case in cases:
        spec = tf.TensorSpec(case["_real"].shape, tf.float32)
        flop_counts[case["name"]] = flops_lib.function_flops(case.pop("_step"), spec)
        case.pop("_real")
    rows = []
    for case in cases:
        t = timings[case["name"]]
        counted = flop_counts[case["name"]]["total"]
        rows.append({**case, **t, "ms_per_generator_step": 1e3 * t["median_s"],
                     "images_per_s": case["batch"] / t["median_s"], "gflop_per_step": counted / 1e9,
                     "achieved_flops": counted / t["median_s"],
                     "fraction_of_peak": counted / t["median_s"] / peak["best_flops"],
                     "flops_by_op": flop_counts[case["name"]]["by_op"]})
    log("train_step: compiled-call check (fit, small network, 5 critic steps)")
    check = compiled_call_check()
    return {"benchmark": "train_step", "quick": quick, "machine": machine, "peak": peak,
            "load_average_end": common.load_average(), "cases": rows, "compiled_call_check": check,
            "ratios": ratios(rows)}


def _ratio(rows, numerator, denominator, key="ms_per_generator_step"):
    values = {row["name"]: row[key] for row in rows}
    a, b = values.get(numerator), values.get(denominator)
    return None if a is None or b is None else a / b


def ratios(rows):
    """The issue's time ratios (None where a case was not run), their targets and the ratio of
    counted dense FLOPs (load-independent: the work itself)."""
    pairs = {
        "mmd_rep/hinge": ("mmd_rep/c1/graph", "hinge/c1/graph", 1.03),
        "smmd/mmd_gp": ("smmd/c1/graph", "mmd_gp/c1/graph", 1.05),
        "pico/pim (mmd_rep)": ("mmd_rep/c1/graph", "mmd_rep/c1/graph/pim", 1.3),
        "pico/pim_batch128 (mmd_rep)": ("mmd_rep/c1/graph", "mmd_rep/c1/graph/pim/b128", None),
        "wgan_gp/mmd_gp_small_critic": ("wgan_gp/c1/graph", "mmd_gp/c1/graph/small_critic", None),
    }
    for row in rows:
        if row["jit"]:
            pairs[f"xla/graph ({row['loss']}, c{row['critic_steps']})"] = (
                row["name"], row["name"].replace("/xla", "/graph"), None)
        if row["critic_steps"] == 5 and not row["jit"]:
            pairs[f"c5/c1 ({row['loss']})"] = (row["name"], row["name"].replace("/c5/", "/c1/"), None)
    out = {}
    for key, (numerator, denominator, target) in pairs.items():
        value = _ratio(rows, numerator, denominator)
        out[key] = {"ratio": value, "flop_ratio": _ratio(rows, numerator, denominator, "gflop_per_step"),
                    "target": target, "met": None if value is None or target is None else value <= target}
    return out


def print_report(record):
    peak = record["peak"]
    print(f"\n== train_step: DCGAN Table S1, 32 px, load {record['machine']['load_average']} -> "
          f"{record['load_average_end']}, matmul peak {peak['best_flops'] / 1e9:.0f} GFLOP/s "
          f"(median {peak['median_flops'] / 1e9:.0f})")
    header = ["case", "ms/gen step", "min ms", "images/s", "warm-up s", "GFLOP/step", "GFLOP/s", "% peak"]
    rows = [[r["name"], r["ms_per_generator_step"], 1e3 * r["min_s"], r["images_per_s"], r["warmup_s"],
             r["gflop_per_step"], r["achieved_flops"] / 1e9, 100 * r["fraction_of_peak"]]
            for r in record["cases"]]
    print(common.format_table(header, rows))
    check = record["compiled_call_check"]
    print(f"compiled call: {check['host_calls_per_step']:g} host call(s) and {check['traces']} trace(s) "
          f"for {check['generator_steps']} generator steps; {check['critic_updates_per_step']:g} critic + "
          f"{check['generator_updates_per_step']:g} generator updates per call")
    print_ratios(record["ratios"])


def print_ratios(ratio_record):
    rows = [[k, v["ratio"], v["flop_ratio"], "" if v["target"] is None else f"<= {v['target']}",
             "" if v["met"] is None else ("met" if v["met"] else "MISSED")] for k, v in ratio_record.items()]
    print(common.format_table(["ratio (time)", "time", "FLOPs", "target", ""], rows))


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--losses", default=None,
                        help=f"comma-separated subset of {','.join(LOSSES)} (default: quick/full set)")
    parser.add_argument("--all_critic_steps", action="store_true",
                        help="5 critic steps for every loss (default: only for " + ",".join(FULL_C5_LOSSES) + ")")
    parser.add_argument("--all_xla", action="store_true",
                        help="jit_compile for every loss (default: only for " + ",".join(FULL_XLA_LOSSES) + ")")
    args = parser.parse_args(argv)
    losses = tuple(LOSSES) if not args.quick else QUICK_LOSSES
    if args.losses:
        losses = tuple(x for x in args.losses.split(",") if x)
        unknown = [x for x in losses if x not in LOSSES]
        if unknown:
            parser.error(f"unknown --losses {unknown}; expected names among {list(LOSSES)}")
    repeats = args.repeats or (2 if args.quick else 3)
    record = run(losses, args.quick, repeats, all_critic_steps=args.all_critic_steps, all_xla=args.all_xla)
    path = common.write_json(record, args.output or common.default_output("train_step", args.quick))
    print_report(record)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
