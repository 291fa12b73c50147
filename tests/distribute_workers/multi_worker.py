"""One worker of a two-process MultiWorkerMirroredStrategy run over loopback.

Usage: ``TF_CONFIG=... python multi_worker.py OUT_DIR`` (started twice by
tests/test_distribute.py, once per task index). Trains the minimal critic/generator
of replica_checks.py for a few SGD steps in ``block`` and in ``global`` mode (one
replica per worker; each replica draws its own data from its global replica id),
checkpoints from the chief (non-chief workers save to a private folder and delete
it), and writes its final weights to ``OUT_DIR/weights_<task>.npz``. The chief also
replays the run on one device (mean of block gradients / concatenated-batch
gradient) and reports the difference.
"""

import json
import os
import shutil
import sys

import common

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mmd_keras import distribute  # noqa: E402
from mmd_keras.losses.estimators import mmd2  # noqa: E402

OUT = sys.argv[1]
STEPS, BLOCK, DIM, HIDDEN, OUT_DIM, LATENT, LR = 3, 4, 3, 5, 3, 2, 0.5
TASK = json.loads(os.environ["TF_CONFIG"])["task"]["index"]

strategy = distribute.create_strategy("multi_worker")
REPLICAS = strategy.num_replicas_in_sync
rng = np.random.default_rng(0)  # same initial weights on every worker (MWMS also broadcasts)
init = {
    "w1": rng.normal(size=(DIM, HIDDEN)).astype(np.float32),
    "w2": rng.normal(size=(HIDDEN, OUT_DIM)).astype(np.float32),
    "g": rng.normal(size=(LATENT, DIM)).astype(np.float32),
}
NAMES = sorted(init)
data = np.random.default_rng(1).normal(size=(STEPS, REPLICAS * BLOCK, DIM + LATENT)).astype(np.float32)


def loss_fn(w, batch, gather=None):
    gather = gather or (lambda t: t)
    real, latents = batch[:, :DIM], batch[:, DIM:]
    critic = lambda x: tf.tanh(x @ w["w1"]) @ w["w2"]  # noqa: E731
    return mmd2(gather(critic(real)), gather(critic(latents @ w["g"])), "rbf")


def train(mode):
    with strategy.scope():
        w = {k: tf.Variable(v, name=f"{mode}_{k}") for k, v in init.items()}
        optimizer = keras.optimizers.SGD(LR)
        optimizer.build([w[k] for k in NAMES])
    gather = distribute.feature_gather_for(mode)

    @tf.function
    def step(step_index):
        def replica_step():
            rid = distribute.replica_id()
            batch = tf.gather(tf.constant(data), step_index)[rid * BLOCK : (rid + 1) * BLOCK]
            with tf.GradientTape() as tape:
                loss = distribute.scale_loss(loss_fn(w, batch, gather))
            grads = tape.gradient(loss, [w[k] for k in NAMES])
            optimizer.apply(grads, [w[k] for k in NAMES])

        strategy.run(replica_step)

    for i in range(STEPS):
        step(tf.constant(i))
    return w, optimizer


def replay(mode):
    w = {k: tf.Variable(v) for k, v in init.items()}
    for i in range(STEPS):
        blocks = [data[i]] if mode == "global" else np.split(data[i], REPLICAS)
        grads = []
        for batch in blocks:
            with tf.GradientTape() as tape:
                loss = loss_fn(w, tf.constant(batch))
            grads.append(tape.gradient(loss, [w[k] for k in NAMES]))
        for j, k in enumerate(NAMES):
            w[k].assign_sub(LR * np.mean([g[j].numpy() for g in grads], axis=0))
    return {k: v.numpy() for k, v in w.items()}


def is_chief(strategy):
    """Worker 0 (no chief task in this cluster) writes the real checkpoint."""
    resolver = strategy.cluster_resolver
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


result = {"task": TASK, "replicas": REPLICAS, "is_chief": is_chief(strategy)}
weights = {}
checkpoint_items = {}
for mode in distribute.ACROSS_REPLICAS:
    w, optimizer = train(mode)
    weights.update({f"{mode}/{k}": v.numpy() for k, v in w.items()})
    checkpoint_items.update({f"{mode}_{k}": v for k, v in w.items()})
    checkpoint_items[f"{mode}_optimizer"] = optimizer
    if is_chief(strategy):
        reference = replay(mode)
        result[f"{mode}_replay_diff"] = common.max_abs_diff(
            [weights[f"{mode}/{k}"] for k in NAMES], [reference[k] for k in NAMES]
        )
        result[f"{mode}_moved"] = common.max_abs_diff([weights[f"{mode}/{k}"] for k in NAMES], [init[k] for k in NAMES])

# Every worker must save (collective); a non-chief worker saves to a private directory.
directory = os.path.join(OUT, "ckpt")
if not is_chief(strategy):
    directory = os.path.join(directory, f".worker_{strategy.cluster_resolver.task_id}")
path = tf.train.Checkpoint(**checkpoint_items).write(os.path.join(directory, "ckpt"))
if not is_chief(strategy):
    shutil.rmtree(directory)
else:
    result["checkpoint"] = path
np.savez(os.path.join(OUT, f"weights_{TASK}.npz"), **weights)
common.emit(result)
