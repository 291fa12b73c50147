"""Paper 1's Table 3 (MNIST) at a 2-core CPU's scale, every row with the same constant
learning rates and several seeds, side by side with the paper.

Bińkowski et al., "Demystifying MMD GANs" (ICLR 2018), §5 and Appendix F, Table 3: six critic
losses on MNIST at 28 px with paper 1's DCGAN (critic size 16: filters 16, 32, 64, 128), scored
with features of a LeNet-like classifier against the 10,000 test images.

==========  =============================================================  ======  ========
row         loss                                                           top     GP
==========  =============================================================  ======  ========
rq          MMD², rq* kernel (α ∈ {.2, .5, 1, 2, 5} + dot), L2 act. pen. 1   16      1
rbf         MMD², rbf kernel (σ ∈ {2, 5, 10, 20, 40, 80})                   16      1
dot         MMD², linear kernel                                            16      1
dist        MMD², distance kernel (energy distance), L2 act. pen. 1e-4     256     10
cramer      Cramér GAN (surrogate critic)                                  256     10
wgan_gp     WGAN-GP                                                        1       10
==========  =============================================================  ======  ========

Common to every row (paper 1, §5 and its official code; ``docs/paper1_mnist_settings.md`` lists
every setting beside the paper's and the official code's): latents U[-1, 1]¹⁰⁰, Adam(1e-4,
β = (0.5, 0.9)) for both networks, batch 64, 5 critic steps per generator step, a fresh real
batch for every critic step and for the generator step (``datasets.build_dataset(...,
batches_per_step=6)``, as the official input queue), per-tensor gradient clipping to 1, the
official code's initialization (N(0, 0.02²) convolutions, N(0, 0.01²) linear layers) and
batch-norm momentum 0.9.

Learning rates are **constant** for every row. Paper 1's KID-test schedule tests every 500
generator steps against the model 10 evaluations (5,000 steps) earlier, so its first test comes
at step 5,000: a run shorter than that has a constant learning rate under the paper's protocol.
(A scaled-down schedule that tests far more often decides the ranking by itself: the number of
halvings it made ordered all rows of an earlier run of this study exactly.)

Scores follow §5: KID from 100 subsets of 1,000 without replacement, FID and IS from 10
bootstrap resamplings (:mod:`mmd_keras.evaluation.protocol`), on LeNet features
(:mod:`mmd_keras.evaluation.lenet`). Every row runs every seed; the table gives the seed mean ±
SD, and for each ordering of paper 1's table whether the seeds separate it (every seed of one
row beats every seed of the other).

Scale. ``--paper_scale`` runs the paper's sizes (generator widths 512, 256, 128, 64; 50,000
steps; 100,000 generated images) — for a GPU. The default is scaled down for a 2-core CPU:
generator widths 128, 64, 32, 16 (a quarter), ``--steps`` generator steps (default
:data:`SCALED_STEPS`), 10,000 generated images, a KID curve from 10 evaluations per run.

Several processes can share one ``--out``: each claims the next (row, seed) job not yet claimed
(seed-major order, so an interrupted study still has every row at the same seeds), writes
``runs/<row>_s<seed>.json``, and the last to finish writes the table. ``--collect`` rewrites
the table from the finished jobs.

Usage::

    python examples/mnist_table3.py --data_dir ../shared/data/mnist --out runs/mnist_table3
    taskset -c 0 python examples/mnist_table3.py --data_dir DIR --out OUT &   # two workers,
    taskset -c 1 python examples/mnist_table3.py --data_dir DIR --out OUT &   # one per core
    python examples/mnist_table3.py --data_dir DIR --out /tmp/t3 --quick     # a minute-sized check

Writes ``mnist_table3.json`` (every number, setting, seed, step time and the machine),
``mnist_table3.md`` (the table beside paper 1's and the verdicts), ``mnist_table3_samples.png``
and ``mnist_table3_kid.png`` (KID over training, every seed) into ``--out``.
"""

import itertools
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study_utils  # noqa: E402

