"""Block and global MMD² across replicas vs one-device references (run as a subprocess).

Usage: ``python replica_checks.py N [N ...]``. One process configures max(N) logical
CPUs; for each N a MirroredStrategy over the first N mirrors a minimal critic (tanh
MLP) and a linear "generator". Inside ``strategy.run`` each replica computes
``mmd2`` on its block (``block``) or on the all-gathered features (``global``,
:func:`mmd_keras.distribute.gather_features`), scales by the replica count and
applies SGD(lr=1). References are computed on one device with plain tensors: the
mean of per-block gradients, and the gradient of ``mmd2`` on the concatenated batch.
Prints ``RESULT {"<N>": {...}, ...}``.
"""

import sys

import common

COUNTS = [int(n) for n in sys.argv[1:]]
DEVICES = common.setup_devices(max(COUNTS))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mmd_keras import distribute  # noqa: E402
from mmd_keras.losses.estimators import mmd2  # noqa: E402

BLOCK, DIM, HIDDEN, OUT, LATENT = 5, 3, 6, 4, 2
NAMES = ("w1", "w2", "g")


def critic(w, x):
    return tf.tanh(x @ w["w1"]) @ w["w2"]


def loss_fn(w, real_block, latent_block, gather=None):
    gather = gather or (lambda t: t)
    fake = latent_block @ w["g"]
    return mmd2(gather(critic(w, real_block)), gather(critic(w, fake)), "rbf")


def reference(init, real_x, latent_z):
    """MMD² and its gradients on one device, plain tensors."""
    w = {k: tf.constant(v) for k, v in init.items()}
    with tf.GradientTape() as tape:
        tape.watch(list(w.values()))
        value = loss_fn(w, real_x, latent_z)
    return float(value), [g.numpy() for g in tape.gradient(value, [w[k] for k in NAMES])]


def check(num):
    rng = np.random.default_rng(num)
    init = {
        "w1": rng.normal(size=(DIM, HIDDEN)).astype(np.float32),
        "w2": rng.normal(size=(HIDDEN, OUT)).astype(np.float32) / 2,
        "g": rng.normal(size=(LATENT, DIM)).astype(np.float32),
    }
    real = rng.normal(size=(num * BLOCK, DIM)).astype(np.float32)
    latents = rng.normal(size=(num * BLOCK, LATENT)).astype(np.float32)
    strategy = distribute.create_strategy("mirrored", devices=DEVICES[:num])
    with strategy.scope():
        result = {"num_replicas": distribute.num_replicas()}

    def per_replica(array):
        def block(context):
            r = context.replica_id_in_sync_group
            return tf.constant(array)[r * BLOCK : (r + 1) * BLOCK]

        return strategy.experimental_distribute_values_from_function(block)

    def run_mode(mode):
        """One SGD(lr=1) step; returns per-replica values, the update, replica spread."""
        with strategy.scope():
            w = {k: tf.Variable(v, name=k) for k, v in init.items()}
            optimizer = keras.optimizers.SGD(learning_rate=1.0)
            optimizer.build([w[k] for k in NAMES])
        gather = distribute.feature_gather_for(mode)

        def step(real_block, latent_block):
            with tf.GradientTape() as tape:
                value = loss_fn(w, real_block, latent_block, gather)
                scaled = distribute.scale_loss(value)
            grads = tape.gradient(scaled, [w[k] for k in NAMES])
            optimizer.apply(grads, [w[k] for k in NAMES])
            return value

        values = strategy.run(tf.function(step), (per_replica(real), per_replica(latents)))
        values = [float(v) for v in strategy.experimental_local_results(values)]
        updates = [init[k] - w[k].numpy() for k in NAMES]  # lr * summed replica gradients
        spread = max(common.max_abs_diff(t.numpy(), w[k].values[0].numpy()) for k in NAMES for t in w[k].values)
        return values, updates, spread

    blocks = [reference(init, real[r * BLOCK : (r + 1) * BLOCK], latents[r * BLOCK : (r + 1) * BLOCK]) for r in range(num)]
    block_mean = [np.mean([b[1][i] for b in blocks], axis=0) for i in range(len(NAMES))]
    global_value, global_grads = reference(init, real, latents)
    values, updates, result["block_replica_spread"] = run_mode("block")
    result["block_value_diff"] = common.max_abs_diff(values, [b[0] for b in blocks])
    result["block_grad_diff"] = common.max_abs_diff(updates, block_mean)
    # How far a wrong mode would be: block mean vs concatenated-batch gradient.
    result["block_vs_global_gap"] = common.max_abs_diff(block_mean, global_grads)
    values, updates, result["global_replica_spread"] = run_mode("global")
    result["global_value_diff"] = common.max_abs_diff(values, [global_value] * num)
    result["global_grad_diff"] = common.max_abs_diff(updates, global_grads)

    # Synchronized batch norm: each block normalized with the global-batch moments.
    with strategy.scope():
        sync_bn = keras.layers.BatchNormalization(synchronized=True, momentum=0.5)
        sync_bn.build((None, DIM))
    out = strategy.run(tf.function(lambda x: sync_bn(x, training=True)), (per_replica(real),))
    out = np.concatenate([t.numpy() for t in strategy.experimental_local_results(out)])
    plain_bn = keras.layers.BatchNormalization(momentum=0.5)
    result["sync_bn_diff"] = common.max_abs_diff(out, plain_bn(tf.constant(real), training=True))
    result["sync_bn_moving_mean_diff"] = common.max_abs_diff(sync_bn.moving_mean.numpy(), plain_bn.moving_mean.numpy())
    if num == 2:  # The MMDGAN fit check costs ~15 CPU s per replica count: run it once.
        result.update(check_model(strategy, num))
    return result


