"""Digits study: MMD-rbf, MMD-rq*, MMD-rep, MMD-rep-b and SMMD on the offline digits (issue 8).

Paper 3 (Wang et al., ICLR 2019) Table 1 compares critic losses on one network and one
training procedure ("the models differ only by the loss functions and dimension of
discriminator outputs"); its Figure 3 sweeps the generalized loss L_D,λ over
λ ∈ {−1, −0.5, 0, 0.5, 1, 2}. This script does both at the scale of a 2-core CPU: the
"small" DCGAN-style pair of the offline default run (``configs/digits.cfg``: 16 px,
latents N(0, I₃₂), spectrally normalized critic, joint 1:1 updates, Adam(0.5, 0.999) with
D 5e-4 / G 2e-4, batch 64) on scikit-learn's digits, every loss with the same generator
steps and seeds.

Losses (critic output 16, SMMD's too; 1 only where the loss requires it, as the library says):

==============  ===================================================================
mmd_rbf         paper 3's MMD-rbf: attractive L_att, Gaussian mixture σ ∈ {1, √2, 2, 2√2, 4}
mmd_rq_star     paper 1: attractive MMD², rq* kernel (α ∈ {0.2, 0.5, 1, 2, 5} + ⟨x, y⟩),
                witness gradient penalty 1
mmd_rep         paper 3: repulsive L_rep (λ = 1), single Gaussian σ = 1
mmd_rep_b       paper 3: repulsive with the bounded RBF-B kernel (b_l = 0.25, b_u = 4)
smmd            paper 2: Scaled MMD, Gaussian σ = 1, coefficient 10 (SN-SMMD: the critic
                keeps its spectral norm, as every loss here)
==============  ===================================================================

Evaluation (as ``python -m mmd_keras.launch`` does for digits): KID (raw scale, unbiased MMD²
with the (xᵀy/d + 1)³ kernel) on the digits classifier's 128-d features, 1,000 generated
samples against the 359 held-out digits, 10 subsets of 300; the real-vs-real floor is the
training split against the held-out split with the same settings, and an untrained
generator gives the ceiling. The λ sweep uses a single Gaussian σ = 1 (Figure 3a) and the
first seed; its λ = 1 run is the MMD-rep run of that seed.

Usage::

    python examples/digits_study.py --out runs/digits_study            # the full study
    python examples/digits_study.py --out /tmp/d --quick                 # a minute-sized check

Writes ``digits_study.json`` (every number and setting), ``digits_study_samples.png`` (a sample
grid per loss, first seed) and ``digits_study.png`` (KID per loss across seeds, and KID
against λ) into ``--out``.
"""

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study_utils  # noqa: E402

LOSSES = ("mmd_rbf", "mmd_rq_star", "mmd_rep", "mmd_rep_b", "smmd")
LAMBDAS = (-1.0, -0.5, 0.0, 0.5, 1.0, 2.0)
DEFAULT_STEPS, QUICK_STEPS = 800, 150
SETTINGS = dict(image_size=16, latent_dim=32, batch_size=64, generator_lr=2e-4, critic_lr=5e-4,
                adam_beta2=0.999, sn_mode="pim", critic_schedule="joint")


def build_loss(name, lam=None):
    """The GANLoss of a study name, or of L_D,λ with a single Gaussian σ = 1 when ``lam`` is set."""
    from mmd_keras import kernels, losses

    if lam is not None:
        return losses.get("repulsive", lam=float(lam), kernel=kernels.get("rbf", sigmas=[1.0]))
    if name == "mmd_rbf":
        return losses.get("repulsive", lam=-1.0, kernel=kernels.get("rbf", sigmas=kernels.PAPER3_RBF_SIGMAS))
    if name == "mmd_rq_star":
        return losses.get("mmd", kernel=kernels.get("rq_dot"), gradient_penalty_weight=1.0)
    if name == "mmd_rep":
        return losses.get("repulsive", lam=1.0, kernel=kernels.get("rbf", sigmas=[1.0]))
    if name == "mmd_rep_b":
        return losses.get("rep_b", kernel=kernels.get("rbf", sigmas=[1.0]))
    if name == "smmd":
        return losses.get("smmd", kernel=kernels.get("rbf", sigmas=[1.0]), coefficient=10.0)
    raise ValueError(f"Expected a loss name in {LOSSES}. Received: `name={name!r}`")


def build_model(loss, seed):
    """The offline default's networks and optimizers around ``loss``, seeded."""
    import keras

    from mmd_keras import networks
    from mmd_keras.models import MMDGAN

    keras.utils.set_random_seed(seed)
    s = SETTINGS
    generator = networks.build_generator("small", image_size=s["image_size"], channels=1,
                                         latent_dim=s["latent_dim"])
    critic = networks.build_critic("small", image_size=s["image_size"], channels=1,
                                   output_dim=study_utils.critic_output_dim(loss), sn_mode=s["sn_mode"])
    model = MMDGAN(generator, critic, latent_distribution="normal", critic_schedule=s["critic_schedule"],
                   seed=seed)
    model.compile(generator_optimizer=study_utils.adam(s["generator_lr"], s["adam_beta2"]),
                  critic_optimizer=study_utils.adam(s["critic_lr"], s["adam_beta2"]), loss=loss)
    return model


