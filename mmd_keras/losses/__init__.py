"""Losses of MMD GANs and their baselines: pure functions, GANLoss objects, registry.

Modules (read in this order): ``estimators`` (MMD² estimators), ``penalties`` (gradient
penalties, activation penalty, Jacobian norms), ``base`` (the GANLoss base class and its
contract with subclasses), ``mmd_family`` (attractive, repulsive, RBF-B, SMMD, SWGAN,
rep-gp), ``gcmmd`` (GC-MMD), ``baselines`` (WGAN-GP, Cramér, Sobolev, hinge,
non-saturating), ``registry`` (names), ``inputs`` (argument checks). Formulas and papers:
docs/numerics.md.

Conventions (every module): ``x`` / ``real_*`` are data samples or their critic
features, ``y`` / ``fake_*`` generator samples; kernel matrices ``k_xx``, ``k_xy``,
``k_yy``; critic losses are minimized by the critic, generator losses by the generator;
all results are float32.

``get(name, **params)`` returns a :class:`GANLoss` (a Keras layer holding the loss's state
variables); the names are ``LOSSES``' keys; ``serialize``/``deserialize`` are Keras's.
"""

from mmd_keras.losses import base, baselines, estimators, gcmmd, inputs, mmd_family, penalties, registry
from mmd_keras.losses.base import MODES, CriticPass, GANLoss, LossOutput, activation_layers
from mmd_keras.losses.baselines import (
    CramerLoss,
    HingeLoss,
    NonSaturatingLoss,
    SobolevLoss,
    WGANGPLoss,
    cramer_critic_loss,
    cramer_generator_loss,
    cramer_surrogate,
    hinge_critic_loss,
    hinge_generator_loss,
    non_saturating_critic_loss,
    non_saturating_generator_loss,
    sobolev_constraint,
    sobolev_critic_loss,
    sobolev_generator_loss,
    wgan_critic_loss,
    wgan_generator_loss,
)
from mmd_keras.losses.estimators import (
    ESTIMATORS,
    expectations,
    kernel_matrices,
    mmd2,
    mmd2_from_matrices,
    validate_features,
)
from mmd_keras.losses.gcmmd import GCMMDLoss, gcmmd2, gcmmd_system
from mmd_keras.losses.mmd_family import (
    BoundedMMDLoss,
    BoundedRepulsiveLoss,
    KernelLoss,
    MMDLoss,
    RepGPLoss,
    RepulsiveLoss,
    SMMDLoss,
    SWGANLoss,
    bounded_kernel_matrices,
    mmd_critic_loss,
    mmd_generator_loss,
    rep_gp_critic_loss,
    repulsive_critic_loss,
    repulsive_generator_loss,
    smmd,
    smmd_scale,
    swgan,
)
from mmd_keras.losses.penalties import (
    gradient_penalty,
    interpolate,
    jacobian_squared_norms,
    l2_activation_penalty,
    wgan_gradient_penalty,
    witness,
    witness_gradient_penalty,
)
from mmd_keras.losses.registry import LOSSES, describe, deserialize, get, serialize
