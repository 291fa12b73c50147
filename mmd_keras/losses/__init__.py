"""Losses of MMD GANs and their baselines: pure functions, GANLoss objects, registry.

Conventions (every module): ``x`` / ``real_*`` are data samples or their critic
features, ``y`` / ``fake_*`` generator samples; kernel matrices ``k_xx``, ``k_xy``,
``k_yy``; critic losses are minimized by the critic, generator losses by the generator;
all results are float32.

``get(name, **params)`` returns a :class:`GANLoss`; names: "mmd", "repulsive", "rep_b",
"mmd_rbf_b", "smmd", "swgan", "rep_gp", "gcmmd", "wgan_gp", "cramer", "sobolev",
"hinge", "non_saturating".
"""

from mmd_keras.losses.baselines import (
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
from mmd_keras.losses.gcmmd import gcmmd2, gcmmd_system
from mmd_keras.losses.mmd import (
    ESTIMATORS,
    expectations,
    kernel_matrices,
    mmd2,
    mmd2_from_matrices,
    validate_features,
)
from mmd_keras.losses.mmd_losses import (
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
from mmd_keras.losses.baseline_objectives import CramerLoss, HingeLoss, NonSaturatingLoss, SobolevLoss, WGANGPLoss
from mmd_keras.losses.kernel_objectives import (
    BoundedMMDLoss,
    BoundedRepulsiveLoss,
    GCMMDLoss,
    MMDLoss,
    RepGPLoss,
    RepulsiveLoss,
    SMMDLoss,
    SWGANLoss,
)
from mmd_keras.losses.objectives import MODES, GANLoss, LossOutput
from mmd_keras.losses.registry import LOSSES, get, serialize
from mmd_keras.losses.penalties import (
    clip_gradients_per_tensor,
    gradient_penalty,
    interpolate,
    jacobian_squared_norms,
    l2_activation_penalty,
    uniform_from_seed,
    wgan_gradient_penalty,
    witness,
    witness_gradient_penalty,
)