ROWS = ("rq", "rbf", "dot", "dist", "cramer", "wgan_gp")
#: Paper 1, Appendix F, Table 3: mean (standard deviation); KID raw (not ×100).
PAPER_TABLE3 = {
    "rq": {"is": (9.11, 0.01), "fid": (4.206, 0.05), "kid": (0.005, 0.004)},
    "rbf": {"is": (8.98, 0.02), "fid": (8.264, 0.02), "kid": (0.011, 0.006)},
    "dot": {"is": (8.86, 0.02), "fid": (6.245, 0.06), "kid": (0.006, 0.004)},
    "dist": {"is": (9.13, 0.004), "fid": (6.179, 0.05), "kid": (0.005, 0.004)},
    "cramer": {"is": (9.25, 0.02), "fid": (3.385, 0.10), "kid": (0.006, 0.005)},
    "wgan_gp": {"is": (9.12, 0.02), "fid": (6.915, 0.10), "kid": (0.009, 0.004)},
    "test set": {"is": (9.78, 0.02), "fid": (4.305, 0.16), "kid": (0.003, 0.003)},
}
LABELS = {"rq": "MMD rq*", "rbf": "MMD rbf", "dot": "MMD dot", "dist": "MMD dist",
          "cramer": "Cramér GAN", "wgan_gp": "WGAN-GP"}
CRITIC_WIDTHS = (16, 32, 64, 128)  # critic size 16
PAPER = dict(generator_width=64, steps=50_000, num_generated=100_000)
SCALED_WIDTH, SCALED_STEPS = 16, 500
QUICK = dict(generator_width=8, steps=40, num_generated=500, eval_samples=200, bootstraps=3,
             kid_subsets=10)
COMMON = dict(image_size=28, latent_dim=100, batch_size=64, critic_steps=5, learning_rate=1e-4,
              adam_beta1=0.5, adam_beta2=0.9, clip_norm=1.0, learning_rate_schedule="constant",
              num_reference=10_000, curve_points=10)
#: Settings of the official MNIST run that this study follows by default (each has a flag).
OFFICIAL = dict(initialization="paper1_official", bn_momentum=0.9, fresh_real_batches=True)
METRICS = (("is", "inception_score", 2), ("fid", "fid", 3), ("kid", "kid", 4))


def row_settings(row):
    """``(loss name, loss parameters, kernel, critic output dim)`` of a Table 3 row."""
    from mmd_keras import kernels

    if row == "rq":
        return "mmd", dict(gradient_penalty_weight=1.0, activation_penalty_weight=1.0), \
            kernels.get("rq_dot", alphas=kernels.PAPER1_RQ_ALPHAS), 16
    if row == "rbf":
        return "mmd", dict(gradient_penalty_weight=1.0), \
            kernels.get("rbf", sigmas=kernels.PAPER1_RBF_SIGMAS), 16
    if row == "dot":
        return "mmd", dict(gradient_penalty_weight=1.0), kernels.get("dot"), 16
    if row == "dist":
        return "mmd", dict(gradient_penalty_weight=10.0, activation_penalty_weight=1e-4), \
            kernels.get("distance"), 256
    if row == "cramer":
        return "cramer", dict(gradient_penalty_weight=10.0), None, 256
    if row == "wgan_gp":
        return "wgan_gp", dict(gradient_penalty_weight=10.0), None, 1
    raise ValueError(f"Expected a row among {ROWS}. Received: `row={row!r}`")


def build_model(row, seed, generator_width, learning_rate=COMMON["learning_rate"],
                initialization=OFFICIAL["initialization"], bn_momentum=OFFICIAL["bn_momentum"]):
    """Paper 1's DCGAN pair at 28 px (critic size 16) and the row's loss, seeded."""
    import keras

    from mmd_keras import losses, networks
    from mmd_keras.models import MMDGAN

    keras.utils.set_random_seed(seed)
    loss_name, params, kernel, output_dim = row_settings(row)
    loss = losses.get(loss_name, **params, **({"kernel": kernel} if kernel is not None else {}))
    w = int(generator_width)
    generator = networks.build_generator("dcgan_p1", image_size=28, channels=1,
                                         latent_dim=COMMON["latent_dim"], widths=(8 * w, 4 * w, 2 * w, w),
                                         initialization=initialization, bn_momentum=bn_momentum)
    critic = networks.build_critic("dcgan_p1", image_size=28, channels=1, widths=CRITIC_WIDTHS,
                                   output_dim=output_dim, initialization=initialization)
    model = MMDGAN(generator, critic, latent_distribution="uniform", critic_schedule="fixed",
                   critic_steps=COMMON["critic_steps"], clip_norm=COMMON["clip_norm"], seed=seed)

    def adam():
        return keras.optimizers.Adam(learning_rate, beta_1=COMMON["adam_beta1"],
                                     beta_2=COMMON["adam_beta2"])

    model.compile(generator_optimizer=adam(), critic_optimizer=adam(), loss=loss)
    return model


