"""2-D mixtures study: seven critic losses on ring8, grid25 and two moons (issue 8).

The toy experiments of the MMD GAN papers in one script, at equal budgets and seeds: an
MLP generator (latents N(0, I₁₆), 2 × 128 ReLU) against an MLP critic (2 × 128 LeakyReLU,
output 16 for the MMD losses, or what the loss requires), joint 1:1 updates (paper 3),
Adam(2e-3, β = (0.5, 0.9)) for both with the rate divided by 10 for the last quarter,
an EMA (0.99) of the generator weights for sampling, batch 256. These are the settings of
``tests/test_toy_training.py``, where MMD-rep covers all 8 ring modes.

Losses:

==============  ==================================================================
mmd_rbf         paper 1: attractive MMD², Gaussian mixture σ ∈ {1, √2, 2, 2√2, 4},
                witness gradient penalty 1
mmd_rq_star     paper 1: attractive MMD², rq* kernel, witness gradient penalty 1
mmd_rep         paper 3: repulsive L_rep, Gaussian σ = 1
mmd_rep_b       paper 3: repulsive with the bounded RBF-B kernel
smmd            paper 2: Scaled MMD, Gaussian σ = 1, coefficient 10
wgan_gp         WGAN-GP (gradient penalty 10), 1-d critic
hinge           hinge loss, 1-d critic
==============  ==================================================================

Targets (``mmd_keras.datasets``): ``ring8`` (8 Gaussians on a circle of radius 2) and
``grid25`` (5 × 5 Gaussians, spacing 2), both with std 0.1, and ``moons`` (scikit-learn's
two moons with noise 0.1, as the study report of paper 1).

Numbers, on 2,000 samples of the EMA generator:

* **modes covered**: a mode (ring8/grid25), or one of 8 arc segments (moons: each moon cut
  into 4 equal arcs) counts when at least N/(4K) samples lie within 3σ of it;
* **high quality**: the fraction of samples within 3σ of a mode (of a moon's arc) —
  the criterion of VEEGAN / Unrolled GAN toy studies;
* **MMD² to the target**: unbiased, Gaussian kernel mixture σ ∈ {0.1, 0.5, 2} on the raw
  coordinates, against 2,000 fresh target samples (0 ± noise for a perfect generator).

Figures: one per target, rows = losses, columns = generator samples over training (black,
over the target in grey) and, last, the critic's witness field at the end (MMD losses: the
empirical witness mean_j k(h(·), h(x_j)) − mean_j k(h(·), h(y_j)); 1-d losses: the critic
output; red = "real" side).

Usage::

    python examples/mixtures.py --out runs/mixtures                 # the full study
    python examples/mixtures.py --out /tmp/m --quick                  # seconds-sized check
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study_utils  # noqa: E402

LOSSES = ("mmd_rbf", "mmd_rq_star", "mmd_rep", "mmd_rep_b", "smmd", "wgan_gp", "hinge")
TARGETS = ("ring8", "grid25", "moons")
STD = 0.1
DEFAULT_STEPS, QUICK_STEPS = 1500, 600
NUM_SAMPLES = 2000
SETTINGS = dict(widths=(128, 128), latent_dim=16, batch_size=256, learning_rate=2e-3, adam_beta2=0.9,
                decay_at=0.75, ema_decay=0.99, critic_schedule="joint", std=STD)
#: Per-target plot window (x and y limits).
WINDOWS = {"ring8": (-3.0, 3.0, -3.0, 3.0), "grid25": (-5.5, 5.5, -5.5, 5.5), "moons": (-1.6, 2.6, -1.3, 1.7)}


def build_loss(name):
    """The GANLoss of a study name (table in the module docstring)."""
    from mmd_keras import kernels, losses

    gaussian = kernels.get("rbf", sigmas=[1.0])
    factories = {
        "mmd_rbf": lambda: losses.get("mmd", kernel=kernels.get("rbf", sigmas=kernels.PAPER3_RBF_SIGMAS)),
        "mmd_rq_star": lambda: losses.get("mmd", kernel=kernels.get("rq_dot")),
        "mmd_rep": lambda: losses.get("repulsive", kernel=gaussian),
        "mmd_rep_b": lambda: losses.get("rep_b", kernel=gaussian),
        "smmd": lambda: losses.get("smmd", kernel=gaussian, coefficient=10.0),
        "wgan_gp": lambda: losses.get("wgan_gp"),
        "hinge": lambda: losses.get("hinge"),
    }
    if name not in factories:
        raise ValueError(f"Expected a loss name in {LOSSES}. Received: `name={name!r}`")
    return factories[name]()


# ------------------------------------------------------------------------------- metrics
def _moons_arcs(points_per_arc=400):
    """Noiseless moon arcs ``[2·P, 2]`` and each point's segment label (moon·4 + quarter)."""
    t = np.linspace(0.0, np.pi, points_per_arc)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    quarter = np.minimum((t / np.pi * 4).astype(int), 3)
    return np.concatenate([upper, lower]), np.concatenate([quarter, 4 + quarter])


