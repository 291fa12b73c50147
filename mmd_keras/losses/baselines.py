"""Baseline GAN losses: pure functions of critic outputs and the GANLoss classes wrapping them.

Conventions: ``real_output`` (x) and ``fake_output`` (y) are critic outputs, [b] or
[b, 1] for 1-d critics, [b, s] for the Cramér critic. Critic losses are minimized by
the critic, generator losses by the generator. Gradient penalties are added by the
caller (:class:`~mmd_keras.losses.base.GANLoss`). All float32.

* WGAN(-GP) (Gulrajani et al. 2017): L_D = E f(y) − E f(x), L_G = −E f(y).
* Cramér GAN (Bellemare et al. 2017, Alg. 1; paper 1 §2.3): surrogate critic
  f(z) = ‖h(z) − h(y′)‖ − ‖h(z)‖ with a second fake batch y′; L_D = −(E f(x) − E f(y));
  L_G = E‖h(x) − h(y)‖ + E‖h(x) − h(y′)‖ − E‖h(y) − h(y′)‖ (row-wise pairs).
  Norms are sqrt(‖·‖² + 1e-5) as in the codes.
* Sobolev GAN (Mroueh et al. 2018; paper 2's baseline): IPM E f(x) − E f(y) under
  Ω = ½E_x‖∇f‖² + ½E_y‖∇f‖² = 1 (µ = (P+Q)/2) by augmented Lagrangian
  L = IPM + λ_L(1 − Ω) − ρ/2(Ω − 1)², critic maximizes L, λ_L ← λ_L − ρ(1 − Ω).
  The multiplier is an explicit input and the updated one an explicit output.
* Hinge (Lim & Ye 2017; paper 3's baseline): L_D = E relu(1 − f(x)) + E relu(1 + f(y)),
  L_G = −E f(y).
* Non-saturating (Goodfellow et al. 2014): L_D = E softplus(−f(x)) + E softplus(f(y)),
  L_G = E softplus(−f(y)) (logits f).
"""

import keras
import tensorflow as tf

from mmd_keras import catalog
from mmd_keras.losses import inputs
from mmd_keras.losses.base import GANLoss
from mmd_keras.losses.inputs import scalar_output

CRAMER_EPSILON = 1e-5


def wgan_critic_loss(real_output, fake_output):
    """E f(y) − E f(x) (penalty excluded). Shapes [b] or [b, 1]."""
    return tf.reduce_mean(scalar_output(fake_output, "fake_output")) - tf.reduce_mean(
        scalar_output(real_output, "real_output")
    )


def wgan_generator_loss(fake_output):
    """−E f(y)."""
    return -tf.reduce_mean(scalar_output(fake_output, "fake_output"))


def hinge_critic_loss(real_output, fake_output):
    """E relu(1 − f(x)) + E relu(1 + f(y))."""
    return tf.reduce_mean(tf.nn.relu(1.0 - scalar_output(real_output, "real_output"))) + tf.reduce_mean(
        tf.nn.relu(1.0 + scalar_output(fake_output, "fake_output"))
    )


hinge_generator_loss = wgan_generator_loss


def non_saturating_critic_loss(real_output, fake_output):
    """E softplus(−f(x)) + E softplus(f(y)): cross-entropy with logits f."""
    return tf.reduce_mean(tf.nn.softplus(-scalar_output(real_output, "real_output"))) + tf.reduce_mean(
        tf.nn.softplus(scalar_output(fake_output, "fake_output"))
    )


def non_saturating_generator_loss(fake_output):
    """E softplus(−f(y)) = −E log D(y)."""
    return tf.reduce_mean(tf.nn.softplus(-scalar_output(fake_output, "fake_output")))


def _rows(t, name):
    t = tf.convert_to_tensor(t)
    if t.shape.rank != 2:
        raise ValueError(f"Expected `{name}` of rank 2 with shape [batch, s]. Received: `{name}.shape={t.shape}`")
    return tf.cast(t, tf.float32)


