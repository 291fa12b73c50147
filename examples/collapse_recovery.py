"""Collapse recovery: paper 2's "revert to an earlier checkpoint and increase λ", automated (issue 19).

Arbel et al. 2018 (paper 2), end of §4 "Rank collapse": SMMD occasionally fails because the
critic collapses — "this failure was obvious even in the training objective" — and "one could
avoid collapse by reverting to an earlier checkpoint and increasing the RKHS regularization
parameter λ". :class:`mmd_keras.collapse.CollapseRecovery` does that during ``fit``; this script
shows it on the offline digits, at the scale of a 2-core CPU:

* **Collapse recipe** (seeded): the offline default's networks (``small``, 16 px, latents
  N(0, I₃₂), 16 critic outputs, joint 1:1 updates, Adam(0.5, 0.999), batch 64) with SMMD
  (Gaussian σ = 1) **without** spectral normalization, a small coefficient (1 instead of the
  paper's 10) and a high learning rate (critic 2e-2, generator 8e-3; the default is 5e-4/2e-4).
  Within about a hundred steps the critic collapses: σ⁻² (1/``smmd_scale``) jumps by ×30–100, the
  first conv layer's condition number jumps and then freezes with the critic, the objective
  −SMMD goes to 0 and the samples degrade to noise.
* **Recovery**: the same run (same seed, same data, same initial weights) with the callback:
  checks every 10 steps, snapshots every 50 while healthy, rule ``CollapseRule()`` (condition
  number ×10 above the smallest healthy one, or σ² ÷10 below the largest healthy one, 2 checks
  in a row; a restored trajectory inherits those references, σ² divided by the factor),
  coefficient ×10 per recovery, at most 3 recoveries. After ``fit`` the run is continued until
  its step counter reaches the same number of generator steps as the collapsed run (a recovery
  rewinds it). ``recovered_lr``: the same, each recovery also halving both learning rates
  (``lr_factor=0.5``, beyond paper 2's recipe).
* **False alarms**: the callback watching healthy runs — the offline default (MMD-rep with SN,
  watch only: the repulsive loss has no coefficient to raise) and SN-SMMD (the default's
  networks with SMMD, coefficient 10, default learning rates, recovery on) — must trigger
  nothing.

KID (raw scale, as ``python -m mmd_keras.launch`` reports for digits): the digits classifier's
128-d features of 500 samples against the 359 held-out digits, 10 subsets of 300, every
``kid_every`` steps and at the end.

Usage::

    python examples/collapse_recovery.py --out runs/collapse            # the study (3 seeds)
    python examples/collapse_recovery.py --out /tmp/c --quick            # a seconds-sized check

Writes ``collapse_recovery.json`` (every number and setting), ``collapse_recovery.png``
(condition number, σ⁻², coefficient and KID over training iterations, both runs, first seed) and
``collapse_recovery_samples.png`` (final samples of both runs, first seed).
"""

import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study_utils  # noqa: E402

RUNS = ("collapsed", "recovered", "recovered_lr", "healthy_default", "healthy_sn_smmd")
DEFAULT_STEPS, QUICK_STEPS = 400, 24
NETWORKS = dict(image_size=16, latent_dim=32, batch_size=64, critic_output_dim=16, adam_beta2=0.999,
                critic_schedule="joint")
#: The collapse recipe: SMMD, no SN, coefficient 1, learning rates ×40.
COLLAPSE = dict(loss="smmd", coefficient=1.0, sn_mode="none", critic_lr=2e-2, generator_lr=8e-3)
RECIPES = {
    # The same runs watched only, recovered (paper 2's recipe), and recovered with both learning
    # rates also halved at each recovery (`lr_factor`, beyond the paper).
    "collapsed": COLLAPSE, "recovered": COLLAPSE, "recovered_lr": COLLAPSE,
    # Healthy: the offline default (configs/digits.cfg) and SN-SMMD on the same networks.
    "healthy_default": dict(loss="repulsive", sn_mode="pim", critic_lr=5e-4, generator_lr=2e-4),
    "healthy_sn_smmd": dict(loss="smmd", coefficient=10.0, sn_mode="pim", critic_lr=5e-4, generator_lr=2e-4),
}
WATCH = dict(check_every=10, snapshot_every=50, factor=10.0, max_recoveries=3)
#: `lr_factor` of the "recovered_lr" runs.
LR_FACTOR = 0.5
QUICK_WATCH = dict(check_every=4, snapshot_every=8, factor=10.0, max_recoveries=3)