def mode_statistics(target, samples, std=STD):
    """``(counts per mode [K], fraction within 3σ)`` of ``samples [N, 2]`` for a target.

    ring8/grid25 use :func:`mmd_keras.datasets.count_modes`; moons assigns each sample
    within 3σ of an arc (:func:`mmd_keras.datasets.moons_distance`) to its nearest arc segment.
    """
    from mmd_keras import datasets

    if target in ("ring8", "grid25"):
        return datasets.count_modes(samples, datasets.toy_modes(target)[0], std, num_std=3)
    samples = np.asarray(samples, np.float64)
    on_arc = datasets.moons_distance(samples) <= 3 * std
    arcs, labels = _moons_arcs()
    nearest = np.argmin(np.sum((samples[:, None, :] - arcs[None]) ** 2, axis=-1), axis=1)
    counts = np.bincount(labels[nearest][on_arc], minlength=8)
    return counts, float(on_arc.mean())


def target_mmd2(samples, reference):
    """Unbiased MMD² between ``samples`` and ``reference`` (Gaussian mixture σ ∈ {0.1, 0.5, 2})."""
    from mmd_keras import kernels, losses

    kernel = kernels.get("rbf", sigmas=[0.1, 0.5, 2.0])
    return float(losses.mmd2(reference.astype(np.float32), samples.astype(np.float32), kernel, "unbiased"))


def score(target, samples, reference):
    counts, high_quality = mode_statistics(target, samples)
    covered = int(np.sum(counts >= len(samples) / (4 * len(counts))))
    return {"modes_covered": covered, "num_modes": len(counts), "high_quality": round(high_quality, 4),
            "mmd2": target_mmd2(samples, reference)}


# ------------------------------------------------------------------------------ training
def reference_samples(target, num_samples, seed):
    """``num_samples`` target points from the library's toy stream (a stream seed apart from training)."""
    from mmd_keras import datasets

    stream = datasets.build_dataset(target, batch_size=num_samples, seed=10_000 + seed, std=STD)
    return next(iter(stream)).numpy()


def build_model(loss, steps, seed):
    import keras

    from mmd_keras import networks
    from mmd_keras.models import MMDGAN

    s = SETTINGS
    keras.utils.set_random_seed(seed)
    generator = networks.build_generator("mlp", latent_dim=s["latent_dim"], widths=s["widths"])
    critic = networks.build_critic("mlp", output_dim=study_utils.critic_output_dim(loss), widths=s["widths"])
    model = MMDGAN(generator, critic, latent_distribution="normal", critic_schedule=s["critic_schedule"],
                   ema_decay=s["ema_decay"], seed=seed)
    optimizers = [study_utils.adam(s["learning_rate"], s["adam_beta2"], steps, s["decay_at"]) for _ in range(2)]
    model.compile(generator_optimizer=optimizers[0], critic_optimizer=optimizers[1], loss=loss)
    return model


