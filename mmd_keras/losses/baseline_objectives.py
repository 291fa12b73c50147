"""GANLoss objects of the baselines: WGAN-GP, hinge, non-saturating, Cramér and Sobolev GAN.

Each class wraps the pure functions of :mod:`~mmd_keras.losses.baselines`; the call
protocol is :class:`~mmd_keras.losses.objectives.GANLoss`'s.
"""

from mmd_keras.losses import baselines
from mmd_keras.losses.objectives import GANLoss, _non_negative


class WGANGPLoss(GANLoss):
    """WGAN-GP (Gulrajani et al.): critic E f(y) − E f(x) + 10·GP, generator −E f(y)."""

    name = "wgan_gp"
    required_output_dim = 1
    default_gradient_penalty_weight = 10.0

    def _losses(self, p, mode):
        critic_loss = baselines.wgan_critic_loss(p.real, p.fakes[0])
        return critic_loss, baselines.wgan_generator_loss(p.fakes[0]), {"wasserstein": -critic_loss}, {}


class HingeLoss(GANLoss):
    """Hinge loss (paper 3's baseline)."""

    name = "hinge"
    required_output_dim = 1

    def _losses(self, p, mode):
        return (baselines.hinge_critic_loss(p.real, p.fakes[0]), baselines.hinge_generator_loss(p.fakes[0]),
                {}, {})


class NonSaturatingLoss(GANLoss):
    """Non-saturating GAN loss with logits (paper 3's baseline)."""

    name = "non_saturating"
    required_output_dim = 1

    def _losses(self, p, mode):
        return (baselines.non_saturating_critic_loss(p.real, p.fakes[0]),
                baselines.non_saturating_generator_loss(p.fakes[0]), {}, {})


class CramerLoss(GANLoss):
    """Cramér GAN (paper 1's baseline): two fake batches, GP 10 on the surrogate critic."""

    name = "cramer"
    num_fake_batches = 2
    default_gradient_penalty_weight = 10.0

    def _penalty_values(self, hat_features, p):
        return baselines.cramer_surrogate(hat_features, p.fakes[1])

    def _losses(self, p, mode):
        critic_loss = baselines.cramer_critic_loss(p.real, p.fakes[0], p.fakes[1])
        generator_loss = baselines.cramer_generator_loss(p.real, p.fakes[0], p.fakes[1])
        return critic_loss, generator_loss, {"surrogate": -critic_loss}, {}


class SobolevLoss(GANLoss):
    """Sobolev GAN (paper 2's baseline), augmented Lagrangian with µ = (P + Q)/2.

    The multiplier lives in ``loss.variables`` ("multiplier"); ``out.state_updates``
    carries its new value, assigned by :meth:`apply_state_updates` after the critic step.
    """

    name = "sobolev"
    required_output_dim = 1
    jacobian = "critic"
    needs_fake_gradients = True

    def __init__(self, rho=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.rho = _non_negative(rho, "rho")
        self.multiplier = self._add_state("multiplier", 0.0)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho}

    def _losses(self, p, mode):
        generator_loss = baselines.sobolev_generator_loss(p.real, p.fakes[0])
        if mode == "generator":
            return -generator_loss, generator_loss, {"ipm": generator_loss}, {}
        critic_loss, new_multiplier = baselines.sobolev_critic_loss(
            p.real, p.fakes[0], p.real_jacobian_sq, p.fake_grad_sq, self.multiplier, self.rho)
        omega = baselines.sobolev_constraint(p.real_jacobian_sq, p.fake_grad_sq)
        metrics = {"ipm": generator_loss, "sobolev_constraint": omega, "sobolev_multiplier": new_multiplier}
        return critic_loss, generator_loss, metrics, {"multiplier": new_multiplier}
