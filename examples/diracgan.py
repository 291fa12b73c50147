"""DiracGAN: paper 2's Example 1 and Figure 1, computed with mmd_keras's losses.

Arbel, Sutherland, Bińkowski, Gretton, *On gradient regularizers for MMD GANs* (NeurIPS
2018), Example 1: the target is a point mass P = δ₀, the model Q_θ = δ_θ (θ ∈ R), the critic
φ_ψ(x) = ψx (ψ ∈ R) under the Gaussian kernel K(a, b) = exp(−(a − b)²/2), so that
k_ψ = K ∘ φ_ψ is a Gaussian kernel of bandwidth 1/ψ and

    MMD²_ψ(δ₀, δ_θ) = 2 (1 − exp(−ψ²θ²/2)),    D_MMD(θ) = sup_ψ MMD_ψ = √2 for θ ≠ 0.

What the script computes (every value through the library, checked against the closed forms):

* MMD² with ``mmd_keras.losses.mmd2(..., estimator="biased")``. A Dirac has one sample, and the
  unbiased estimators need at least two (they drop the diagonal k(x, x)); for point masses the
  biased (V-statistic) form *is* the population MMD², which is what the paper plots.
* SMMD with ``mmd_keras.losses.smmd`` (paper 2's constants: σ⁻² = 1 + 10·E_µ‖∇φ_ψ‖²) and
  E_µ‖∇φ_ψ‖² from ``mmd_keras.losses.jacobian_squared_norms`` on samples of µ = Uniform(0, θ)
  (the WGAN-GP measure of Figure 1(b)). For this linear critic ∇φ_ψ = ψ everywhere, so the
  scale is 1/(1 + 10ψ²) whatever µ is.
* GC-MMD with ``mmd_keras.losses.gcmmd2`` (Proposition 3's linear system, λ = 1) on M evenly
  spaced points of µ = Uniform(0, θ); ψ is kept to ψ|θ|/M ≤ 1/4 so the points resolve the
  kernel's width 1/ψ.
* Gradient fields v = (−∂_θ D², ∂_ψ D²) by ``tf.GradientTape`` (the generator descends, the
  critic ascends); µ is held fixed for the θ-derivative, as the SMMD scale is for the
  generator. The fields are drawn in the figure's coordinates (θ, 1/ψ), where the critic's
  velocity is −∂_ψ D²/ψ².
* Flows: simultaneous gradient descent/ascent from three starts A, B, C (our choice of
  points of the kinds the paper describes), and the distances optimized over ψ on a grid.

Not reproduced: the Lipschitz MMD of Figure 1(d) (it needs a convex solver over a dense grid,
Appendix D; the library has no estimator for it).

Usage::

    python examples/diracgan.py --out runs/diracgan [--quick]

writes ``diracgan_fields.png``, ``diracgan_distances.png`` and ``diracgan.json`` into ``--out``.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import study_utils  # noqa: E402  (examples/ is on sys.path when a script runs)
from mmd_keras import kernels, losses  # noqa: E402

#: K(a, b) = exp(−(a − b)²/2) on the critic's output: k_ψ is a Gaussian of bandwidth 1/ψ.
KERNEL = kernels.get("rbf", sigmas=(1.0,))
DISTANCES = ("mmd", "smmd", "gcmmd")
LABELS = {"mmd": "MMD", "smmd": "SMMD", "gcmmd": "GC-MMD"}
#: Starts of the flows as (θ, 1/ψ): A converges under MMD, B sharpens its kernel and stalls,
#: C sits where exp(−ψ²θ²/2) ≈ 1e-14, so the MMD has essentially no gradient.
STARTS = {"A": (1.0, 2.0), "B": (3.0, 3.0), "C": (4.0, 0.5)}
SMMD_COEFFICIENT, SMMD_OFFSET = 10.0, 1.0
GCMMD_LAMBDA = 1.0
CONVERGED = 0.1  # |θ| below this counts as having reached the target

SETTINGS = {
    "full": dict(grid=21, steps=3000, num_mu=128, theta_points=81, psi_points=48),
    "quick": dict(grid=7, steps=600, num_mu=32, theta_points=13, psi_points=16),
}


# ----------------------------------------------------------------------------- closed forms
def closed_form_mmd2(theta, psi):
    """MMD²_ψ(δ₀, δ_θ) = 2(1 − exp(−ψ²θ²/2)) (paper 2, Example 1)."""
    return 2.0 * (1.0 - np.exp(-0.5 * np.square(psi * theta)))


def closed_form_smmd(theta, psi, coefficient=SMMD_COEFFICIENT, offset=SMMD_OFFSET):
    """SMMD = MMD² / (offset + coefficient·ψ²): ∇φ_ψ = ψ, so E_µ‖∇φ_ψ‖² = ψ² for every µ."""
    return closed_form_mmd2(theta, psi) / (offset + coefficient * np.square(psi))


# --------------------------------------------------------------------- library computations
def critic(psi):
    """φ_ψ(x) = ψx on inputs [b, 1] -> features [b, 1]."""
    return lambda x: psi * x


def mu_samples(theta, num_mu):
    """M evenly spaced points of Uniform(0, θ) as [M, 1]; held fixed for the θ-derivative."""
    u = (tf.range(num_mu, dtype=tf.float32) + 0.5) / float(num_mu)
    return tf.stop_gradient(theta) * u[:, tf.newaxis]


def distance_sq(name, theta, psi, num_mu):
    """D² of one (θ, ψ): "mmd" MMD², "smmd" SMMD, "gcmmd" GC-MMD², float32 scalars in."""
    phi = critic(psi)
    real = phi(tf.zeros([1, 1]))
    fake = phi(tf.reshape(theta, [1, 1]))
    if name == "mmd":
        return losses.mmd2(real, fake, KERNEL, estimator="biased")
    mu = mu_samples(theta, num_mu)
    if name == "smmd":
        _, jacobian_sq = losses.jacobian_squared_norms(phi, mu)
        return losses.smmd(real, fake, tf.reduce_mean(jacobian_sq), KERNEL, coefficient=SMMD_COEFFICIENT,
                           offset=SMMD_OFFSET, estimator="biased")
    with tf.GradientTape() as tape:
        tape.watch(mu)
        features = phi(mu)
    # One output, one input, no mixing of samples: the row gradient is each sample's Jacobian.
    jacobians = tape.gradient(features, mu)[:, :, tf.newaxis]
    return losses.gcmmd2(features, jacobians, real, fake, KERNEL, lam=GCMMD_LAMBDA, estimator="biased")


def value_and_field(name, theta, psi, num_mu):
    """(D², −∂_θ D², ∂_ψ D²): the generator descends, the critic ascends."""
    with tf.GradientTape() as tape:
        tape.watch([theta, psi])
        value = distance_sq(name, theta, psi, num_mu)
    d_theta, d_psi = tape.gradient(value, [theta, psi])
    return value, -d_theta, d_psi


_COMPILED = {}


def _compiled(kind, name, num_mu):
    """One tf.function per (kind, distance, M): the grids and flows reuse their traces."""
    key = (kind, name, num_mu)
    if key not in _COMPILED:
        if kind == "map":
            signature = [tf.TensorSpec([None], tf.float32)] * 2

            def fn(thetas, psis):
                return tf.map_fn(lambda tp: tf.stack(value_and_field(name, tp[0], tp[1], num_mu)),
                                 (thetas, psis), fn_output_signature=tf.float32)
        else:
            signature = [tf.TensorSpec([], tf.float32)] * 2 + [tf.TensorSpec([], tf.int32),
                                                                tf.TensorSpec([], tf.float32)]

            def fn(theta, psi, steps, learning_rate):
                path = tf.TensorArray(tf.float32, size=steps + 1)
                path = path.write(0, tf.stack([theta, psi]))
                for i in tf.range(steps):
                    _, v_theta, v_psi = value_and_field(name, theta, psi, num_mu)
                    theta, psi = theta + learning_rate * v_theta, psi + learning_rate * v_psi
                    path = path.write(i + 1, tf.stack([theta, psi]))
                return path.stack()
        _COMPILED[key] = tf.function(fn, input_signature=signature)
    return _COMPILED[key]


def evaluate(name, thetas, psis, num_mu):
    """:func:`value_and_field` on flat arrays of θ and ψ: [n, 3] of (D², −∂_θ D², ∂_ψ D²)."""
    thetas = tf.constant(np.asarray(thetas, np.float32).ravel())
    psis = tf.constant(np.asarray(psis, np.float32).ravel())
    return _compiled("map", name, num_mu)(thetas, psis).numpy()


def flow(name, theta0, psi0, steps, learning_rate, num_mu):
    """Simultaneous gradient descent (θ) / ascent (ψ); returns [steps + 1, 2] of (θ, ψ)."""
    return _compiled("flow", name, num_mu)(
        tf.constant(theta0, tf.float32), tf.constant(psi0, tf.float32), tf.constant(steps, tf.int32),
        tf.constant(learning_rate, tf.float32)).numpy()


def optimized_distance(name, thetas, psi_points, num_mu):
    """D(θ) = sup_ψ sqrt(D²) over ψ = s/|θ|, s = ψ|θ| log-spaced in [0.01, 32]; and the argmax ψ.

    Parametrizing by s = ψ|θ| covers every θ with one grid; s ≤ 32 keeps the M µ-points of
    GC-MMD dense relative to the kernel width (ψ|θ|/M ≤ 1/4 for M = 128). MMD² rises
    monotonically in ψ, so its "optimum" is the grid's largest ψ (the sup is at ψ → ∞).
    """
    s = np.logspace(-2.0, np.log10(32.0), psi_points)
    thetas = np.asarray(thetas, np.float64)
    safe = np.where(thetas == 0.0, 1.0, np.abs(thetas))
    psis = s[None, :] / safe[:, None]
    values = evaluate(name, np.repeat(thetas, psi_points), psis, num_mu)[:, 0].reshape(psis.shape)
    # Ties (MMD² saturates at 2 in float32) go to the larger ψ, towards the sup at ψ → ∞.
    best = psi_points - 1 - np.argmax(values[:, ::-1], axis=1)
    distance = np.sqrt(np.maximum(values[np.arange(len(thetas)), best], 0.0))
    distance[thetas == 0.0] = 0.0
    return distance, psis[np.arange(len(thetas)), best]


def first_converged_step(path):
    hits = np.flatnonzero(np.abs(path[:, 0]) < CONVERGED)
    return None if hits.size == 0 else int(hits[0])


# --------------------------------------------------------------------------------- figures
def plot_fields(fields, paths, grid_theta, grid_inv_psi, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(fields), figsize=(4.0 * len(fields) + 1.0, 3.9), sharey=True,
                             constrained_layout=True)
    panels = {"mmd": "(a) ", "smmd": "(b) ", "gcmmd": "(extra) "}
    colors = {"A": "tab:green", "B": "tab:orange", "C": "tab:red"}
    for ax, (name, (u, v)) in zip(axes, fields.items()):
        speed = np.hypot(u, v)
        norm = np.where(speed > 0, speed, 1.0)
        quiver = ax.quiver(grid_theta, grid_inv_psi, u / norm, v / norm, np.log10(speed + 1e-30),
                           cmap="viridis", clim=(-12, 0), angles="xy", pivot="mid",
                           scale=1.3 * grid_theta.shape[1], width=0.005)
        for start, trajectory in paths[name].items():
            ax.plot(trajectory[:, 0], 1.0 / trajectory[:, 1], color=colors[start], lw=1.8)
            ax.plot(trajectory[0, 0], 1.0 / trajectory[0, 1], "o", color=colors[start])
            ax.annotate(start, (trajectory[0, 0], 1.0 / trajectory[0, 1]), xytext=(4, 4),
                        textcoords="offset points", color=colors[start], weight="bold")
        ax.set_title(f"{panels[name]}{LABELS[name]}: v = (−∂θ D², ∂ψ D²)", fontsize=10)
        ax.set_xlabel("θ")
        ax.set_xlim(grid_theta.min() - 0.3, grid_theta.max() + 0.3)
        ax.set_ylim(0, grid_inv_psi.max() + 0.3)
    axes[0].set_ylabel("1/ψ")
    fig.colorbar(quiver, ax=axes, shrink=0.9, pad=0.01, label="log10 ‖v‖ (arrows normalized; dots: ‖v‖ = 0)")
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_distances(critics_x, critic_curves, theta_star, thetas, distances, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, curve in critic_curves.items():
        left.plot(critics_x, curve, label=label, lw=1.5)
    left.axvline(0.0, color="k", lw=0.5)
    left.axvline(theta_star, color="k", lw=0.5, ls="--")
    left.set_title(f"(c) unit-norm critics η/‖η‖ for θ = {theta_star:g}")
    left.set_xlabel("x")
    left.legend(fontsize=8)
    for name, values in distances.items():
        right.plot(thetas, values, label=f"D_{LABELS[name]}", lw=1.5)
    right.set_title("(d) distances optimized over ψ")
    right.set_xlabel("θ")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ------------------------------------------------------------------------------------ main
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the PNGs and diracgan.json")
    parser.add_argument("--quick", action="store_true", help="coarse grids and short flows (tests)")
    parser.add_argument("--learning_rate", type=float, default=0.1, help="step of the flows (default 0.1)")
    parser.add_argument("--steps", type=int, default=None, help="flow steps (default 3000; 600 with --quick)")
    args = parser.parse_args(argv)
    if not args.learning_rate > 0:
        parser.error(f"Expected `--learning_rate` > 0. Received: `--learning_rate={args.learning_rate}`")
    study_utils.check_positive(parser, "--steps", args.steps)
    study_utils.check_out(parser, args.out)
    return args


def run(out, quick=False, learning_rate=0.1, steps=None):
    """Computes everything and writes the figures and ``diracgan.json``; returns the numbers."""
    started = time.time()
    cfg = dict(SETTINGS["quick" if quick else "full"])
    cfg["steps"] = steps or cfg["steps"]
    num_mu = cfg["num_mu"]

    # Library vs closed forms on a (θ, ψ) grid.
    check_theta, check_psi = np.meshgrid(np.linspace(-5, 5, 11), np.geomspace(0.05, 10.0, 9))
    library_error = {}
    for name, exact in (("mmd", closed_form_mmd2), ("smmd", closed_form_smmd)):
        values = evaluate(name, check_theta, check_psi, num_mu)[:, 0]
        library_error[name] = float(np.max(np.abs(values - exact(check_theta, check_psi).ravel())))

    # (a, b) fields in (θ, 1/ψ) coordinates.
    grid_theta, grid_inv_psi = np.meshgrid(np.linspace(-5, 5, cfg["grid"]), np.linspace(0.25, 5, cfg["grid"]))
    fields = {}
    for name in DISTANCES:
        out_values = evaluate(name, grid_theta, 1.0 / grid_inv_psi, num_mu)
        v_theta = out_values[:, 1].reshape(grid_theta.shape)
        v_psi = out_values[:, 2].reshape(grid_theta.shape)
        fields[name] = (v_theta, -v_psi * grid_inv_psi ** 2)  # d(1/ψ)/dt = −ψ̇/ψ²

    # Flows from A, B, C (GC-MMD only from C in quick mode: it is the slow one).
    paths, flows = {}, {}
    for name in DISTANCES:
        paths[name], flows[name] = {}, {}
        starts = {"C": STARTS["C"]} if quick and name == "gcmmd" else STARTS
        for start, (theta0, inv_psi0) in starts.items():
            path = flow(name, theta0, 1.0 / inv_psi0, cfg["steps"], learning_rate, num_mu)
            paths[name][start] = path
            _, v_theta, v_psi = evaluate(name, [theta0], [1.0 / inv_psi0], num_mu)[0]
            flows[name][start] = {
                "start_theta": theta0, "start_inv_psi": inv_psi0,
                "final_theta": float(path[-1, 0]), "final_inv_psi": float(1.0 / path[-1, 1]),
                "theta_moved": float(abs(path[-1, 0] - theta0)),
                "first_step_abs_theta_below_0.1": first_converged_step(path),
                "speed_at_start": float(np.hypot(v_theta, v_psi)),
            }

    # (c) critics for θ = 20 and (d) distances optimized over ψ.
    theta_star = 20.0
    thetas = np.linspace(-5, 5, cfg["theta_points"])
    distances, argmax_psi = {}, {}
    for name in DISTANCES:
        distances[name], argmax_psi[name] = optimized_distance(name, thetas, cfg["psi_points"], num_mu)
    critic_psi = {}
    for name in ("mmd", "smmd"):
        _, psi_best = optimized_distance(name, [theta_star], cfg["psi_points"], num_mu)
        critic_psi[f"optimal {LABELS[name]} (ψ = {psi_best[0]:.3g})"] = float(psi_best[0])
    critic_psi["ψ = 1 (‖φ‖_Lip = 1, as under SN)"] = 1.0
    critics_x = np.linspace(-10, 30, 801).astype(np.float32)
    critic_curves, critic_pull = {}, {}
    for label, psi in critic_psi.items():
        phi = critic(tf.constant(psi, tf.float32))
        real, fake = phi(tf.zeros([1, 1])), phi(tf.constant([[theta_star]]))
        norm = np.sqrt(float(losses.mmd2(real, fake, KERNEL, estimator="biased")))
        x = tf.constant(critics_x[:, None])
        with tf.GradientTape() as tape:
            tape.watch(x)
            curve = losses.witness(phi(x), real, fake, KERNEL) / norm
        slope = tape.gradient(curve, x)[:, 0].numpy()
        critic_curves[label] = curve.numpy()
        # The generator's pull at its own location: the critic's slope at x = θ.
        critic_pull[label] = {"psi": psi, "abs_slope_at_theta": float(abs(slope[np.argmin(abs(critics_x - theta_star))]))}

    os.makedirs(out, exist_ok=True)
    plot_fields(fields, paths, grid_theta, grid_inv_psi, os.path.join(out, "diracgan_fields.png"))
    plot_distances(critics_x, critic_curves, theta_star, thetas, distances,
                   os.path.join(out, "diracgan_distances.png"))
    small = np.abs(thetas) > 0
    results = {
        "paper": "Arbel et al. 2018 (paper 2), Example 1 and Figure 1",
        "settings": {**cfg, "quick": bool(quick), "learning_rate": learning_rate, "kernel": "rbf sigma=1",
                     "smmd": f"MMD^2/({SMMD_OFFSET:g} + {SMMD_COEFFICIENT:g} E_mu|grad phi|^2), mu=Uniform(0,theta)",
                     "gcmmd_lambda": GCMMD_LAMBDA, "mmd_estimator": "biased (point masses have one sample)",
                     "deterministic": "no random numbers are drawn"},
        "library_vs_closed_form_max_abs_error": library_error,
        "flows": flows,
        "distances_over_theta": {
            "theta": thetas.tolist(),
            **{name: distances[name].tolist() for name in DISTANCES},
            "argmax_psi": {name: argmax_psi[name].tolist() for name in DISTANCES},
            "mmd_min_over_theta_nonzero": float(distances["mmd"][small].min()),
        },
        "critics_theta_20": critic_pull,
        "seconds": round(time.time() - started, 1),
    }
    with open(os.path.join(out, "diracgan.json"), "w") as f:
        json.dump(results, f, indent=1)
    return results


def main(argv=None):
    args = parse_args(argv)
    results = run(args.out, quick=args.quick, learning_rate=args.learning_rate, steps=args.steps)
    for name, per_start in results["flows"].items():
        for start, r in per_start.items():
            print(f"{LABELS[name]:7s} from {start}: θ {r['start_theta']:.2f} -> {r['final_theta']:.4g}, "
                  f"1/ψ {r['start_inv_psi']:.2f} -> {r['final_inv_psi']:.3g}, "
                  f"|θ| < {CONVERGED} at step {r['first_step_abs_theta_below_0.1']}")
    print(f"wrote {args.out}/diracgan_fields.png, diracgan_distances.png, diracgan.json "
          f"({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