class Scorer:
    """LeNet features of the test set, and paper 1's protocol for any images."""

    def __init__(self, data_dir, bootstraps=10, kid_subsets=100, kid_subset_size=1000):
        from mmd_keras import datasets
        from mmd_keras.evaluation import lenet, protocol

        self.protocol = protocol
        self.extractor = lenet.LeNetExtractor(data_dir=data_dir)
        self.test_images = datasets.mnist_images("test", data_dir)[0]
        self.test_features = self.extractor(self.test_images)
        self.data_dir = data_dir
        self.settings = dict(bootstraps=bootstraps, kid_subsets=kid_subsets,
                             kid_subset_size=kid_subset_size)

    def score(self, images, seed=0):
        result = self.protocol.paper1_scores(images, (self.test_features, None), self.extractor,
                                             seed=seed, **self.settings)
        result.pop("extractor")
        return result

    def floor(self, num_images):
        """The training images (the first ``num_images``) scored like a generator."""
        from mmd_keras import datasets

        train = datasets.mnist_images("train", self.data_dir)[0][:num_images]
        return self.score(train)


def train_row(row, seed, scale, scorer, log):
    """Trains one (row, seed) job; returns its record (scores, curve, timings) and 64 samples."""
    from mmd_keras import datasets
    from mmd_keras.evaluation.callback import EvaluationCallback

    watch = study_utils.Stopwatch()
    load_at_start = os.getloadavg()
    model = build_model(row, seed, scale["generator_width"], initialization=scale["initialization"],
                        bn_momentum=scale["bn_momentum"])
    eval_samples = min(scale["eval_samples"], len(scorer.test_features))
    # KID curve only: constant learning rates (adaptive_lr=False), no decision is taken.
    callback = EvaluationCallback(
        scorer.test_features, scorer.extractor, every_n_steps=scale["eval_every"],
        num_samples=eval_samples, kid_subsets=10, kid_subset_size=min(1000, eval_samples),
        adaptive_lr=False, seed=seed)
    batches_per_step = model.real_batches_per_step if scale["fresh_real_batches"] else 1
    dataset = datasets.build_dataset("mnist", "train", image_size=28, batch_size=COMMON["batch_size"],
                                     data_dir=scorer.data_dir, seed=seed, batches_per_step=batches_per_step)
    train_start = time.perf_counter()
    history = model.fit(dataset, epochs=1, steps_per_epoch=scale["steps"], callbacks=[callback],
                        verbose=0)
    train_seconds = time.perf_counter() - train_start
    finite = all(math.isfinite(v) for v in history.history["generator_loss"])
    images = model.generate(scale["num_generated"], seed=10_000 + seed)
    scores = scorer.score(images, seed=seed)
    record = {"row": row, "seed": seed, **scores, "finite_losses": finite,
              "real_batches_per_step": batches_per_step,
              "generator_lr_at_end": float(model.generator_optimizer.learning_rate.numpy()),
              "critic_lr_at_end": float(model.critic_optimizer.learning_rate.numpy()),
              "train_seconds": round(train_seconds, 1),
              "seconds_per_step_with_curve": round(train_seconds / scale["steps"], 3),
              "kid_curve": [{"step": s, "kid": m["kid"], "kid_std": m["kid_std"]}
                            for s, m in callback.evaluations],
              "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg(),
              "worker": worker_description(), "seconds": watch.elapsed()}
    log(f"{row:8s} seed {seed}: IS {scores['inception_score']['mean']:.2f}, "
        f"FID {scores['fid']['mean']:.3f}, KID {scores['kid']['mean']:.4f} "
        f"({record['seconds_per_step_with_curve']:.2f} s/step, {record['seconds']:.0f} s)")
    return record, images[:64]