def snapshot_steps(steps):
    return sorted({max(1, steps // 8), max(1, steps // 4), max(1, steps // 2), steps})


def train(target, loss, steps, seed, num_snapshot_samples=500):
    """Trains one model; returns it and ``{step: samples}`` at :func:`snapshot_steps`."""
    import keras

    from mmd_keras import datasets

    model = build_model(loss, steps, seed)
    wanted, snapshots = set(snapshot_steps(steps)), {}

    class Snapshots(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch + 1 in wanted:
                snapshots[batch + 1] = model.generate(num_snapshot_samples, seed=seed + 1)

    dataset = datasets.build_dataset(target, batch_size=SETTINGS["batch_size"], seed=seed, std=STD)
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[Snapshots()])
    return model, snapshots


def witness_field(model, loss, reference, window, resolution=70):
    """The critic's view of the plane ``[resolution, resolution]`` (see the module docstring)."""
    import tensorflow as tf

    from mmd_keras import losses

    xs = np.linspace(window[0], window[1], resolution, dtype=np.float32)
    ys = np.linspace(window[2], window[3], resolution, dtype=np.float32)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    features = model.critic(tf.constant(grid), training=False)
    kernel = getattr(loss, "kernel", None)
    if kernel is None:  # WGAN-GP, hinge: the 1-d critic itself is the witness
        values = np.asarray(features)[:, 0]
    else:
        fake = model.generator(model.sample_latents(len(reference), seed=7), training=False)
        values = np.asarray(losses.witness(features, model.critic(tf.constant(reference), training=False),
                                           model.critic(fake, training=False), kernel))
    values = values.reshape(resolution, resolution)
    return values / max(float(np.max(np.abs(values))), 1e-12)


# ------------------------------------------------------------------------------ the study
def run_study(out, targets, losses, seeds, steps, log=print):
    """Trains every (target, loss, seed); writes figures and ``mixtures.json``; returns the record."""
    watch = study_utils.Stopwatch()
    record = {"settings": {**SETTINGS, "widths": list(SETTINGS["widths"]), "steps": steps, "seeds": list(seeds),
                           "num_samples": NUM_SAMPLES, "snapshot_steps": snapshot_steps(steps),
                           "mode_rule": "covered when >= N/(4K) samples within 3 std",
                           "mmd_kernel": "rbf sigmas 0.1, 0.5, 2 (raw coordinates), unbiased"},
              "machine": study_utils.machine(), "results": {}, "figures": {}, "complete": False}
    for target in targets:
        reference = reference_samples(target, NUM_SAMPLES, 0)
        record["results"][target] = {"reference_vs_reference": score(
            target, reference_samples(target, NUM_SAMPLES, 1), reference)}
        panels = {}
        for name in losses:
            runs = []
            for seed in seeds:
                run_watch = study_utils.Stopwatch()
                loss = build_loss(name)
                model, snapshots = train(target, loss, steps, seed)
                scores = score(target, model.generate(NUM_SAMPLES, seed=seed + 100), reference)
                runs.append({"seed": seed, **scores, "seconds": run_watch.elapsed()})
                log(f"{target:6s} {name:12s} seed {seed}: {scores['modes_covered']}/{scores['num_modes']} modes, "
                    f"{scores['high_quality']:.3f} high quality, MMD² {scores['mmd2']:.4f}, "
                    f"{runs[-1]['seconds']:.0f} s")
                if seed == seeds[0]:
                    panels[name] = (snapshots, witness_field(model, loss, reference, WINDOWS[target]), scores)
                record["results"][target][name] = {
                    "runs": runs, **{key: float(np.mean([r[key] for r in runs]))
                                     for key in ("modes_covered", "high_quality", "mmd2")}}
                record["wall_seconds"] = watch.elapsed()
                study_utils.write_json(os.path.join(out, "mixtures.json"), record)  # partial results survive
        record["figures"][target] = plot(os.path.join(out, f"mixtures_{target}.png"), target, reference, panels,
                                         seeds[0])
    record["wall_seconds"], record["complete"] = watch.elapsed(), True
    study_utils.write_json(os.path.join(out, "mixtures.json"), record)
    return record


def plot(path, target, reference, panels, seed):
    """Rows = losses; columns = samples at the snapshot steps, then the witness field."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = WINDOWS[target]
    names = list(panels)
    steps = sorted(next(iter(panels.values()))[0]) if panels else []
    figure, axes = plt.subplots(len(names), len(steps) + 1, figsize=(1.55 * (len(steps) + 1), 1.55 * len(names)),
                                squeeze=False)
    for row, name in enumerate(names):
        snapshots, field, scores = panels[name]
        for col, step in enumerate(steps):
            ax = axes[row, col]
            ax.scatter(reference[:500, 0], reference[:500, 1], s=1, c="0.75", linewidths=0)
            ax.scatter(snapshots[step][:, 0], snapshots[step][:, 1], s=1, c="k", linewidths=0)
            if row == 0:
                ax.set_title(f"step {step}", fontsize=7)
        ax = axes[row, -1]
        ax.imshow(field, origin="lower", extent=window, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.scatter(snapshots[steps[-1]][:200, 0], snapshots[steps[-1]][:200, 1], s=0.5, c="k", linewidths=0)
        ax.set_title(f"{scores['modes_covered']}/{scores['num_modes']} modes, hq {scores['high_quality']:.2f}",
                     fontsize=6)
        axes[row, 0].set_ylabel(name, fontsize=7)
        for ax in axes[row]:
            ax.set_xlim(window[:2])
            ax.set_ylim(window[2:])
            ax.set_xticks([])
            ax.set_yticks([])
    figure.suptitle(f"{target} (std {STD}), seed {seed}: samples over training | witness field", fontsize=8)
    figure.tight_layout(pad=0.3, rect=(0, 0, 1, 0.97))  # room for the suptitle
    return study_utils.save_figure(figure, path, dpi=72)


def parse_args(argv=None):
    parser = study_utils.study_parser(__doc__, LOSSES, DEFAULT_STEPS, QUICK_STEPS, default_seeds=(0,))
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), help=f"among {', '.join(TARGETS)}")
    args = parser.parse_args(argv)
    study_utils.check_choices(parser, "--targets", args.targets, TARGETS)
    return study_utils.check_study_args(parser, args, LOSSES, DEFAULT_STEPS, QUICK_STEPS)


def main(argv=None, log=None):
    """Command-line entry point; returns the record written to ``mixtures.json``."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    return run_study(args.out, args.targets, args.losses, args.seeds, args.steps,
                     log=log or study_utils.print_flush)


if __name__ == "__main__":
    main()
