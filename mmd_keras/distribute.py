"""Distribution strategies and cross-replica helpers for MMD GAN training.

Two ways to spread one MMD² estimate over ``R`` replicas:

* **block** (paper 2, Arbel et al. 2018, trained ImageNet 64×64 on 3 GPUs this way):
  each replica computes MMD² on its own real/fake block of ``b`` samples. Every
  replica divides its loss by ``R`` (:func:`scale_loss`); the optimizer *sums*
  replica gradients, so the update is the mean of the ``R`` block gradients. No
  communication besides the gradient all-reduce; the estimate has the variance of a
  batch of ``b``, not ``R·b`` (the kernel sees no cross-block pairs).
* **global**: critic features are all-gathered across replicas
  (:func:`gather_features`, with gradient) and every replica computes the full
  ``R·b × R·b`` kernel. Each replica's loss is again divided by ``R``; the gradient
  of the all-gather routes every replica's share of ``dL/dfeatures`` back to the
  replica that produced those rows (a reduce-scatter sum), so value and gradients
  equal a one-device run on the concatenated batch, whatever ``R`` is. Costs one
  all-gather of ``R·b×s`` features per critic call and ``R²`` more kernel work.

Batch semantics: ``batch_size`` is per replica (paper 2: 64 per GPU); the global
batch is ``batch_size * num_replicas``.

Replica-consistent randomness lives in :mod:`mmd_keras.rng` (seeds of the checkpointed
step counter folded with :func:`replica_id`). Synchronized batch norm is Keras's
``keras.layers.BatchNormalization(synchronized=True)`` (TF backend: moments all-reduced
across replicas).
"""

import json
import os

import tensorflow as tf

from mmd_keras.catalog import ACROSS_REPLICAS, STRATEGIES


def create_strategy(name, tpu=None, devices=None):
    """Creates a ``tf.distribute.Strategy``; call it before building any model.

    Args:
        name: One of ``STRATEGIES``.
            ``"default"``: the no-op default strategy (one device, whatever TF picks).
            ``"one_device"``: ``OneDeviceStrategy`` on the first GPU, else the CPU.
            ``"mirrored"``: ``MirroredStrategy`` over ``devices``, else every GPU,
            else every logical CPU device (virtual devices in tests).
            ``"multi_worker"``: ``MultiWorkerMirroredStrategy`` from the
            ``TF_CONFIG`` environment variable (must name a cluster and this task).
            ``"tpu"``: ``TPUStrategy`` via ``TPUClusterResolver(tpu)``; ``tpu`` is a
            TPU name/``grpc://`` address, or ``None``/``"local"`` on a Cloud TPU VM.
        tpu: TPU address for ``name="tpu"``; must be ``None`` otherwise.
        devices: Optional device list for ``"mirrored"``.

    Returns:
        The strategy. Build models, optimizers, metrics inside ``strategy.scope()``.

    Raises:
        ValueError: for an unknown name, ``tpu`` given without ``name="tpu"``,
            ``devices`` without ``name="mirrored"``, or a missing/invalid ``TF_CONFIG``.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Expected `name` in {STRATEGIES}. Received: `name={name!r}`")
    if tpu is not None and name != "tpu":
        raise ValueError(
            "Expected `tpu=None` unless `name='tpu'` (the TPU address is only used by "
            f"the TPU strategy). Received: `name={name!r}`, `tpu={tpu!r}`"
        )
    if devices is not None and name != "mirrored":
        raise ValueError(
            "Expected `devices=None` unless `name='mirrored'`. "
            f"Received: `name={name!r}`, `devices={devices!r}`"
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=list(devices))
    if name == "multi_worker":
        _validate_tf_config(os.environ.get("TF_CONFIG"))
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu="local" if tpu in (None, "") else tpu
    )
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def check_jit_compile(strategy, jit_compile):
    """Refuses ``jit_compile=True`` where XLA cannot compile Keras's step: several replicas of a
    ``MirroredStrategy``/``MultiWorkerMirroredStrategy``.

    Keras XLA-compiles the whole cross-replica step (``strategy.run`` included) as one program
    placed on the first device, which cannot read the other devices' copies of the variables
    (TF's known XLA issue "tf.Variable on a different device"; a one-``Dense`` Keras model fails
    the same way). ``TPUStrategy`` compiles the replicated step for the TPU, and one device has
    no other copies; Keras's ``jit_compile="auto"`` already turns XLA off under a strategy.

    Raises:
        ValueError: for ``jit_compile=True`` under several mirrored replicas.
    """
    mirrored = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
    if jit_compile is True and isinstance(strategy, mirrored) and strategy.num_replicas_in_sync > 1:
        raise ValueError(
            f'Expected `jit_compile=False` or "auto" under {type(strategy).__name__} over '
            f"{strategy.num_replicas_in_sync} replicas: XLA compiles the step of every replica as "
            "one program on the first device, which cannot reach the other devices' variable "
            "copies (XLA runs under TPUStrategy and on one device). Received: `jit_compile=True`")


def _validate_tf_config(raw):
    """Raises a ValueError naming the problem when ``TF_CONFIG`` cannot drive a worker."""
    example = (
        '{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    if not raw:
        raise ValueError(
            "Expected the `TF_CONFIG` environment variable to be set for "
            f"`name='multi_worker'`, e.g. {example}. Received: `TF_CONFIG` unset"
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"Expected `TF_CONFIG` to be JSON. Received: `TF_CONFIG={raw!r}` ({error})")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster.get("worker"):
        raise ValueError(
            f"Expected `TF_CONFIG` to have a non-empty cluster.worker list, e.g. {example}. "
            f"Received: `TF_CONFIG={raw!r}`"
        )
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError(
            f"Expected `TF_CONFIG` to have task.type and task.index, e.g. {example}. "
            f"Received: `TF_CONFIG={raw!r}`"
        )
    jobs = cluster.get(task["type"], [])
    if not 0 <= int(task["index"]) < len(jobs):
        raise ValueError(
            f"Expected `TF_CONFIG` task.index in [0, {len(jobs)}) for task.type "
            f"{task['type']!r}. Received: `TF_CONFIG={raw!r}`"
        )


def num_replicas():
    """Number of replicas in sync of the current strategy (1 outside any strategy).

    Works in replica context (inside ``strategy.run`` / ``train_step``) and in
    cross-replica context (inside ``strategy.scope()``).
    """
    context = tf.distribute.get_replica_context()
    if context is not None:
        return context.num_replicas_in_sync
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_id():
    """This replica's global index as an int32 scalar tensor (0 outside a replica context)."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return tf.constant(0, tf.int32)
    return tf.cast(context.replica_id_in_sync_group, tf.int32)