def _check_same_shape(**tensors):
    shapes = {k: v.shape for k, v in tensors.items()}
    first = next(iter(shapes.values()))
    if any(s.is_fully_defined() and first.is_fully_defined() and s != first for s in shapes.values()):
        raise ValueError(f"Expected equal shapes [batch, s]. Received: {shapes}")


def cramer_norm(t):
    """Row-wise sqrt(‖t‖² + 1e-5), [b, s] -> [b]."""
    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=1) + CRAMER_EPSILON)


def cramer_surrogate(features, fake_features_2):
    """Cramér critic f(z) = ‖h(z) − h(y′)‖ − ‖h(z)‖ row-wise, [b, s] x [b, s] -> [b]."""
    return cramer_norm(features - fake_features_2) - cramer_norm(features)


def cramer_critic_loss(real_features, fake_features, fake_features_2):
    """−(E f(x) − E f(y)) with the surrogate critic of a second fake batch (penalty excluded)."""
    real = _rows(real_features, "real_features")
    fake = _rows(fake_features, "fake_features")
    fake_2 = _rows(fake_features_2, "fake_features_2")
    _check_same_shape(real_features=real, fake_features=fake, fake_features_2=fake_2)
    return tf.reduce_mean(cramer_surrogate(fake, fake_2)) - tf.reduce_mean(cramer_surrogate(real, fake_2))


def cramer_generator_loss(real_features, fake_features, fake_features_2):
    """E‖h(x) − h(y)‖ + E‖h(x) − h(y′)‖ − E‖h(y) − h(y′)‖ (Bellemare et al., Alg. 1)."""
    real = _rows(real_features, "real_features")
    fake = _rows(fake_features, "fake_features")
    fake_2 = _rows(fake_features_2, "fake_features_2")
    _check_same_shape(real_features=real, fake_features=fake, fake_features_2=fake_2)
    return tf.reduce_mean(cramer_norm(real - fake) + cramer_norm(real - fake_2) - cramer_norm(fake - fake_2))


def sobolev_constraint(real_grad_sq_norms, fake_grad_sq_norms):
    """Ω = ½E_x‖∇f(x)‖² + ½E_y‖∇f(y)‖² from per-sample squared gradient norms [b]."""
    return 0.5 * tf.reduce_mean(tf.cast(real_grad_sq_norms, tf.float32)) + 0.5 * tf.reduce_mean(
        tf.cast(fake_grad_sq_norms, tf.float32)
    )


def sobolev_critic_loss(real_output, fake_output, real_grad_sq_norms, fake_grad_sq_norms, multiplier, rho=1e-6):
    """Sobolev GAN critic loss with explicit augmented-Lagrangian state.

    Args:
      real_output, fake_output: [b] or [b, 1] critic values f.
      real_grad_sq_norms, fake_grad_sq_norms: [b] per-sample ‖∇_x f‖² at each batch.
      multiplier: scalar Lagrange multiplier λ_L (state, initially 0).
      rho: penalty weight ρ of the augmented Lagrangian.

    Returns:
      (loss, new_multiplier): loss = −(IPM + λ_L(1 − Ω) − ρ/2(Ω − 1)²) to minimize;
      new_multiplier = λ_L − ρ(1 − Ω) (a stop-gradient tensor) to store.
    """
    ipm = tf.reduce_mean(scalar_output(real_output, "real_output")) - tf.reduce_mean(
        scalar_output(fake_output, "fake_output")
    )
    omega = sobolev_constraint(real_grad_sq_norms, fake_grad_sq_norms)
    multiplier = tf.cast(multiplier, tf.float32)
    lagrangian = ipm + multiplier * (1.0 - omega) - 0.5 * rho * tf.square(omega - 1.0)
    new_multiplier = tf.stop_gradient(multiplier - rho * (1.0 - omega))
    return -lagrangian, new_multiplier


