"""Rank-collapse watch: paper 2's Figure 2 (b–d) on the offline digits, with mmd_keras.diagnostics.

Arbel et al. 2018 (paper 2), §3.3 "Spectral parametrization" and §4 "Rank collapse": an SMMD
critic may concentrate on one direction, its filters becoming redundant and the condition
numbers of its weight matrices diverging; the spectral parametrization (SN with a learned
gain γ) prevents it. Figure 2 shows (b) the singular values of the critic's second layer
early and late in training, (c) σ⁻²_{µ,k,λ} through training for several MMD critics and
(d) the first layer's condition number: "SN alone does not control σ⁻², and SMMD alone does
not control the condition number".

This script trains the same tiny generator/critic pair (``networks`` "small", 16×16 digits,
1-d critic output, Gaussian kernel σ = 1, 5 critic steps per generator step, Adam β = (0.5,
0.9) as paper 2) with three critic objectives:

* ``smmd``     — Scaled MMD, unconstrained critic;
* ``sn_smmd``  — Scaled MMD, spectral parametrization (``sn_mode="pim"``, ``learned_gain=True``);
* ``mmd_gp``   — the unscaled MMD with paper 1's witness gradient penalty (weight 1).

and logs every ``--every`` generator steps, with :class:`mmd_keras.diagnostics.CriticSpectrumLogger`,
the singular values of every critic kernel reshaped to [fan_in, fan_out] (the effective kernel
γ·W/σ(W) under SN) and σ⁻² = 1 + 10·E‖∇h(x)‖² on a fixed batch of 64 training digits — the
SMMD loss's own scale (its logged ``smmd_scale`` is stored too). Panel (d) shows the second
conv layer, not the first: our first layer sees 4×4×1 patches, so its matrix is square
(16 × 16) and its condition number is dominated by a near-zero singular value from
initialization on.

Usage::

    python examples/rank_collapse.py --out runs/rank_collapse [--quick] [--steps N] [--every K]

writes ``rank_collapse.png``, ``rank_collapse.json`` and one ``spectrum_<method>.json`` per run.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import study_utils  # noqa: E402  (examples/ is on sys.path when a script runs)
from mmd_keras import datasets, kernels, losses, networks  # noqa: E402
from mmd_keras.diagnostics import CriticSpectrumLogger  # noqa: E402
from mmd_keras.models import MMDGAN  # noqa: E402

METHODS = ("smmd", "sn_smmd", "mmd_gp")
LABELS = {"smmd": "SMMD", "sn_smmd": "SN-SMMD (learned γ)", "mmd_gp": "MMD-GP (unscaled)"}
COLORS = {"smmd": "tab:red", "sn_smmd": "tab:blue", "mmd_gp": "tab:green"}
#: Panels (b) and (d) read the second conv layer. The first one's matrix is 4·4·1 × width: square at
#: width 16, so its smallest singular value starts near 0 and its condition number is noise
#: (hundreds at initialization); the JSON still has every layer.
SECOND_LAYER = "conv1"
SETTINGS = {
    "full": dict(steps=600, every=25, critic_steps=5, batch_size=64, critic_width=16, generator_width=32,
                 learning_rate=2e-4),
    "quick": dict(steps=8, every=4, critic_steps=2, batch_size=16, critic_width=8, generator_width=8,
                  learning_rate=1e-3),
}


def build_model(method, cfg, seed):
    """Generator, critic and the compiled `MMDGAN` of one method (same initial weights for all)."""
    keras.utils.set_random_seed(seed)
    generator = networks.build_generator("small", image_size=16, channels=1, latent_dim=32,
                                         widths=(cfg["generator_width"],))
    sn = dict(sn_mode="pim", learned_gain=True) if method == "sn_smmd" else {}
    critic = networks.build_critic("small", image_size=16, channels=1, output_dim=1,
                                   widths=(cfg["critic_width"],), **sn)
    model = MMDGAN(generator, critic, latent_distribution="uniform", critic_schedule="fixed",
                   critic_steps=cfg["critic_steps"], seed=seed)
    if method == "mmd_gp":
        loss = losses.get("mmd", kernel=kernels.get("rbf", sigmas=(1.0,)))
    else:
        loss = losses.get("smmd")
    model.compile(generator_optimizer=keras.optimizers.Adam(cfg["learning_rate"], 0.5, 0.9),
                  critic_optimizer=keras.optimizers.Adam(cfg["learning_rate"], 0.5, 0.9), loss=loss)
    return model


def train(method, cfg, seed, real_images, out):
    """Trains one method; returns its spectrum logger and per-step losses."""
    model = build_model(method, cfg, seed)
    logger = CriticSpectrumLogger(every=cfg["every"], real_images=real_images,
                                  path=os.path.join(out, f"spectrum_{method}.json"))
    mmd2 = []
    track = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: mmd2.append(float(np.asarray(logs["mmd2"]).reshape(-1)[0])))
    # A fresh real batch for every critic step and the generator step, as paper 2's code draws
    # them (``--reuse_real_batch``: one batch per generator step, as the recorded figure was made).
    batches_per_step = 1 if cfg["reuse_real_batch"] else model.real_batches_per_step
    dataset = datasets.build_dataset("digits", "train", image_size=16, batch_size=cfg["batch_size"], seed=seed,
                                     batches_per_step=batches_per_step)
    model.fit(dataset, epochs=1, steps_per_epoch=cfg["steps"], verbose=0, callbacks=[logger, track])
    return logger, mmd2


def summarize(logger, mmd2):
    first, last = logger.history[0], logger.history[-1]
    layers = {}
    for name in last["layers"]:
        steps, conds = logger.series(name)
        layers[name] = {"shape": last["layers"][name]["shape"],
                        "condition_number_start": conds[0], "condition_number_end": conds[-1],
                        "condition_number_max": float(np.max(conds)),
                        "sigma_max_end": last["layers"][name]["sigma_max"]}
    tail = max(1, len(mmd2) // 10)
    return {
        "layers": layers,
        "sigma_inv_sq_start": first["sigma_inv_sq"], "sigma_inv_sq_end": last["sigma_inv_sq"],
        "sigma_inv_sq_max": max(e["sigma_inv_sq"] for e in logger.history),
        "smmd_sigma_inv_sq_end": last["smmd_sigma_inv_sq"],
        "mmd2_last_10pct_mean": float(np.mean(mmd2[-tail:])),
        "steps_recorded": [e["step"] for e in logger.history],
    }


def plot(loggers, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (b, c, d) = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    for method, logger in loggers.items():
        early = logger.history[min(1, len(logger.history) - 1)]
        late = logger.history[-1]
        for entry, style in ((early, "--"), (late, "-")):
            values = np.asarray(entry["layers"][SECOND_LAYER]["singular_values"])
            b.semilogy(np.arange(1, values.size + 1), values / values[0], style, color=COLORS[method],
                       label=f"{LABELS[method]}, step {entry['step']}")
        steps = [e["step"] for e in logger.history]
        c.semilogy(steps, [e["sigma_inv_sq"] for e in logger.history], color=COLORS[method], label=LABELS[method])
        d.semilogy(*logger.series(SECOND_LAYER), color=COLORS[method], label=LABELS[method])
    b.set_title(f"(b) singular values of {SECOND_LAYER} / largest")
    b.set_xlabel("index")
    b.legend(fontsize=7)
    c.set_title("(c) σ⁻² = 1 + 10·E‖∇h(x)‖² (real digits)")
    c.set_xlabel("generator step")
    c.legend(fontsize=8)
    d.set_title(f"(d) condition number of {SECOND_LAYER}")
    d.set_xlabel("generator step")
    d.legend(fontsize=8)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the PNG and the JSON files")
    parser.add_argument("--quick", action="store_true", help="tiny networks, a few steps (tests)")
    parser.add_argument("--steps", type=int, default=None, help="generator steps per method (default 600)")
    parser.add_argument("--every", type=int, default=None, help="generator steps between records (default 25)")
    parser.add_argument("--learning_rate", type=float, default=None,
                        help="Adam lr of both networks (default 2e-4; 1e-3 with --quick)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {METHODS}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse_real_batch", action="store_true",
                        help="one real batch per generator step (default: one per critic step and "
                             "one for the generator step, as the papers' codes)")
    args = parser.parse_args(argv)
    study_utils.check_positive(parser, "--steps", args.steps)
    study_utils.check_positive(parser, "--every", args.every)
    if args.learning_rate is not None and not args.learning_rate > 0:
        parser.error(f"Expected `--learning_rate` > 0. Received: `--learning_rate={args.learning_rate}`")
    methods = [m for m in args.methods.split(",") if m]
    if not methods or any(m not in METHODS for m in methods):
        parser.error(f"Expected `--methods` a comma-separated subset of {METHODS}. Received: `--methods={args.methods}`")
    args.methods = methods
    study_utils.check_out(parser, args.out)
    return args


def run(out, quick=False, steps=None, every=None, learning_rate=None, methods=METHODS, seed=0,
        reuse_real_batch=False):
    """Trains every method, writes the figure and ``rank_collapse.json``; returns the numbers."""
    started = time.time()
    cfg = dict(SETTINGS["quick" if quick else "full"])
    cfg["learning_rate"] = learning_rate or cfg["learning_rate"]
    cfg["steps"] = steps or cfg["steps"]
    cfg["every"] = every or cfg["every"]
    cfg["reuse_real_batch"] = bool(reuse_real_batch)
    os.makedirs(out, exist_ok=True)
    real = next(iter(datasets.build_dataset("digits", "train", image_size=16, batch_size=64, seed=seed + 1)))
    loggers, results = {}, {}
    for method in methods:
        loggers[method], mmd2 = train(method, cfg, seed, real, out)
        results[method] = summarize(loggers[method], mmd2)
    plot(loggers, os.path.join(out, "rank_collapse.png"))
    summary = {
        "paper": "Arbel et al. 2018 (paper 2), Figure 2 (b-d)",
        "settings": {**cfg, "quick": bool(quick), "seed": seed, "dataset": "digits 16x16 (train split)",
                     "kernel": "rbf sigma=1", "critic_output_dim": 1,
                     "sigma_inv_sq": "1 + 10 E|grad h(x)|^2 on 64 fixed training digits",
                     "matrices": "kernels reshaped to [kh*kw*c_in, c_out]; effective g*W/sigma(W) under SN"},
        "methods": results,
        "seconds": round(time.time() - started, 1),
    }
    with open(os.path.join(out, "rank_collapse.json"), "w") as f:
        json.dump(summary, f, indent=1, allow_nan=False)
    return summary


def main(argv=None):
    args = parse_args(argv)
    summary = run(args.out, args.quick, args.steps, args.every, args.learning_rate, args.methods, args.seed,
                  args.reuse_real_batch)
    for method, r in summary["methods"].items():
        layer = r["layers"][SECOND_LAYER]
        print(f"{LABELS[method]:22s} cond({SECOND_LAYER}) {layer['condition_number_start']:.3g} -> "
              f"{layer['condition_number_end']:.3g}; sigma^-2 {r['sigma_inv_sq_start']:.3g} -> "
              f"{r['sigma_inv_sq_end']:.3g}")
    print(f"wrote {args.out}/rank_collapse.png, rank_collapse.json ({summary['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
