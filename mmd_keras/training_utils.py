"""Deprecated module name: the EMA helpers are in `mmd_keras.ema`, the RNG in `mmd_keras.rng`."""
from mmd_keras.ema import clone_network, update_ema  # noqa: F401
from mmd_keras.rng import (  # noqa: F401
    GENERATOR_INDEX, LATENT_DISTRIBUTIONS, PURPOSE_LATENTS, PURPOSE_LATENTS_2, PURPOSE_LOSS, sample_latents,
    step_seed)
from mmd_keras.rng import uniform01 as stateless_uniform01  # noqa: F401
