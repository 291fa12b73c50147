"""MMDGAN `fit` under a 3-replica MirroredStrategy (run as a subprocess).

Usage: ``python model_checks.py``. Three logical CPUs.

1. ``fit`` of 3 steps, "small" networks at 8 px: SN (PIM) critic, batch-norm
   generator, EMA, default "mmd" loss (rq* kernel + witness gradient penalty), block
   MMD: every variable (networks, EMA, optimizers, SN vectors, BN statistics,
   step) must be identical on every replica.
2. The imagenet64 config (configs/imagenet64.cfg: SN-SMMD, SN-ResNet, block
   MMD, clipping, Adam) with tiny sizes (16 px, widths 4, batch 2 per replica) for 2
   steps, with ``critic_schedule=fixed, critic_steps=1`` instead of paper2 (paper2
   traces 5 + 10 critic steps: ~3 CPU minutes here).
Prints ``RESULT {...}``.
"""

import os

import common

DEVICES = common.setup_devices(3)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mmd_keras import distribute, models, networks  # noqa: E402
from mmd_keras.app import launch, runner  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
strategy = distribute.create_strategy("mirrored")
rng = np.random.default_rng(0)
result = {"replicas": strategy.num_replicas_in_sync}


def all_variables(model):
    """Every variable of the model: networks, EMA, both optimizers, loss state, step."""
    variables = list(model.variables) + list(model.generator_optimizer.variables) + list(model.critic_optimizer.variables)
    if model.ema_generator is not None:
        variables += list(model.ema_generator.variables)
    return variables + list(getattr(model.loss_object, "variables", []) or [])


def images(num, size, channels):
    return tf.data.Dataset.from_tensor_slices(rng.uniform(-1, 1, (num, size, size, channels)).astype("float32"))


# 1. SN + EMA + BN fit.
keras.utils.set_random_seed(1)
with strategy.scope():
    generator = networks.build_generator("small", image_size=8, channels=1, latent_dim=4, widths=(4,))
    critic = networks.build_critic("small", image_size=8, channels=1, widths=(4,), output_dim=4, sn_mode="pim")
    model = models.MMDGAN(generator, critic, critic_steps=1, ema_decay=0.5)
    model.compile(generator_optimizer=keras.optimizers.Adam(1e-2), critic_optimizer=keras.optimizers.Adam(1e-2), loss="mmd")
initial = [v.numpy() for v in model.generator.trainable_variables + [model.critic.non_trainable_variables[0]]]
history = model.fit(images(18, 8, 1).batch(6), epochs=1, verbose=0)
variables = all_variables(model)
result["fit_variables"] = len(variables)
result["fit_sn_vectors"] = sum("sn_u" in getattr(v, "path", v.name) for v in variables)
result["fit_bn_statistics"] = sum("moving_" in getattr(v, "path", v.name) for v in variables)
result["fit_replica_spread"] = common.replica_spread(variables)
result["fit_step"] = int(model.step.numpy())
result["fit_moved"] = common.max_abs_diff(
    initial, [v.numpy() for v in model.generator.trainable_variables + [model.critic.non_trainable_variables[0]]]
)
result["fit_ema_differs"] = common.max_abs_diff(
    [v.numpy() for v in model.ema_generator.weights], [v.numpy() for v in model.generator.weights]
)
result["fit_logs_finite"] = all(np.isfinite(v).all() for v in history.history.values())
# evaluate under the strategy: the loss's values on held-out batches, no variable changed.
before = [v.numpy() for v in variables]
evaluation = model.evaluate(images(12, 8, 1).batch(6), verbose=0, return_dict=True)
result["evaluate_changed"] = common.max_abs_diff(before, [v.numpy() for v in all_variables(model)])
result["evaluate_finite_logs"] = sorted(k for k, v in evaluation.items() if np.isfinite(v).all())

# Real images in [0, 255] are refused (ValueError naming the range) before any update.
before = [v.numpy() for v in all_variables(model)]
try:
    model.fit(images(12, 8, 1).map(lambda x: (x + 1.0) * 127.5).batch(6), epochs=1, verbose=0)
    result["range_error"] = ""
except ValueError as error:
    result["range_error"] = str(error)
result["range_error_changed"] = common.max_abs_diff(before, [v.numpy() for v in all_variables(model)])
common.progress("fit done")
# 2. imagenet64 config, tiny.
config, _ = launch.parse([
    "launch", f"--flagfile={os.path.join(ROOT, 'configs', 'imagenet64.cfg')}",
    "--image_size=16", "--generator_widths=4,4", "--critic_widths=4,4", "--latent_dim=4", "--batch_size=2",
    "--critic_schedule=fixed", "--critic_steps=1",
])
result["imagenet64"] = {k: getattr(config, k) for k in ("architecture", "loss", "sn_mode", "mmd_across_replicas", "critic_schedule", "strategy")}
keras.utils.set_random_seed(2)
with strategy.scope():
    model = runner.build_model(config)
critic_before = [v.numpy() for v in model.critic.trainable_variables]
history = model.fit(images(12, 16, 3).batch(config.batch_size * 3), epochs=1, verbose=0)
variables = all_variables(model)
result["imagenet64_replica_spread"] = common.replica_spread(variables)
result["imagenet64_step"] = int(model.step.numpy())
result["imagenet64_sn_vectors"] = sum("sn_u" in getattr(v, "path", v.name) for v in variables)
result["imagenet64_critic_moved"] = common.max_abs_diff(critic_before, [v.numpy() for v in model.critic.trainable_variables])
result["imagenet64_logs"] = {k: float(np.ravel(v)[-1]) for k, v in history.history.items()}
result["imagenet64_generate_shape"] = list(model.generate(3, seed=0).shape)

common.emit(result)
