"""Paper 1's Table 3 (MNIST) reproduced at a 2-core CPU's scale, side by side with the paper (issue 15).

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

Common to every row (paper 1, §5; ``configs/mnist_mmd_rqstar.cfg``): latents U[-1, 1]¹⁰⁰,
Adam(1e-4, β = (0.5, 0.9)) for both networks, batch 64, 5 critic steps per generator step,
per-tensor gradient clipping to 1, and the KID-test adaptive learning rate (§4.1): every 500 of
50,000 generator steps the three-sample relative-similarity test compares the model with the
one 5,000 steps earlier; after 3 failures in a row both rates are halved. Scores follow §5:
KID from 100 subsets of 1,000 without replacement, FID and IS from 10 bootstrap resamplings
(:mod:`mmd_keras.evaluation.protocol`), on LeNet features (:mod:`mmd_keras.evaluation.lenet`).

Scale. ``--paper_scale`` runs the paper unchanged (generator widths 512, 256, 128, 64; 50,000
steps; 100,000 generated images; evaluation every 500 steps) — for a GPU. The default is scaled
down for a 2-core CPU: generator widths 128, 64, 32, 16 (a quarter), :data:`SCALED_STEPS`
generator steps per row sized by measurement: before training, one generator step of every
row is timed (:func:`measure`) and the steps are chosen so that the runs' training fits
:data:`TRAINING_SHARE` of ``--budget_hours`` (default 2 h; at most :data:`SCALED_MAX_STEPS`);
the evaluation cadence is kept at 1/100 of the run with the same lag of 10 evaluations (the
paper's 500 / 5,000 of 50,000); 10,000 generated images are scored against the 10,000 test
images. ``--steps`` and ``--generator_width`` override it. The record states the scale-down,
the measured seconds per generator step and the load average.

Usage::

    python examples/mnist_table3.py --data_dir ../shared/data/mnist --out runs/mnist_table3
    python examples/mnist_table3.py --data_dir DIR --out runs/t3_gpu --paper_scale
    python examples/mnist_table3.py --data_dir DIR --out /tmp/t3 --quick     # a minute-sized check
    python examples/mnist_table3.py --data_dir DIR --out /tmp/t3 --measure   # time one step per row

Writes ``mnist_table3.json`` (every number and setting), ``mnist_table3.md`` (the table beside
paper 1's), ``mnist_table3_samples.png`` (a grid per row) and ``mnist_table3_kid.png`` (KID over
training per row, paper 1 Figure 2's analogue) into ``--out``.
"""

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
PAPER = dict(generator_width=64, steps=50_000, num_generated=100_000, eval_every=500,
             eval_samples=2048)
SCALED_WIDTH, SCALED_MAX_STEPS, BUDGET_HOURS = 16, 20_000, 2.0
#: Share of the budget given to training steps; the rest is evaluation, scoring and start-up.
TRAINING_SHARE = 0.75
QUICK = dict(generator_width=8, steps=40, num_generated=500, eval_samples=200, bootstraps=3,
             kid_subsets=10)
COMMON = dict(image_size=28, latent_dim=100, batch_size=64, critic_steps=5, learning_rate=1e-4,
              adam_beta1=0.5, adam_beta2=0.9, clip_norm=1.0, lag=10, max_failures=3,
              lr_factor=0.5, num_reference=10_000)


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