def build_model(run, seed):
    """The compiled `MMDGAN` of a recipe, seeded (both SMMD runs start from the same weights)."""
    import keras

    from mmd_keras import kernels, losses, networks
    from mmd_keras.models import MMDGAN

    recipe, s = RECIPES[run], NETWORKS
    keras.utils.set_random_seed(seed)
    generator = networks.build_generator("small", image_size=s["image_size"], channels=1,
                                         latent_dim=s["latent_dim"])
    critic = networks.build_critic("small", image_size=s["image_size"], channels=1,
                                   output_dim=s["critic_output_dim"], sn_mode=recipe["sn_mode"])
    if recipe["loss"] == "smmd":
        loss = losses.get("smmd", kernel=kernels.get("rbf", sigmas=[1.0]), coefficient=recipe["coefficient"])
    else:
        loss = losses.get("repulsive", lam=1.0, kernel=kernels.get("rbf", sigmas=[1.0, 2.0, 4.0, 8.0, 16.0]))
    model = MMDGAN(generator, critic, latent_distribution="normal", critic_schedule=s["critic_schedule"],
                   seed=seed)
    model.compile(generator_optimizer=study_utils.adam(recipe["generator_lr"], s["adam_beta2"]),
                  critic_optimizer=study_utils.adam(recipe["critic_lr"], s["adam_beta2"]), loss=loss)
    return model


class KID:
    """KID of generated digits against the held-out split (digits classifier features)."""

    def __init__(self, num_samples=500, subsets=10, subset_size=300):
        from mmd_keras import datasets
        from mmd_keras.evaluation import extractors, metrics

        self.metrics, self.extractor = metrics, extractors.get("digits")
        self.test_features = self.extractor(datasets.digits_images("test", NETWORKS["image_size"])[0])
        self.num_samples, self.subsets = num_samples, subsets
        self.subset_size = min(subset_size, len(self.test_features), num_samples)

    def __call__(self, model, seed):
        images = model.generate(self.num_samples, seed=seed)
        result = self.metrics.kernel_inception_distance(
            self.extractor(images), self.test_features, num_subsets=self.subsets, subset_size=self.subset_size,
            seed=seed)
        return {"mean": float(result.mean), "std": float(result.std)}, images[:64]


def train(run, seed, steps, kid, kid_every, watch):
    """One run; returns its record (signals, events, KID trace) and final samples."""
    import keras

    from mmd_keras import datasets
    from mmd_keras.collapse import CollapseRecovery

    model = build_model(run, seed)
    recover = run in ("recovered", "recovered_lr", "healthy_sn_smmd")
    callback = CollapseRecovery(recover=recover, print_fn=study_utils.print_flush,
                                lr_factor=LR_FACTOR if run == "recovered_lr" else 1.0, **watch)
    trace, iterations = [], [0]

    def on_batch_end(batch, logs=None):
        iterations[0] += 1
        if iterations[0] % kid_every == 0:
            trace.append({"iteration": iterations[0], "step": int(model.step.numpy()),
                          "kid": kid(model, seed)[0]["mean"]})

    tracker = keras.callbacks.LambdaCallback(on_train_batch_end=on_batch_end)
    dataset = datasets.build_dataset("digits", "train", image_size=NETWORKS["image_size"],
                                     batch_size=NETWORKS["batch_size"], seed=seed)
    watch_time = study_utils.Stopwatch()
    remaining, fits = steps, 0
    while remaining > 0 and not callback.gave_up and fits < 2 + watch["max_recoveries"]:
        model.fit(dataset, epochs=1, steps_per_epoch=remaining, verbose=0, callbacks=[callback, tracker])
        remaining, fits = steps - int(model.step.numpy()), fits + 1
    final, samples = kid(model, seed)
    record = {"run": run, "seed": seed, "recover": recover, "final_step": int(model.step.numpy()),
              "iterations": iterations[0], "kid": final, "kid_trace": trace,
              "checks": callback.to_json()["checks"], "events": callback.to_json()["events"],
              "final_coefficient": _coefficient(model), "gave_up": callback.gave_up,
              "seconds": watch_time.elapsed()}
    return record, samples


def _coefficient(model):
    variable = getattr(model.loss_object, "coefficient", None)
    return None if variable is None else float(variable.numpy())


def _spread(values):
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "values": values.tolist()}