def sobolev_generator_loss(real_output, fake_output):
    """The IPM estimate E f(x) − E f(y) (only the fake term depends on the generator)."""
    return tf.reduce_mean(scalar_output(real_output, "real_output")) - tf.reduce_mean(
        scalar_output(fake_output, "fake_output")
    )


@keras.saving.register_keras_serializable(package="mmd_keras")
class WGANGPLoss(GANLoss):
    """WGAN-GP (Gulrajani et al.): critic E f(y) − E f(x) + 10·GP, generator −E f(y)."""

    name = "wgan_gp"
    required_output_dim = 1
    default_gradient_penalty_weight = 10.0
    #: The WGAN-GP code paper 1 compared with took a plain sqrt in its legacy norm.
    legacy_gp_epsilon = 0.0

    def _loss_terms(self, p, mode):
        critic_loss = wgan_critic_loss(p.real, p.fakes[0])
        return critic_loss, wgan_generator_loss(p.fakes[0]), {"wasserstein": -critic_loss}, {}


@keras.saving.register_keras_serializable(package="mmd_keras")
class HingeLoss(GANLoss):
    """Hinge loss (paper 3's baseline)."""

    name = "hinge"
    required_output_dim = 1

    def _loss_terms(self, p, mode):
        return (hinge_critic_loss(p.real, p.fakes[0]), hinge_generator_loss(p.fakes[0]),
                {}, {})


@keras.saving.register_keras_serializable(package="mmd_keras")
class NonSaturatingLoss(GANLoss):
    """Non-saturating GAN loss with logits (paper 3's baseline)."""

    name = "non_saturating"
    required_output_dim = 1

    def _loss_terms(self, p, mode):
        return (non_saturating_critic_loss(p.real, p.fakes[0]),
                non_saturating_generator_loss(p.fakes[0]), {}, {})


@keras.saving.register_keras_serializable(package="mmd_keras")
class CramerLoss(GANLoss):
    """Cramér GAN (paper 1's baseline): two fake batches, GP 10 on the surrogate critic."""

    name = "cramer"
    num_fake_batches = 2
    default_gradient_penalty_weight = 10.0

    def _penalty_values(self, hat_features, p):
        return cramer_surrogate(hat_features, p.fakes[1])

    def _loss_terms(self, p, mode):
        critic_loss = cramer_critic_loss(p.real, p.fakes[0], p.fakes[1])
        generator_loss = cramer_generator_loss(p.real, p.fakes[0], p.fakes[1])
        return critic_loss, generator_loss, {"surrogate": -critic_loss}, {}


@keras.saving.register_keras_serializable(package="mmd_keras")
class SobolevLoss(GANLoss):
    """Sobolev GAN (paper 2's baseline), augmented Lagrangian with µ = (P + Q)/2.

    The multiplier lives in ``loss.variables`` ("multiplier"); ``out.state_updates``
    carries its new value, assigned by :meth:`apply_state_updates` after the critic step.
    """

    name = "sobolev"
    parameters = catalog.LOSSES["sobolev"]
    required_output_dim = 1
    jacobian = "critic"
    needs_fake_gradients = True

    def __init__(self, rho=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.rho = inputs.non_negative(rho, "rho")
        self.multiplier = self._add_state("multiplier", 0.0)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho}

    def _loss_terms(self, p, mode):
        generator_loss = sobolev_generator_loss(p.real, p.fakes[0])
        if mode == "generator":
            return -generator_loss, generator_loss, {"ipm": generator_loss}, {}
        critic_loss, new_multiplier = sobolev_critic_loss(
            p.real, p.fakes[0], p.real_jacobian_sq, p.fake_gradient_sq, self.multiplier, self.rho)
        omega = sobolev_constraint(p.real_jacobian_sq, p.fake_gradient_sq)
        metrics = {"ipm": generator_loss, "sobolev_constraint": omega, "sobolev_multiplier": new_multiplier}
        return critic_loss, generator_loss, metrics, {"multiplier": new_multiplier}