def build_model(row, seed, generator_width, learning_rate=COMMON["learning_rate"]):
    """Paper 1's DCGAN pair at 28 px (critic size 16) and the row's loss, seeded."""
    import keras

    from mmd_keras import losses, networks
    from mmd_keras.models import MMDGAN

    keras.utils.set_random_seed(seed)
    loss_name, params, kernel, output_dim = row_settings(row)
    loss = losses.get(loss_name, **params, **({"kernel": kernel} if kernel is not None else {}))
    w = int(generator_width)
    generator = networks.build_generator("dcgan_p1", image_size=28, channels=1,
                                         latent_dim=COMMON["latent_dim"], widths=(8 * w, 4 * w, 2 * w, w))
    critic = networks.build_critic("dcgan_p1", image_size=28, channels=1, widths=CRITIC_WIDTHS,
                                   output_dim=output_dim)
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
    """Trains one row; returns its record (scores, curve, seconds) and 64 samples."""
    from mmd_keras import datasets
    from mmd_keras.evaluation.callback import EvaluationCallback

    watch = study_utils.Stopwatch()
    model = build_model(row, seed, scale["generator_width"])
    eval_samples = min(scale["eval_samples"], len(scorer.test_features))
    callback = EvaluationCallback(
        scorer.test_features, scorer.extractor, every_n_steps=scale["eval_every"],
        num_samples=eval_samples, kid_subsets=10, kid_subset_size=min(1000, eval_samples),
        adaptive_lr=True, test_samples=eval_samples, lag=COMMON["lag"],
        max_failures=COMMON["max_failures"], factor=COMMON["lr_factor"], seed=seed)
    dataset = datasets.build_dataset("mnist", "train", image_size=28, batch_size=COMMON["batch_size"],
                                     data_dir=scorer.data_dir, seed=seed)
    train_start = time.perf_counter()
    history = model.fit(dataset, epochs=1, steps_per_epoch=scale["steps"], callbacks=[callback],
                        verbose=0)
    train_seconds = time.perf_counter() - train_start
    finite = all(math.isfinite(v) for v in history.history["generator_loss"])
    images = model.generate(scale["num_generated"], seed=10_000 + seed)
    scores = scorer.score(images, seed=seed)
    record = {"row": row, "seed": seed, **scores, "finite_losses": finite,
              "train_seconds": round(train_seconds, 1),
              "seconds_per_step": round(train_seconds / scale["steps"], 3),
              "lr_decays": int(callback.scheduler.num_decays.numpy()),
              "kid_curve": [{"step": s, "kid": m["kid"], "kid_std": m["kid_std"]}
                            for s, m in callback.evaluations],
              "seconds": watch.elapsed()}
    log(f"{row:8s} seed {seed}: IS {scores['inception_score']['mean']:.2f}, "
        f"FID {scores['fid']['mean']:.3f}, KID {scores['kid']['mean']:.4f} "
        f"({record['seconds_per_step']:.2f} s/step, {record['seconds']:.0f} s)")
    return record, images[:64]


def _cell(value, digits):
    return f"{value['mean']:.{digits}f} ({value['std']:.{digits}f})"


def _paper_cell(row, metric, digits):
    mean, std = PAPER_TABLE3[row][metric]
    return f"{mean:.{digits}f} ({std:.{digits}f})"