class Evaluator:
    """KID of generated digits against the held-out split, with the digits classifier."""

    def __init__(self, num_samples, subsets, subset_size):
        from mmd_keras import datasets
        from mmd_keras.evaluation import extractors, metrics

        self.metrics = metrics
        self.extractor = extractors.get("digits")
        self.num_samples, self.subsets = num_samples, subsets
        test_images = datasets.digits_images("test", SETTINGS["image_size"])[0]
        train_images = datasets.digits_images("train", SETTINGS["image_size"])[0]
        self.test_features = self.extractor(test_images)
        self.subset_size = min(subset_size, len(self.test_features), num_samples)
        self.floor = self.kid(self.extractor(train_images), seed=0)

    def kid(self, features, seed):
        result = self.metrics.kernel_inception_distance(
            features, self.test_features, num_subsets=self.subsets, subset_size=self.subset_size, seed=seed)
        return {"mean": result.mean, "std": result.std}

    def score(self, model, seed):
        """KID and the number of digit classes holding >= 2.5 % of the samples (a mode count)."""
        images = model.generate(self.num_samples, seed=seed)
        labels = np.argmax(self.extractor.probabilities(images), axis=1)
        shares = np.bincount(labels, minlength=10) / len(labels)
        return {"kid": self.kid(self.extractor(images), seed=seed),
                "classes_covered": int(np.sum(shares >= 0.025))}, images[:64]


def train_and_score(loss, seed, steps, evaluator):
    """Trains one model; returns its scores (plus seconds) and 64 samples."""
    watch = study_utils.Stopwatch()
    model = build_model(loss, seed)
    if steps:
        from mmd_keras import datasets

        dataset = datasets.build_dataset("digits", "train", image_size=SETTINGS["image_size"],
                                         batch_size=SETTINGS["batch_size"], seed=seed)
        history = model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        if not all(math.isfinite(v) for v in history.history["generator_loss"]):
            print(f"  non-finite generator loss for {loss.name} seed {seed}", flush=True)
    scores, samples = evaluator.score(model, seed)
    scores["seconds"] = watch.elapsed()
    return scores, samples


def _summary(values):
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def run_study(out, losses, seeds, lambdas, steps, num_samples=1000, subsets=10, subset_size=300, log=print):
    """Trains every (loss, seed) and the λ sweep; writes the JSON and the figures; returns the record.

    Order: every loss with the first seed, then the λ sweep, then the other seeds, and the JSON
    and figures are rewritten after each run, so a study cut short still leaves a complete
    first-seed picture (``record["complete"]`` says whether everything ran).
    """
    watch = study_utils.Stopwatch()
    record = {"settings": {**SETTINGS, "steps": steps, "seeds": list(seeds), "losses": list(losses),
                           "lambdas": list(lambdas), "kid": {"num_samples": num_samples, "subsets": subsets,
                                                             "subset_size": subset_size,
                                                             "features": "digits classifier (128-d)",
                                                             "reference": "359 held-out digits"}},
              "machine": study_utils.machine(), "complete": False}
    evaluator = Evaluator(num_samples, subsets, subset_size)
    record["settings"]["kid"]["subset_size"] = evaluator.subset_size
    record["floor"] = evaluator.floor
    untrained = [train_and_score(build_loss("mmd_rep"), seed, 0, evaluator)[0] for seed in seeds]
    record["untrained"] = {"kid": _summary([u["kid"]["mean"] for u in untrained]), "runs": untrained}
    log(f"floor KID {evaluator.floor['mean']:.3f}; untrained generator KID "
        f"{record['untrained']['kid']['mean']:.2f}")
    runs, samples = {name: [] for name in losses}, {}
    record["lambda_sweep"] = {"seed": seeds[0], "kernel": "rbf sigma=1", "runs": []}

    def save():
        record["losses"] = {name: {"kid": _summary([r["kid"]["mean"] for r in rs]),
                                   "classes_covered": _summary([r["classes_covered"] for r in rs]), "runs": rs}
                            for name, rs in runs.items() if rs}
        record["wall_seconds"] = watch.elapsed()
        record["figures"] = plot(out, record, samples)
        study_utils.write_json(os.path.join(out, "digits_study.json"), record)

    for index, seed in enumerate(seeds):
        for name in losses:
            scores, images = train_and_score(build_loss(name), seed, steps, evaluator)
            runs[name].append({"seed": seed, **scores})
            samples.setdefault(name, images)
            log(f"{name:12s} seed {seed}: KID {scores['kid']['mean']:.3f} ± {scores['kid']['std']:.3f}, "
                f"{scores['classes_covered']} classes, {scores['seconds']:.0f} s")
            save()
        if index:
            continue
        for lam in lambdas:
            reuse = lam == 1.0 and runs.get("mmd_rep")  # L_D,1 with σ = 1 is MMD-rep exactly
            if reuse:
                scores = dict(runs["mmd_rep"][0], reused="mmd_rep")
            else:
                scores, _ = train_and_score(build_loss(None, lam=lam), seed, steps, evaluator)
            record["lambda_sweep"]["runs"].append({"lambda": lam, **scores})
            log(f"lambda {lam:+.1f}: KID {scores['kid']['mean']:.3f} ± {scores['kid']['std']:.3f}"
                + (" (the MMD-rep run)" if reuse else f", {scores['seconds']:.0f} s"))
            save()
    record["complete"] = True
    save()
    return record