def gather_features(x):
    """All-gathers ``x`` along axis 0 across replicas, with gradient (global MMD).

    Inside a replica context with ``R > 1`` replicas, returns the concatenation of
    every replica's ``x`` in replica order (the order in which a distributed dataset
    splits the global batch). Its gradient (TF's ``all_gather`` gradient) sums the
    upstream gradients of all replicas and hands each replica the rows it produced,
    i.e. with each replica's loss divided by ``R`` the summed replica gradients are
    exactly the one-device gradient on the concatenated batch. Elsewhere (one
    replica, cross-replica context, no strategy) it is the identity.

    Args:
        x: ``[b, ...]`` per-replica tensor (same shape on every replica).

    Returns:
        ``[R * b, ...]`` tensor, or ``x`` itself.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x
    return context.all_gather(x, axis=0)


def feature_gather_for(mode):
    """The ``feature_gather`` callable a GANLoss takes for ``mmd_across_replicas=mode``.

    Args:
        mode: ``"block"`` (``None``: each replica keeps its own features) or
            ``"global"`` (:func:`gather_features`).
    """
    if mode not in ACROSS_REPLICAS:
        raise ValueError(
            f"Expected `mmd_across_replicas` in {ACROSS_REPLICAS}. Received: `mmd_across_replicas={mode!r}`"
        )
    return gather_features if mode == "global" else None


def scale_loss(loss):
    """Divides a per-replica loss by the replica count (optimizers sum replica gradients)."""
    replicas = num_replicas()
    return loss if replicas == 1 else loss / tf.cast(replicas, loss.dtype)


def sync_moving_statistics(variables):
    """Averages replica-local non-trainable state across replicas (call inside ``train_step``).

    Keras 3 creates ``BatchNormalization``'s ``moving_mean``/``moving_variance`` with
    aggregation ``"none"``: under MirroredStrategy each replica silently assigns the
    statistics of its own block and the copies drift apart (measured: 1e-2 after two
    steps). This all-reduces (mean, one batched call) every non-trainable floating
    variable whose aggregation is ``"none"`` and assigns the mean on every replica, as
    tf.keras 2 did with ``aggregation=MEAN``. No-op with one replica or outside a
    replica context. Spectral-norm vectors (aggregation ``only_first_replica``) and
    counters are left alone.

    Args:
        variables: iterable of Keras/tf variables, e.g. ``generator.non_trainable_variables``.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return
    targets = [
        v for v in variables
        if not v.trainable and tf.as_dtype(v.dtype).is_floating
        and str(getattr(v, "aggregation", "none")).lower().split(".")[-1] == "none"
    ]
    if targets:
        # One flat tensor: MultiWorkerMirroredStrategy's batched all-reduce of a list of
        # variable reads fails ("destinations can not be empty"); a single tensor works
        # everywhere and is one collective.
        flat = tf.concat([tf.reshape(tf.convert_to_tensor(v), [-1]) for v in targets], axis=0)
        mean = context.all_reduce(tf.distribute.ReduceOp.MEAN, flat)
        parts = tf.split(mean, [v.shape.num_elements() for v in targets])
        for variable, part in zip(targets, parts):
            variable.assign(tf.reshape(part, variable.shape))