def worker_description():
    """The process that ran a job: pid, the cores it may use, its nice value."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"pid": os.getpid(), "cores": cores, "nice": os.nice(0) if hasattr(os, "nice") else None}


# ------------------------------------------------------------------------------ the table
def across_seeds(runs):
    """``{metric: {"mean", "sd", "values"}}`` over a row's seeds (SD with ddof=1; 0 for one seed)."""
    out = {}
    for metric, key, _ in METRICS:
        values = [float(r[key]["mean"]) for r in runs]
        out[metric] = {"mean": float(np.mean(values)),
                       "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                       "values": values}
    return out


def verdicts(rows):
    """Every ordering paper 1's Table 3 states between two rows, checked against the seeds.

    For each metric (FID and KID lower is better, IS higher) and each pair whose paper means
    differ, the paper's better row is "separated" when every one of our seeds of it beats every
    seed of the other, "reversed" when every seed of the other beats every seed of it, and
    "inconclusive" otherwise. These are orderings after 50,000 generator steps.
    """
    out = []
    names = [r for r in ROWS if r in rows]
    for metric, _, _ in METRICS:
        for a, b in itertools.combinations(names, 2):
            pa, pb = PAPER_TABLE3[a][metric][0], PAPER_TABLE3[b][metric][0]
            if pa == pb:
                continue
            better, worse = (a, b) if (pa > pb) == (metric == "is") else (b, a)
            out.append({"metric": metric, "paper_better": better, "paper_worse": worse,
                        "verdict": _pair_verdict(rows, better, worse, metric),
                        "seeds": min(len(rows[better]["runs"]), len(rows[worse]["runs"]))})
    return out


#: What paper 1's text (§5, Figure 2) says of the rows early in training, the regime a run of a
#: few hundred generator steps observes: ``(claim, [(better row, worse row), ...])``.
PAPER_CLAIMS = (
    ("dot and rbf are clearly worse than the other models at the beginning of training",
     [(a, b) for b in ("rbf", "dot") for a in ("rq", "dist", "cramer", "wgan_gp")]),
    ("rbf is worse than every other model (it never fully catches up)",
     [(a, "rbf") for a in ("rq", "dot", "dist", "cramer", "wgan_gp")]),
    ("dist, and perhaps WGAN-GP, converge more slowly than rq and Cramér GAN",
     [("rq", "dist"), ("cramer", "dist"), ("rq", "wgan_gp"), ("cramer", "wgan_gp")]),
)


def _pair_verdict(rows, better, worse, metric):
    """"separated" when every seed of ``better`` beats every seed of ``worse`` on ``metric``
    (lower FID/KID, higher IS), "reversed" when the opposite holds, else "inconclusive"."""
    sign = -1.0 if metric == "is" else 1.0
    vb = [sign * v for v in rows[better]["seeds"][metric]["values"]]
    vw = [sign * v for v in rows[worse]["seeds"][metric]["values"]]
    if max(vb) < min(vw):
        return "separated"
    if max(vw) < min(vb):
        return "reversed"
    return "inconclusive"


def claim_verdicts(rows):
    """Each of :data:`PAPER_CLAIMS` checked on KID and FID over the seeds: "reproduced" when
    every pair is separated on both, "contradicted" when a pair is reversed on either, else
    "inconclusive at this scale"; with the verdict of every pair."""
    out = []
    for claim, pairs in PAPER_CLAIMS:
        pairs = [(a, b) for a, b in pairs if a in rows and b in rows]
        if not pairs:
            continue
        detail = [{"better": a, "worse": b, **{m: _pair_verdict(rows, a, b, m) for m in ("kid", "fid")}}
                  for a, b in pairs]
        verdicts_seen = {d[m] for d in detail for m in ("kid", "fid")}
        verdict = ("contradicted" if "reversed" in verdicts_seen else
                   "reproduced" if verdicts_seen == {"separated"} else "inconclusive at this scale")
        out.append({"claim": claim, "verdict": verdict, "pairs": detail})
    return out


def markdown_table(record):
    """The table (seed mean ± SD beside paper 1's Table 3) and the verdict counts."""
    header = ("| loss | top layer | seeds | IS | IS paper | FID | FID paper | KID | KID paper |\n"
              "|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for row, entry in record["rows"].items():
        seeds = entry["seeds"]
        cells = []
        for metric, _, digits in METRICS:
            mean, std = PAPER_TABLE3[row][metric]
            cells += [f"{seeds[metric]['mean']:.{digits}f} ± {seeds[metric]['sd']:.{digits}f}",
                      f"{mean:.{digits}f} ({std:.{digits}f})"]
        lines.append(f"| {LABELS[row]} | {row_settings(row)[3]} | {len(entry['runs'])} | " + " | ".join(cells) + " |")
    for label, key, paper in (("test set (train vs test)", "test_set_floor", True),
                              ("untrained generator", "untrained", False)):
        cells = []
        for metric, name, digits in METRICS:
            value = record[key][name]
            cells.append(f"{value['mean']:.{digits}f}")
            cells.append(f"{PAPER_TABLE3['test set'][metric][0]:.{digits}f}" if paper else "—")
        lines.append(f"| {label} | — | — | " + " | ".join(cells) + " |")
    s = record["settings"]
    counts = {}
    for v in record["verdicts"]:
        counts.setdefault(v["metric"], {}).setdefault(v["verdict"], 0)
        counts[v["metric"]][v["verdict"]] += 1
    summary = "; ".join(f"{m.upper()}: " + ", ".join(f"{n} {k}" for k, n in sorted(c.items()))
                        for m, c in counts.items())
    note = (f"\nSeed mean ± SD over the seeds given (ours); paper: mean (SD of its estimator). "
            f"{s['steps']} generator steps per run (paper 50,000) at constant learning rates, generator "
            f"widths {s['generator_widths']} (paper 512, 256, 128, 64), {s['num_generated']} generated images "
            f"(paper 100,000) vs the 10,000 test images; LeNet test accuracy "
            f"{record['lenet'].get('test_accuracy')}.\n\nOrderings of paper 1's table between two rows: {summary}.\n")
    claims = "".join(f"- *{c['claim']}* (paper 1, §5): **{c['verdict']}** — "
                     + ", ".join(f"{LABELS[p['better']]} < {LABELS[p['worse']]}: KID {p['kid']}, FID {p['fid']}"
                                 for p in c["pairs"]) + "\n"
                     for c in record.get("claims", []))
    if claims:
        claims = ("\nThe paper's statements about training's beginning (every seed of one row beats every "
                  "seed of the other = separated):\n\n" + claims)
    return header + "\n".join(lines) + "\n" + note + claims


def _grid(images, rows=8):
    images = np.asarray(images)[: rows * rows, :, :, 0]
    size = images.shape[1]
    canvas = np.ones((rows * (size + 1) - 1, rows * (size + 1) - 1))
    for i, image in enumerate(images):
        r, c = divmod(i, rows)
        canvas[r * (size + 1): r * (size + 1) + size, c * (size + 1): c * (size + 1) + size] = image
    return canvas


def plot(out, record, samples, test_images):
    """``mnist_table3_samples.png`` (first seed of each row) and ``mnist_table3_kid.png`` (every seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("test set", test_images[:64])] + [(LABELS[r], s) for r, s in samples.items()]
    figure, axes = plt.subplots(1, len(panels), figsize=(2.1 * len(panels), 2.4))
    for ax, (title, images) in zip(np.atleast_1d(axes), panels):
        ax.imshow(_grid(images), cmap="gray", vmin=-1, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    paths = {"samples": study_utils.save_figure(figure, os.path.join(out, "mnist_table3_samples.png"), dpi=110)}
    figure, ax = plt.subplots(figsize=(6, 3.5))
    for i, (row, entry) in enumerate(record["rows"].items()):
        for j, run in enumerate(entry["runs"]):
            curve = run["kid_curve"]
            ax.plot([p["step"] for p in curve], [max(p["kid"], 1e-5) for p in curve], color=f"C{i}",
                    alpha=0.8, lw=1, label=LABELS[row] if j == 0 else None)
    ax.axhline(max(record["test_set_floor"]["kid"]["mean"], 1e-5), color="k", ls="--", lw=0.8,
               label="test set")
    ax.set_yscale("log")
    ax.set_xlabel("generator step")
    ax.set_ylabel("KID (LeNet, 10 subsets)")
    ax.legend(fontsize=7)
    paths["kid"] = study_utils.save_figure(figure, os.path.join(out, "mnist_table3_kid.png"))
    return paths


# ------------------------------------------------------------------------- running the jobs
def scale_for(args):
    """The settings of this run: the paper's, the quick check's or the CPU scale-down."""
    if args.paper_scale:
        scale = dict(PAPER, eval_samples=2048)
    elif args.quick:
        scale = dict(QUICK)
    else:
        scale = dict(generator_width=SCALED_WIDTH, steps=SCALED_STEPS, num_generated=10_000, eval_samples=1000)
    if args.steps:
        scale["steps"] = args.steps
    if args.generator_width:
        scale["generator_width"] = args.generator_width
    scale["eval_every"] = max(1, scale["steps"] // COMMON["curve_points"])
    w = scale["generator_width"]
    scale["generator_widths"] = [8 * w, 4 * w, 2 * w, w]
    scale.update(initialization=args.initialization, bn_momentum=args.bn_momentum,
                 fresh_real_batches=not args.reuse_real_batch)
    return scale


def jobs_of(args):
    """``(row, seed)`` jobs in seed-major order: every row at seed 0, then at seed 1, ..."""
    return [(row, seed) for seed in args.seeds for row in args.rows]


def _claim(path):
    """Creates ``path`` exclusively; True if this process made it (the job is ours)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def prepare(args, scale, scorer, log):
    """``common.json``: settings, machine, LeNet, test-set floor and untrained scores (once per --out)."""
    path = os.path.join(args.out, "common.json")
    if _claim(os.path.join(args.out, "common.claim")):
        record = {"settings": {**COMMON, **scale, "rows": list(args.rows), "seeds": list(args.seeds),
                               "critic_widths": list(CRITIC_WIDTHS), "protocol": scorer.settings,
                               "paper_scale": bool(args.paper_scale),
                               "scale_down": None if args.paper_scale else (
                                   f"generator widths {scale['generator_widths']} instead of [512, 256, 128, 64]; "
                                   f"{scale['steps']} generator steps instead of 50,000; "
                                   f"{scale['num_generated']} generated images instead of 100,000")},
                  "paper_table3": {k: {m: list(v) for m, v in d.items()} for k, d in PAPER_TABLE3.items()},
                  "machine": study_utils.machine(), "lenet": scorer.extractor.lenet.describe()}
        record["test_set_floor"] = scorer.floor(min(scale["num_generated"], 60_000))
        untrained = build_model(args.rows[0], args.seeds[0], scale["generator_width"],
                                initialization=scale["initialization"], bn_momentum=scale["bn_momentum"])
        record["untrained"] = scorer.score(untrained.generate(scale["num_generated"], seed=1), seed=0)
        log(f"floor: KID {record['test_set_floor']['kid']['mean']:.4f}, untrained KID "
            f"{record['untrained']['kid']['mean']:.3f}")
        study_utils.write_json(path + ".tmp", record)
        os.replace(path + ".tmp", path)
    while not os.path.exists(path):  # another worker is writing it
        time.sleep(5)
    return study_utils.read_json(path)


def collect(args, log=None):
    """Merges ``common.json`` and the finished jobs into the outputs; returns the record."""
    from mmd_keras import datasets

    common = study_utils.read_json(os.path.join(args.out, "common.json"))
    record = dict(common, rows={}, complete=True, learning_rate_decisions=[])
    samples = {}
    for row, seed in jobs_of(args):
        path = os.path.join(args.out, "runs", f"{row}_s{seed}.json")
        if not os.path.exists(path):
            record["complete"] = False
            continue
        run = study_utils.read_json(path)
        record["rows"].setdefault(row, {"runs": []})["runs"].append(run)
        if row not in samples:
            samples[row] = np.load(path[:-5] + "_samples.npy")
    for row, entry in record["rows"].items():
        entry["seeds"] = across_seeds(entry["runs"])
    record["verdicts"] = verdicts(record["rows"])
    record["claims"] = claim_verdicts(record["rows"])
    record["wall_seconds_of_jobs"] = round(sum(r["seconds"] for e in record["rows"].values() for r in e["runs"]), 1)
    with open(os.path.join(args.out, "mnist_table3.md"), "w") as handle:
        handle.write(markdown_table(record))
    test_images = datasets.mnist_images("test", args.data_dir)[0]
    record["figures"] = plot(args.out, record, samples, test_images)
    study_utils.write_json(os.path.join(args.out, "mnist_table3.json"), record)
    if log:
        log(f"collected {sum(len(e['runs']) for e in record['rows'].values())} runs "
            f"({'complete' if record['complete'] else 'incomplete'})")
    return record


def run(args, log):
    """Runs every unclaimed job of ``--out``; the worker that finishes the last one collects."""
    scale = scale_for(args)
    os.makedirs(os.path.join(args.out, "runs"), exist_ok=True)
    scorer = Scorer(args.data_dir, bootstraps=args.bootstraps, kid_subsets=args.kid_subsets)
    prepare(args, scale, scorer, log)
    jobs = jobs_of(args)
    for row, seed in reversed(jobs) if args.from_end else jobs:
        stem = os.path.join(args.out, "runs", f"{row}_s{seed}")
        if not _claim(stem + ".claim"):
            continue
        run_record, images = train_row(row, seed, scale, scorer, log)
        np.save(stem + "_samples.npy", images)
        study_utils.write_json(stem + ".json.tmp", run_record)
        os.replace(stem + ".json.tmp", stem + ".json")
    if all(os.path.exists(os.path.join(args.out, "runs", f"{r}_s{s}.json")) for r, s in jobs_of(args)):
        return collect(args, log)
    log("jobs left to other workers")
    return None


def parse_args(argv=None):
    parser = study_utils.argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=study_utils.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the JSON, table and PNGs")
    parser.add_argument("--data_dir", default=None,
                        help="MNIST: TFDS folder, the four IDX files or mnist.npz (default: TFDS / ~/.keras)")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help=f"among {', '.join(ROWS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="every row runs every seed (default 0 1 2)")
    parser.add_argument("--paper_scale", action="store_true", help="paper 1's full settings (GPU)")
    parser.add_argument("--quick", action="store_true", help="a minute-sized check (tests)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"generator steps per run (default {SCALED_STEPS}; paper 50,000)")
    parser.add_argument("--generator_width", type=int, default=None,
                        help="filters of the generator's second-to-last layer (paper 64)")
    parser.add_argument("--bootstraps", type=int, default=None,
                        help="FID/IS resamplings (paper and default 10; --quick 3)")
    parser.add_argument("--kid_subsets", type=int, default=None,
                        help="KID subsets of 1,000 (paper and default 100; --quick 10)")
    parser.add_argument("--initialization", default=OFFICIAL["initialization"],
                        help="kernel initialization: paper1_official (default: N(0, 0.02²) convs, "
                             "N(0, 0.01²) linear) or keras (Glorot-uniform)")
    parser.add_argument("--bn_momentum", type=float, default=OFFICIAL["bn_momentum"],
                        help="generator batch-norm momentum (official code 0.9; Keras 0.99)")
    parser.add_argument("--reuse_real_batch", action="store_true",
                        help="one real batch for all critic steps and the generator step of a "
                             "generator step (default: a fresh batch for each, as the official code)")
    parser.add_argument("--from_end", action="store_true",
                        help="claim jobs from the end of the list (a second worker on a busier core)")
    parser.add_argument("--collect", action="store_true", help="only rewrite the table from finished jobs")
    args = parser.parse_args(argv)
    study_utils.check_choices(parser, "--rows", args.rows, ROWS)
    study_utils.check_choices(parser, "--initialization", [args.initialization], ("paper1_official", "keras"))
    study_utils.check_seeds(parser, args.seeds)
    for flag in ("steps", "generator_width", "bootstraps", "kid_subsets"):
        study_utils.check_positive(parser, f"--{flag}", getattr(args, flag))
    if not 0.0 <= args.bn_momentum < 1.0:
        parser.error(f"Expected `--bn_momentum` in [0, 1). Received: `--bn_momentum {args.bn_momentum}`")
    if not args.collect:
        study_utils.check_out(parser, args.out)
    if args.paper_scale and args.quick:
        parser.error("Expected at most one of `--paper_scale` and `--quick`. Received: both")
    if args.quick:
        args.seeds = args.seeds[:1]
    for flag, paper in (("bootstraps", 10), ("kid_subsets", 100)):
        if getattr(args, flag) is None:
            setattr(args, flag, QUICK[flag] if args.quick else paper)
    return args


def main(argv=None, log=None):
    """Command-line entry point; returns the record written to ``mnist_table3.json`` (None when
    other workers still hold jobs)."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    log = log or study_utils.print_flush
    return collect(args, log) if args.collect else run(args, log)


if __name__ == "__main__":
    main()