def _grid(images, rows=8):
    images = np.asarray(images)[: rows * rows, :, :, 0]
    n, size = len(images), images.shape[1]
    canvas = np.ones((rows * (size + 1) - 1, rows * (size + 1) - 1))
    for i in range(n):
        r, c = divmod(i, rows)
        canvas[r * (size + 1): r * (size + 1) + size, c * (size + 1): c * (size + 1) + size] = images[i]
    return canvas


def plot(out, record, samples):
    """``digits_study_samples.png`` (real digits + one grid per loss) and ``digits_study.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmd_keras import datasets

    paths = {}
    real = datasets.digits_images("test", SETTINGS["image_size"])[0][:64]
    panels = [("held-out digits", real)] + [(name, images) for name, images in samples.items()]
    figure, axes = plt.subplots(1, len(panels), figsize=(2.1 * len(panels), 2.4))
    for ax, (title, images) in zip(np.atleast_1d(axes), panels):
        ax.imshow(_grid(images), cmap="gray", vmin=-1, vmax=1)
        kid = record["losses"].get(title, {}).get("kid")
        ax.set_title(title + (f"\nmean KID {kid['mean']:.2f}" if kid else "\n"), fontsize=8)
        ax.axis("off")
    figure.suptitle(f"samples of seed {record['settings']['seeds'][0]} (EMA off); KID: mean over the seeds",
                    fontsize=8, y=0.02)
    paths["samples"] = study_utils.save_figure(figure, os.path.join(out, "digits_study_samples.png"), dpi=110)

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    names = list(record["losses"])
    for i, name in enumerate(names):
        values = [r["kid"]["mean"] for r in record["losses"][name]["runs"]]
        left.scatter([i] * len(values), values, s=14, color="tab:blue", zorder=3)
        left.bar(i, np.mean(values), color="tab:blue", alpha=0.35)
    left.axhline(record["floor"]["mean"], color="tab:green", ls="--", label="real vs real (floor)")
    left.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    left.set_ylabel("KID (digits classifier, raw)")
    left.set_title(f"{record['settings']['steps']} generator steps, seeds {record['settings']['seeds']}\n"
                   f"untrained generator: KID {record['untrained']['kid']['mean']:.1f}", fontsize=9)
    left.legend(fontsize=7)
    sweep = record["lambda_sweep"]["runs"]
    if sweep:
        lams = [r["lambda"] for r in sweep]
        right.errorbar(lams, [r["kid"]["mean"] for r in sweep], yerr=[r["kid"]["std"] for r in sweep],
                       marker="o", capsize=3)
        right.axhline(record["floor"]["mean"], color="tab:green", ls="--")
        right.axvline(0.0, color="gray", lw=0.5)
        right.set_xlabel("λ of L_D,λ (−1 attractive, 1 repulsive)")
        right.set_ylabel("KID")
        right.set_title(f"generalized loss, Gaussian σ = 1, seed {record['lambda_sweep']['seed']}", fontsize=9)
    else:
        right.axis("off")
    paths["study"] = study_utils.save_figure(figure, os.path.join(out, "digits_study.png"))
    return paths


def parse_args(argv=None):
    parser = study_utils.study_parser(__doc__, LOSSES, DEFAULT_STEPS, QUICK_STEPS, default_seeds=(0, 1, 2))
    parser.add_argument("--lambdas", type=float, nargs="*", default=None,
                        help="λ values of the sweep (default -1 -0.5 0 0.5 1 2, --quick: -1 1; none to skip it)")
    args = parser.parse_args(argv)
    study_utils.check_study_args(parser, args, LOSSES, DEFAULT_STEPS, QUICK_STEPS)
    if args.lambdas is None:
        args.lambdas = [-1.0, 1.0] if args.quick else list(LAMBDAS)
    if any(not math.isfinite(lam) for lam in args.lambdas) or len(set(args.lambdas)) != len(args.lambdas):
        parser.error(f"Expected distinct finite `--lambdas`. Received: `--lambdas {args.lambdas}`")
    return args


def main(argv=None, log=None):
    """Command-line entry point; returns the record written to ``digits_study.json``."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    return run_study(args.out, args.losses, args.seeds, args.lambdas, args.steps,
                     num_samples=500 if args.quick else 1000, log=log or study_utils.print_flush)


if __name__ == "__main__":
    main()
