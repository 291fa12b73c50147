"""Paper 2's schedule under a 2-replica MirroredStrategy: ``steps_per_execution`` (run as a
subprocess).

Usage: ``python paper2_steps.py``. Two logical CPUs. The same small MMDGAN (critic_schedule
"paper2", block MMD) trains 4 generator steps from step 18 (10, 10, 5, 5 critic steps) with
``steps_per_execution`` 1 and 2; prints ``RESULT {...}`` with the largest weight difference,
the critic updates and the train-function calls of each.
"""

import common

DEVICES = common.setup_devices(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mmd_keras import distribute, models  # noqa: E402

LATENT_DIM, BATCH, STEPS, START = 4, 4, 4, 18
strategy = distribute.create_strategy("mirrored")
real = np.random.default_rng(0).uniform(-1, 1, (STEPS * BATCH, 4, 4, 1)).astype("float32")


def train(steps_per_execution):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        z = keras.Input((LATENT_DIM,))
        generator = keras.Model(z, keras.layers.Reshape((4, 4, 1))(keras.layers.Dense(16, activation="tanh")(z)))
        images = keras.Input((4, 4, 1))
        h = keras.layers.LeakyReLU(0.2)(keras.layers.Dense(8)(keras.layers.Flatten()(images)))
        critic = keras.Model(images, keras.layers.Dense(3)(h))
        model = models.MMDGAN(generator, critic, latent_dim=LATENT_DIM, critic_schedule="paper2")
        model.compile(generator_optimizer=keras.optimizers.Adam(1e-2), critic_optimizer=keras.optimizers.Adam(1e-2),
                      loss="repulsive", steps_per_execution=steps_per_execution)
    model.step.assign(START)
    initial = [np.asarray(v) for v in model.generator.variables + model.critic.variables]
    calls = []
    function = model.make_train_function()
    model.train_function = lambda iterator: calls.append(1) or function(iterator)
    model.fit(tf.data.Dataset.from_tensor_slices(real).batch(BATCH), epochs=1, verbose=0)
    weights = [np.asarray(v) for v in model.generator.variables + model.critic.variables]
    return weights, common.max_abs_diff(weights, initial), int(model.critic_optimizer.iterations.numpy()), int(model.step.numpy()), len(calls), model


single, moved, single_critic, single_step, single_calls, _ = train(1)
double, _, double_critic, double_step, double_calls, model = train(2)
common.emit({
    "replicas": strategy.num_replicas_in_sync,
    "max_diff": common.max_abs_diff(single, double),
    "moved": moved,
    "critic_updates": [single_critic, double_critic], "steps": [single_step, double_step],
    "calls": [single_calls, double_calls],
    "replica_spread": common.replica_spread(model.generator.variables + model.critic.variables),
})