def run_study(out, runs, seeds, steps, quick=False, kid_every=None, log=print):
    os.makedirs(out, exist_ok=True)
    watch = QUICK_WATCH if quick else WATCH
    kid_every = kid_every or (steps // 2 if quick else 50)
    kid = KID(num_samples=100 if quick else 500, subsets=2 if quick else 10, subset_size=50 if quick else 300)
    record = {"issue": 19, "paper": "Arbel et al. 2018 (paper 2), end of section 4 'Rank collapse'",
              "settings": {"steps": steps, "seeds": list(seeds), "quick": bool(quick), "networks": NETWORKS,
                           "recipes": {r: RECIPES[r] for r in runs}, "watch": watch,
                           "rule": "CollapseRule() defaults", "kid_every": kid_every,
                           "kid": {"num_samples": kid.num_samples, "subsets": kid.subsets,
                                   "subset_size": kid.subset_size, "features": "digits classifier (128-d)",
                                   "reference": "359 held-out digits"}},
              "machine": study_utils.machine(), "runs": {r: [] for r in runs}}
    samples = {}
    path = os.path.join(out, "collapse_recovery.json")
    for seed in seeds:
        for run in runs:
            result, images = train(run, seed, steps, kid, kid_every, watch)
            record["runs"][run].append(result)
            samples.setdefault(run, images)
            recoveries = sum(e["event"] == "recovery" for e in result["events"])
            log(f"{run:16s} seed {seed}: KID {result['kid']['mean']:.2f} ± {result['kid']['std']:.2f}, "
                f"{recoveries} recoveries, {len(result['events'])} events, {result['seconds']:.0f} s")
            record["summary"] = summarize(record["runs"])
            study_utils.write_json(path, record)
    plot(out, record, samples)
    return record


def summarize(runs):
    summary = {}
    for run, results in runs.items():
        if not results:
            continue
        summary[run] = {
            "kid": _spread([r["kid"]["mean"] for r in results]),
            "recoveries": [sum(e["event"] == "recovery" for e in r["events"]) for r in results],
            "detections": [len(r["events"]) for r in results],
            "checks": sum(len(r["checks"]) for r in results),
            "final_coefficient": [r["final_coefficient"] for r in results],
        }
    return summary


def _grid(images, rows=8):
    images = (np.clip(images[:rows * rows, ..., 0], -1, 1) + 1) / 2
    n = int(np.ceil(len(images) / rows))
    canvas = np.ones((rows * 17, n * 17))
    for i, image in enumerate(images):
        r, c = divmod(i, n)
        canvas[r * 17:r * 17 + 16, c * 17:c * 17 + 16] = image
    return canvas


def plot(out, record, samples):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"collapsed": "tab:red", "recovered": "tab:blue", "recovered_lr": "tab:purple",
              "healthy_default": "tab:gray",
              "healthy_sn_smmd": "tab:green"}
    figure, axes = plt.subplots(1, 4, figsize=(17, 3.8), constrained_layout=True)
    for run, results in record["runs"].items():
        if not results:
            continue
        first = results[0]
        checks = first["checks"]
        iterations = [c["iteration"] for c in checks]
        axes[0].semilogy(iterations, [c["condition_number"] for c in checks], color=colors[run], label=run)
        scales = [c["scale"] for c in checks]
        if all(s is not None for s in scales):
            axes[1].semilogy(iterations, [1.0 / s for s in scales], color=colors[run], label=run)
        axes[2].step(*_coefficient_trace(first, iterations), where="post", color=colors[run], label=run)
        axes[2].set_yscale("log")
        axes[3].semilogy([t["iteration"] for t in first["kid_trace"]],
                         [max(t["kid"], 1e-2) for t in first["kid_trace"]], "o-", color=colors[run], label=run)
        for event in first["events"]:
            if event["event"] == "recovery":
                for ax in axes:
                    ax.axvline(event["iteration"], color=colors[run], ls=":", lw=1)
    titles = ("max condition number over critic layers", "σ⁻² = 1/smmd_scale (window mean)",
              "SMMD coefficient", "KID (digits classifier, raw)")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training iteration (fit batches)")
    axes[0].legend(fontsize=7)
    figure.suptitle(f"seed {record['settings']['seeds'][0]}; dotted: a recovery (restore + coefficient ×10)",
                    fontsize=9)
    study_utils.save_figure(figure, os.path.join(out, "collapse_recovery.png"))
    if not samples:
        return
    figure, axes = plt.subplots(1, len(samples), figsize=(3 * len(samples), 3.2), constrained_layout=True)
    for ax, (run, images) in zip(np.atleast_1d(axes), samples.items()):
        kid = record["summary"][run]["kid"]["values"][0]
        ax.imshow(_grid(images), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{run}\nKID {kid:.1f}", fontsize=8)
        ax.axis("off")
    study_utils.save_figure(figure, os.path.join(out, "collapse_recovery_samples.png"))


def _coefficient_trace(result, iterations):
    """The coefficient in force at each check: the recipe's, then each recovery's new one."""
    current = RECIPES[result["run"]].get("coefficient", np.nan)
    events = [e for e in result["events"] if e["event"] == "recovery"]
    values = []
    for iteration in iterations:
        while events and events[0]["iteration"] <= iteration:
            current = events.pop(0)["new_coefficient"]
        values.append(current)
    return iterations, values


def parse_args(argv=None):
    parser = study_utils.study_parser(__doc__, RUNS, DEFAULT_STEPS, QUICK_STEPS, (0, 1, 2))
    parser.add_argument("--kid_every", type=int, default=None, help="iterations between KID values (default 50)")
    args = parser.parse_args(argv)
    study_utils.check_positive(parser, "--kid_every", args.kid_every)
    return study_utils.check_study_args(parser, args, RUNS, DEFAULT_STEPS, QUICK_STEPS)


def main(argv=None, log=None):
    args = parse_args(argv)
    record = run_study(args.out, args.losses, args.seeds, args.steps, args.quick, args.kid_every,
                       log=log or study_utils.print_flush)
    for run, summary in record["summary"].items():
        print(f"{run:16s} KID {summary['kid']['mean']:.2f} ± {summary['kid']['std']:.2f} (seeds "
              f"{record['settings']['seeds']}); recoveries {summary['recoveries']}")
    print(f"wrote {args.out}/collapse_recovery.json, collapse_recovery.png, collapse_recovery_samples.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