def check_model(strategy, num, steps=2, lr=0.5, seed=3):
    """The real MMDGAN train step (fit, fixed schedule, 1 critic step, SGD) vs a hand replay.

    The replay runs on one device with clones of the initial networks, draws each
    replica's latents with ``mmd_keras.rng.step_seed(..., replica=r)`` exactly as the
    model does, and applies the mean of per-block gradients (block) or the gradient
    on the concatenated batch (global). Loss: "mmd", RBF, no gradient penalty. "block_fresh"
    is block MMD fed fresh real batches (elements ``[batch, 2, 2]``: the critic step trains on
    ``[:, 0]``, the generator step on ``[:, 1]``, each split across the replicas).
    """
    from mmd_keras import kernels, losses, models, networks, rng as rng_lib

    def loss_object():
        return losses.get("mmd", kernel=kernels.get("rbf", sigmas=(1.0, 2.0)), gradient_penalty_weight=0.0)

    def build():
        return (networks.build_generator("mlp", latent_dim=3, data_dim=2, widths=(6,)),
                networks.build_critic("mlp", data_dim=2, widths=(6,), output_dim=3))

    data = np.random.default_rng(10 + num).normal(size=(steps, num * BLOCK, 2)).astype(np.float32)
    fresh_data = np.random.default_rng(20 + num).normal(size=(steps, num * BLOCK, 2, 2)).astype(np.float32)
    reference_generator, reference_critic = build()
    out, finals = {}, {}
    for name in distribute.ACROSS_REPLICAS + ("block_fresh",):
        mode, fresh = name.split("_")[0], name.endswith("_fresh")
        stream = fresh_data if fresh else data
        with strategy.scope():
            generator, critic = build()
            generator.set_weights(reference_generator.get_weights())
            critic.set_weights(reference_critic.get_weights())
            model = models.MMDGAN(generator, critic, critic_steps=1, seed=seed, mmd_across_replicas=mode)
            model.compile(generator_optimizer=keras.optimizers.SGD(lr), critic_optimizer=keras.optimizers.SGD(lr),
                          loss=loss_object())
        model.fit(tf.data.Dataset.from_tensor_slices(stream.reshape((-1,) + stream.shape[2:])).batch(num * BLOCK),
                  epochs=1, verbose=0)
        variables = generator.trainable_variables + critic.trainable_variables
        out[f"model_{name}_replica_spread"] = common.replica_spread(variables)

        gen, cri = build()
        gen.set_weights(reference_generator.get_weights())
        cri.set_weights(reference_critic.get_weights())
        loss = loss_object()
        for step in range(steps):
            def fakes(index):
                seeds = [rng_lib.step_seed(seed, tf.constant(step, tf.int64), index,
                                           rng_lib.PURPOSE_LATENTS, replica=r)
                         for r in range(num)]
                return [gen(rng_lib.sample_latents(BLOCK, 3, "uniform", s), training=True) for s in seeds]

            for index, network, attr in ((0, cri, "critic_loss"),
                                         (rng_lib.GENERATOR_INDEX, gen, "generator_loss")):
                real = stream[step][:, 0 if index == 0 else 1] if fresh else stream[step]
                real_blocks = np.split(real, num)
                with tf.GradientTape(persistent=True) as tape:
                    fake_blocks = fakes(index)
                    if index == 0:
                        fake_blocks = [tf.stop_gradient(f) for f in fake_blocks]
                    if mode == "global":
                        real_blocks, fake_blocks = [np.concatenate(real_blocks)], [tf.concat(fake_blocks, 0)]
                    values = [getattr(loss(cri, tf.constant(x), y, seed=tf.constant([0, 0]), mode="critic" if index == 0 else "generator"), attr)
                              for x, y in zip(real_blocks, fake_blocks)]
                grads = [tape.gradient(v, network.trainable_variables) for v in values]
                for j, variable in enumerate(network.trainable_variables):
                    variable.assign_sub(lr * np.mean([g[j].numpy() for g in grads], axis=0))
        reference = gen.trainable_variables + cri.trainable_variables
        out[f"model_{name}_diff"] = common.max_abs_diff([v.numpy() for v in variables], [v.numpy() for v in reference])
        initial = reference_generator.get_weights() + reference_critic.get_weights()
        out[f"model_{name}_moved"] = common.max_abs_diff([v.numpy() for v in variables], initial)
        finals[name] = [v.numpy() for v in variables]
    out["model_block_vs_global_gap"] = common.max_abs_diff(finals["block"], finals["global"])
    return out


common.emit({str(num): check(num) for num in COUNTS})