def markdown_table(record):
    """The README table: our means (std) beside paper 1's Table 3, the test-set floor last."""
    header = ("| loss | critic filters | top layer | IS | IS paper | FID | FID paper | KID | KID paper |\n"
              "|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for row, entry in record["rows"].items():
        first = entry["runs"][0]
        top = row_settings(row)[3]
        seeds = "" if len(entry["runs"]) == 1 else f" ({len(entry['runs'])} seeds: first seed; spread in JSON)"
        lines.append(f"| {LABELS[row]}{seeds} | 16 | {top} | {_cell(first['inception_score'], 2)} | "
                     f"{_paper_cell(row, 'is', 2)} | {_cell(first['fid'], 3)} | {_paper_cell(row, 'fid', 3)} | "
                     f"{_cell(first['kid'], 4)} | {_paper_cell(row, 'kid', 3)} |")
    floor = record["test_set_floor"]
    lines.append(f"| test set (train vs test) | — | — | {_cell(floor['inception_score'], 2)} | "
                 f"{_paper_cell('test set', 'is', 2)} | {_cell(floor['fid'], 3)} | "
                 f"{_paper_cell('test set', 'fid', 3)} | {_cell(floor['kid'], 4)} | "
                 f"{_paper_cell('test set', 'kid', 3)} |")
    untrained = record["untrained"]
    lines.append(f"| untrained generator | 16 | 16 | {_cell(untrained['inception_score'], 2)} | — | "
                 f"{_cell(untrained['fid'], 3)} | — | {_cell(untrained['kid'], 4)} | — |")
    s = record["settings"]
    note = (f"\nOurs: {s['steps']} generator steps per row (paper 50,000), generator widths "
            f"{s['generator_widths']} (paper 512, 256, 128, 64), {s['num_generated']} generated images "
            f"(paper 100,000) vs the 10,000 test images; LeNet test accuracy "
            f"{record['lenet'].get('test_accuracy')}.\n")
    return header + "\n".join(lines) + "\n" + note


def _grid(images, rows=8):
    images = np.asarray(images)[: rows * rows, :, :, 0]
    size = images.shape[1]
    canvas = np.ones((rows * (size + 1) - 1, rows * (size + 1) - 1))
    for i, image in enumerate(images):
        r, c = divmod(i, rows)
        canvas[r * (size + 1): r * (size + 1) + size, c * (size + 1): c * (size + 1) + size] = image
    return canvas


def plot(out, record, samples, test_images):
    """``mnist_table3_samples.png`` and ``mnist_table3_kid.png``; returns their paths."""
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
    for row, entry in record["rows"].items():
        curve = entry["runs"][0]["kid_curve"]
        ax.plot([p["step"] for p in curve], [max(p["kid"], 1e-5) for p in curve], label=LABELS[row])
    ax.axhline(max(record["test_set_floor"]["kid"]["mean"], 1e-5), color="k", ls="--", lw=0.8,
               label="test set")
    ax.set_yscale("log")
    ax.set_xlabel("generator step")
    ax.set_ylabel("KID (LeNet, 10 subsets)")
    ax.legend(fontsize=7)
    paths["kid"] = study_utils.save_figure(figure, os.path.join(out, "mnist_table3_kid.png"))
    return paths


def scale_for(args):
    """The settings of this run: the paper's, the quick check's or the CPU scale-down."""
    if args.paper_scale:
        scale = dict(PAPER)
    elif args.quick:
        scale = dict(QUICK, eval_every=max(1, QUICK["steps"] // 4))
    else:
        steps = args.steps or SCALED_MAX_STEPS  # sized by measurement in `run` when not given
        scale = dict(generator_width=SCALED_WIDTH, steps=steps, num_generated=10_000,
                     eval_every=max(1, steps // 100), eval_samples=1000)
    if args.steps:
        scale.update(steps=args.steps, eval_every=max(1, args.steps // 100))
    if args.generator_width:
        scale["generator_width"] = args.generator_width
    w = scale["generator_width"]
    scale["generator_widths"] = [8 * w, 4 * w, 2 * w, w]
    return scale


def measure(args, log, scale=None):
    """Seconds per generator step of each row (after 2 warm-up steps) and the planned budget."""
    from mmd_keras import datasets

    scale = scale or scale_for(args)
    timings = {}
    for row in args.rows:
        model = build_model(row, 0, scale["generator_width"])
        data = datasets.build_dataset("mnist", "train", batch_size=64, data_dir=args.data_dir)
        model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)
        start = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=args.measure_steps, verbose=0)
        timings[row] = round((time.perf_counter() - start) / args.measure_steps, 3)
        log(f"{row:8s}: {timings[row]:.3f} s per generator step (width {scale['generator_width']})")
    runs = [timings[row] for row in args.rows] + [timings[args.rows[0]]] * (len(args.seeds) - 1)
    budget = args.budget_hours * 3600 * TRAINING_SHARE
    steps = max(100, min(SCALED_MAX_STEPS, int(budget / sum(runs)) // 100 * 100))
    record = {"seconds_per_step": timings, "generator_width": scale["generator_width"],
              "runs": len(runs), "budget_hours": args.budget_hours, "steps_in_budget": steps,
              "training_seconds_at_those_steps": round(sum(runs) * steps),
              "paper_scale_training_hours_here": round(sum(runs) * PAPER["steps"] / 3600, 1),
              "machine": study_utils.machine()}
    study_utils.write_json(os.path.join(args.out, "mnist_table3_timing.json"), record)
    log(f"{steps} generator steps per run fit {args.budget_hours} h ({len(runs)} runs)")
    return record


def run(args, log):
    """Trains every row (and the extra seeds of the first row); writes the outputs; returns the record."""
    watch = study_utils.Stopwatch()
    scale = scale_for(args)
    timing = None
    if not (args.paper_scale or args.quick or args.steps):
        timing = measure(args, log, scale)
        steps = timing["steps_in_budget"]
        scale.update(steps=steps, eval_every=max(1, steps // 100))
    scorer = Scorer(args.data_dir, bootstraps=args.bootstraps, kid_subsets=args.kid_subsets)
    record = {"settings": {**COMMON, **scale, "rows": list(args.rows), "seeds": list(args.seeds),
                           "critic_widths": list(CRITIC_WIDTHS), "protocol": scorer.settings,
                           "paper_scale": bool(args.paper_scale),
                           "scale_down": None if args.paper_scale else (
                               f"generator widths {scale['generator_widths']} instead of [512, 256, 128, 64]; "
                               f"{scale['steps']} generator steps instead of 50,000 (evaluation every "
                               f"{scale['eval_every']}, lag 10: the paper's 1/100 and 1/10 of the run); "
                               f"{scale['num_generated']} generated images instead of 100,000")},
              "paper_table3": {k: {m: list(v) for m, v in d.items()} for k, d in PAPER_TABLE3.items()},
              "timing": timing, "machine": study_utils.machine(),
              "lenet": scorer.extractor.lenet.describe(),
              "complete": False}
    record["test_set_floor"] = scorer.floor(min(scale["num_generated"], 60_000))
    untrained = build_model(args.rows[0], args.seeds[0], scale["generator_width"])
    record["untrained"] = scorer.score(untrained.generate(scale["num_generated"], seed=1), seed=0)
    log(f"floor: KID {record['test_set_floor']['kid']['mean']:.4f}, untrained KID "
        f"{record['untrained']['kid']['mean']:.3f}")
    record["rows"], samples = {}, {}
    os.makedirs(args.out, exist_ok=True)

    def save():
        record["wall_seconds"] = watch.elapsed()
        record["load_average_at_end"] = os.getloadavg()
        record["figures"] = plot(args.out, record, samples, scorer.test_images)
        with open(os.path.join(args.out, "mnist_table3.md"), "w") as handle:
            handle.write(markdown_table(record))
        study_utils.write_json(os.path.join(args.out, "mnist_table3.json"), record)

    jobs = [(row, args.seeds[0]) for row in args.rows] + [(args.rows[0], s) for s in args.seeds[1:]]
    for row, seed in jobs:
        run_record, images = train_row(row, seed, scale, scorer, log)
        entry = record["rows"].setdefault(row, {"runs": []})
        entry["runs"].append(run_record)
        for metric, key in (("kid", "kid"), ("fid", "fid"), ("is", "inception_score")):
            values = [r[key]["mean"] for r in entry["runs"]]
            entry[f"{metric}_across_seeds"] = {"mean": float(np.mean(values)), "sd": float(np.std(values))}
        samples.setdefault(row, images)
        save()
    record["complete"] = True
    save()
    return record


def parse_args(argv=None):
    parser = study_utils.argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=study_utils.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the JSON, table and PNGs")
    parser.add_argument("--data_dir", default=None,
                        help="MNIST: TFDS folder, the four IDX files or mnist.npz (default: TFDS / ~/.keras)")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help=f"among {', '.join(ROWS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="the first row runs every seed, the others the first (default 0 1 2)")
    parser.add_argument("--paper_scale", action="store_true", help="paper 1's full settings (GPU)")
    parser.add_argument("--quick", action="store_true", help="a minute-sized check (tests)")
    parser.add_argument("--steps", type=int, default=None, help="generator steps per row")
    parser.add_argument("--generator_width", type=int, default=None,
                        help="filters of the generator's second-to-last layer (paper 64)")
    parser.add_argument("--bootstraps", type=int, default=None,
                        help="FID/IS resamplings (paper and default 10; --quick 3)")
    parser.add_argument("--kid_subsets", type=int, default=None,
                        help="KID subsets of 1,000 (paper and default 100; --quick 10)")
    parser.add_argument("--budget_hours", type=float, default=BUDGET_HOURS,
                        help="the scaled-down run's wall-time budget used to size its steps")
    parser.add_argument("--measure", action="store_true", help="only time a generator step per row")
    parser.add_argument("--measure_steps", type=int, default=5)
    args = parser.parse_args(argv)
    study_utils.check_choices(parser, "--rows", args.rows, ROWS)
    study_utils.check_seeds(parser, args.seeds)
    for flag in ("steps", "generator_width", "bootstraps", "kid_subsets", "measure_steps"):
        study_utils.check_positive(parser, f"--{flag}", getattr(args, flag))
    study_utils.check_out(parser, args.out)
    if args.paper_scale and args.quick:
        parser.error("Expected at most one of `--paper_scale` and `--quick`. Received: both")
    if not args.budget_hours > 0:
        parser.error(f"Expected `--budget_hours` > 0. Received: `--budget_hours {args.budget_hours}`")
    if args.quick:
        args.seeds = args.seeds[:1]
    for flag, paper in (("bootstraps", 10), ("kid_subsets", 100)):
        if getattr(args, flag) is None:
            setattr(args, flag, QUICK[flag] if args.quick else paper)
    return args


def main(argv=None, log=None):
    """Command-line entry point; returns the record written to ``mnist_table3.json``."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    log = log or study_utils.print_flush
    return measure(args, log) if args.measure else run(args, log)


if __name__ == "__main__":
    main()
