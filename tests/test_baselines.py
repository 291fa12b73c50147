"""Baseline pure loss functions (mmd_keras.losses.baselines) vs NumPy float64 references."""

import numpy as np
import pytest

from mmd_keras import losses
from references import close


def test_wgan_hinge_non_saturating_match_numpy(rng):
    fx, fy = rng.normal(size=(7, 1)), rng.normal(size=(7, 1))
    close(losses.wgan_critic_loss(fx, fy), fy.mean() - fx.mean())
    close(losses.wgan_generator_loss(fy), -fy.mean())
    close(losses.hinge_critic_loss(fx, fy), np.maximum(0, 1 - fx).mean() + np.maximum(0, 1 + fy).mean())
    close(losses.hinge_generator_loss(fy[:, 0]), -fy.mean())
    softplus = lambda t: np.log1p(np.exp(t))  # noqa: E731
    close(losses.non_saturating_critic_loss(fx, fy), softplus(-fx).mean() + softplus(fy).mean())
    close(losses.non_saturating_generator_loss(fy), -np.log(1 / (1 + np.exp(-fy))).mean())


def test_cramer_matches_numpy(rng):
    hx, hy, hy2 = (rng.normal(size=(5, 4)) for _ in range(3))
    norm = lambda t: np.sqrt((t**2).sum(1) + 1e-5)  # noqa: E731
    f = lambda h: norm(h - hy2) - norm(h)  # noqa: E731
    close(losses.cramer_critic_loss(hx, hy, hy2), -(f(hx).mean() - f(hy).mean()))
    close(losses.cramer_generator_loss(hx, hy, hy2), (norm(hx - hy) + norm(hx - hy2) - norm(hy - hy2)).mean())


def test_sobolev_augmented_lagrangian_matches_numpy(rng):
    fx, fy = rng.normal(size=(6,)), rng.normal(size=(6,))
    gx, gy = rng.uniform(0, 2, size=6), rng.uniform(0, 2, size=6)
    lam_l, rho = 0.3, 0.5
    omega = 0.5 * gx.mean() + 0.5 * gy.mean()
    ipm = fx.mean() - fy.mean()
    loss, new = losses.sobolev_critic_loss(fx, fy, gx, gy, lam_l, rho)
    close(loss, -(ipm + lam_l * (1 - omega) - rho / 2 * (omega - 1) ** 2))
    close(new, lam_l - rho * (1 - omega))
    close(losses.sobolev_generator_loss(fx, fy), ipm)


def test_baseline_bad_inputs():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="1-d critic output"):
        losses.wgan_critic_loss(x, x)
    with pytest.raises(ValueError, match="fake_features_2"):
        losses.cramer_critic_loss(x, x, np.zeros((4,)))
