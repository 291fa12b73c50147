"""Runs a :class:`mmd_keras.config.RunConfig`: the body of ``python -m mmd_keras.launch``.

Order of a run (nothing is written before every check has passed):

1. :func:`preflight` — checks that need the library but write nothing: the networks can make
   the image size, the loss accepts its parameters, the data exists, the workdir is writable
   and does not hold a checkpoint of a different run (``run.json``).
2. The workdir lock (``<workdir>/.lock``, ``fcntl.flock``: released by the OS even on SIGKILL);
   a second run on the same workdir refuses.
3. Strategy → inside its scope: networks, :class:`mmd_keras.models.MMDGAN`, Adam optimizers
   (betas per config) built before ``fit``, evaluation callback, ``tf.train.Checkpoint``
   (model + callback state); restore of the latest checkpoint (exact resume).
4. ``flags.cfg`` (replays the run) and ``run.json``; then ``fit`` in generator steps with
   ``steps_per_epoch``/``initial_epoch`` from the restored step counter (a partial first epoch
   when resuming mid-epoch); the data stream skips the batches already consumed.
5. Final checkpoint, sample grid, KID, SavedModel export; each location printed.

Layout of a workdir: ``flags.cfg``, ``run.json``, ``checkpoints/`` (``best/`` inside),
``samples/step_XXXXXXX.png`` + ``latest.png``, ``tensorboard/``. The SavedModel goes to
``<export_dir>/<name>/<version>/`` (default ``saved_models/``, TF Serving's layout).
"""

import dataclasses
import fcntl
import json
import os
import shlex
import time

import numpy as np

from mmd_keras import config as config_lib
from mmd_keras.config import ConfigError

RUN_FILE = "run.json"
FLAGS_FILE = "flags.cfg"
LOCK_FILE = ".lock"
EXIT_OK, EXIT_NON_FINITE = 0, 1


# --- checks that write nothing --------------------------------------------------------------

def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_workdir(config):
    """Raises ConfigError if the workdir cannot be used: not creatable/writable, or holding a
    checkpoint written with different :data:`mmd_keras.config.IDENTITY_FIELDS`."""
    workdir = os.path.abspath(config.workdir)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError("workdir", "Expected `--workdir` to be a directory. Received: "
                          f"`--workdir={config.workdir}` (an existing file)")
    existing = _nearest_existing(workdir)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError("workdir", "Expected `--workdir` to be a writable directory (or "
                          f"creatable: {existing} is not a writable directory). Received: "
                          f"`--workdir={config.workdir}`")
    export_dir = os.path.abspath(config.export_dir)
    if config.export and os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ConfigError("export_dir", "Expected `--export_dir` to be a directory. Received: "
                          f"`--export_dir={config.export_dir}` (an existing file)")
    run_file = os.path.join(workdir, RUN_FILE)
    if not os.path.exists(run_file):
        return
    with open(run_file) as f:
        saved = json.load(f).get("identity", {})
    for name, value in config_lib.identity(config).items():
        if name in saved and saved[name] != value:
            flag = "ema_decay" if name == "ema_decay_on" else name
            raise ConfigError(
                flag, f"Expected `--{flag}` to match the checkpoint in `--workdir="
                f"{config.workdir}` (written with {name}={saved[name]!r}); use another --workdir "
                f"or the same flags. Received: `{name}={value!r}`")


def networks_kwargs(config):
    """``(generator_kwargs, critic_kwargs)`` of ``mmd_keras.networks`` for ``config``."""
    generator = dict(latent_dim=config.latent_dim)
    critic = dict(output_dim=config.critic_output_dim, learned_gain=config.learned_gain,
                  sn_mode=None if config.sn_mode == "default" else config.sn_mode)
    if config.channels:
        for kwargs in (generator, critic):
            kwargs.update(image_size=config.image_size, channels=config.channels)
    if config.synchronized_bn and config.architecture != "mlp":  # the MLP has no batch norm
        generator["batch_norm"] = "synchronized"
    if config.generator_widths:
        generator["widths"] = config.generator_widths
    if config.critic_widths:
        critic["widths"] = config.critic_widths
    return generator, critic


def loss_params(config):
    """Keyword arguments of ``mmd_keras.losses.get`` for ``config`` (kernel + extra params)."""
    params = config.parsed_loss_params()
    if config.loss in config_lib.KERNEL_LOSSES and "kernel" not in params:
        from mmd_keras import kernels

        if config.kernel == "rbf":
            params["kernel"] = kernels.get("rbf", sigmas=config.kernel_sigmas)
        elif config.kernel in ("rq", "rq_dot"):
            params["kernel"] = kernels.get(config.kernel, alphas=config.kernel_alphas)
        else:
            params["kernel"] = kernels.get(config.kernel)
    return params


def build_loss(config):
    """The GANLoss of ``config``; ConfigError naming ``--loss_params`` on bad parameters."""
    from mmd_keras import losses

    try:
        return losses.get(config.loss, **loss_params(config))
    except ValueError as error:
        raise ConfigError("loss_params", f"Expected `--loss_params` that `--loss={config.loss}` "
                          f"accepts ({error}). Received: `--loss_params="
                          f"{','.join(config.loss_params)}`") from None


def build_dataset(config, start_step=0, split=None, replicas=1):
    """The training stream of global batches (``--batch_size`` per replica x ``replicas``; Keras
    splits each across the replicas); with ``--deterministic`` a resumed run skips the consumed
    batches, otherwise the shuffle is reseeded by the start step (no replay, no skipping)."""
    from mmd_keras import datasets

    deterministic = config.deterministic
    return datasets.build_dataset(
        config.dataset, split=split, image_size=config.image_size if config.channels else None,
        batch_size=config.batch_size * replicas, data_dir=config.data_dir or None,
        seed=config.seed if deterministic else config.seed + start_step,
        deterministic=deterministic, start_batch=start_step if deterministic else 0)


def preflight(config, check_data=True):
    """Every check that needs the library but writes nothing; raises ConfigError.

    ``check_data=False`` skips opening the dataset (e.g. to check a paper config offline).
    """
    from mmd_keras import networks

    if config.data_dir and not os.path.isdir(config.data_dir):
        raise ConfigError("data_dir", "Expected `--data_dir` to be an existing directory. "
                          f"Received: `--data_dir={config.data_dir}`")
    check_workdir(config)
    generator_kwargs, critic_kwargs = networks_kwargs(config)
    try:
        validate_kwargs = {k: v for k, v in {**generator_kwargs, **critic_kwargs}.items()
                           if k not in ("widths", "sn_mode") and v is not None}
        if critic_kwargs["sn_mode"] is not None:
            validate_kwargs["sn_mode"] = critic_kwargs["sn_mode"]
        networks.validate(config.architecture, **validate_kwargs)
    except ValueError as error:
        flag = next((name for name in ("image_size", "latent_dim", "sn_mode", "channels")
                     if name in str(error)), "architecture")
        flag = "dataset" if flag == "channels" else flag
        raise ConfigError(flag, f"Expected `--{flag}` that `--architecture="
                          f"{config.architecture}` can build ({error}). Received: "
                          f"`--{flag}={getattr(config, flag)}`") from None
    loss = build_loss(config)
    required = getattr(loss, "required_output_dim", None)
    if required is not None and required != config.critic_output_dim:
        raise ConfigError("critic_output_dim", f"Expected `--critic_output_dim={required}` for "
                          f"`--loss={config.loss}`. Received: "
                          f"`--critic_output_dim={config.critic_output_dim}`")
    if not check_data:
        return
    check_eval_weights(config)
    try:
        build_dataset(config)
    except ValueError as error:  # DatasetNotAvailableError is a ValueError too.
        flag = "data_dir" if config.dataset in config_lib.FILE_DATASETS else "dataset"
        raise ConfigError(flag, f"Expected `--dataset={config.dataset}` to be readable "
                          f"(`--data_dir={config.data_dir}`). {error}") from None


# --- the workdir lock -------------------------------------------------------------------------

class WorkdirLock:
    """An exclusive ``flock`` on ``<workdir>/.lock`` (the OS releases it when the process dies)."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.path = os.path.join(workdir, LOCK_FILE)
        self._fd = None

    def acquire(self):
        """Takes the lock; ConfigError naming ``--workdir`` when another process holds it."""
        created_dir = not os.path.exists(self.workdir)
        os.makedirs(self.workdir, exist_ok=True)
        created_file = not os.path.exists(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError("workdir", f"Expected `--workdir` not in use by another run; "
                              f"{self.path} is locked by {holder}. Wait for it to finish or use "
                              f"another --workdir. Received: `--workdir={self.workdir}`") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode())
        self._fd, self._created = fd, (created_dir, created_file)
        return self

    def release(self, remove_if_created=False):
        """Releases the lock; optionally removes what :meth:`acquire` created."""
        if self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        created_dir, created_file = self._created
        if remove_if_created and created_file:
            os.remove(self.path)
            if created_dir and not os.listdir(self.workdir):
                os.rmdir(self.workdir)


# --- building the run --------------------------------------------------------------------------

def fit_plan(start_step, total_steps, steps_per_epoch):
    """The ``fit`` calls that take the step counter from ``start_step`` to ``total_steps``.

    Returns:
        list of ``(initial_epoch, epochs, steps_per_epoch, first_step)``: a partial epoch when
        ``start_step`` is mid-epoch, the full epochs, and a partial last epoch if needed.
    """
    plan, step = [], start_step
    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        if offset or total_steps - step < steps_per_epoch:
            n = min(steps_per_epoch - offset, total_steps - step)
            plan.append((epoch, epoch + 1, n, step))
        else:
            full = (total_steps - step) // steps_per_epoch
            n = full * steps_per_epoch
            plan.append((epoch, epoch + full, steps_per_epoch, step))
        step += n
    return plan


def build_model(config):
    """Networks + compiled MMDGAN with Adam (betas per config), optimizers built."""
    import keras

    from mmd_keras import models, networks

    generator_kwargs, critic_kwargs = networks_kwargs(config)
    try:
        generator = networks.build_generator(config.architecture, **generator_kwargs)
        critic = networks.build_critic(config.architecture, **critic_kwargs)
    except ValueError as error:
        flag = "generator_widths" if "widths" in str(error) else "architecture"
        raise ConfigError(flag, f"Expected networks `--architecture={config.architecture}` can "
                          f"build. {error}") from None
    model = models.MMDGAN(
        generator, critic, latent_dim=config.latent_dim,
        latent_distribution=config.latent_distribution,
        critic_schedule=config.critic_schedule, critic_steps=config.critic_steps,
        ema_decay=config.ema_decay or None, clip_norm=config.clip_norm or None,
        seed=config.seed, mmd_across_replicas=config.mmd_across_replicas)
    adam = dict(beta_1=config.adam_beta1, beta_2=config.adam_beta2)
    model.compile(generator_optimizer=keras.optimizers.Adam(config.generator_lr, **adam),
                  critic_optimizer=keras.optimizers.Adam(config.critic_lr, **adam),
                  loss=build_loss(config), jit_compile=config.jit_compile)
    return model


def evaluation_images(config, split):
    """Real images in [-1, 1] for evaluation: held-out digits, else the first
    ``eval_num_samples`` of the (shuffled) training stream.

    The digits split is the one the training stream uses (``digits_split`` with its fixed
    seed), whatever ``config.seed``: the held-out reference must never hold training images.
    """
    from mmd_keras import datasets

    if config.dataset == "digits":
        return datasets.digits_images(split, config.image_size)[0]
    batches = [batch.numpy() for batch in build_dataset(config).take(
        -(-config.eval_num_samples // config.batch_size))]
    return np.concatenate(batches)[:config.eval_num_samples]


def evaluation_needs_weights(config):
    """Whether evaluation of ``config`` uses the FID Inception (needs ``--eval_weights``)."""
    return config.dataset not in ("digits",) + config_lib.TOY_DATASETS and (
        config.evaluate or config.adaptive_lr or config.eval_every > 0)


def check_eval_weights(config):
    """ConfigError naming ``--eval_weights`` when the KID-driven learning rate cannot run
    (plain evaluation without weights is skipped with a message instead)."""
    if config.eval_weights and not os.path.isfile(config.eval_weights):
        raise ConfigError("eval_weights", "Expected `--eval_weights` to be an existing .npz "
                          f"file. Received: `--eval_weights={config.eval_weights}`")
    if evaluation_needs_weights(config) and config.adaptive_lr and not config.eval_weights:
        raise ConfigError(
            "eval_weights", f"Expected `--eval_weights` (FID-Inception weights: `python -m "
            "mmd_keras.tools.convert_fid_inception pt_inception-2015-12-05-6726825d.pth OUT.npz`) "
            f"for `--adaptive_lr` on `--dataset={config.dataset}`, or pass --noadaptive_lr. "
            "Received: `--eval_weights=`")


def build_evaluation(config, writer, on_new_best, print_fn, model=None):
    """The EvaluationCallback of ``config`` and the real-vs-real KID floor, or ``(None, None)``.

    digits: digits-classifier features, generated vs held-out digits (floor: training vs
    held-out). Other image datasets: FID-Inception features (``--eval_weights``) vs
    ``eval_num_samples`` training images (floor: None). With ``--adaptive_lr`` and SMMD/SWGAN,
    a decay also scales the loss's gradient-penalty coefficient (paper 2).
    """
    if not config.evaluate or config.dataset in config_lib.TOY_DATASETS:
        return None, None
    if config.dataset != "digits" and not config.eval_weights:
        print_fn("KID skipped: pass --eval_weights=<FID-Inception .npz> to evaluate on "
                 f"{config.dataset}.")
        return None, None
    from mmd_keras import adaptive_lr, extractors, metrics

    if config.dataset == "digits":
        extractor = extractors.get("digits")
    else:
        extractor = extractors.get("fid_inception", weights_path=config.eval_weights)
    real_features = extractor(evaluation_images(config, "test"))
    coefficient = getattr(getattr(model, "loss_object", None), "coefficient", None)
    coefficients = [coefficient] if coefficient is not None else []
    floor = None
    if config.dataset == "digits":
        train_features = extractor(evaluation_images(config, "train"))
        size = min(config.kid_subset_size, len(real_features), len(train_features))
        floor = metrics.kernel_inception_distance(train_features, real_features,
                                                  num_subsets=config.kid_subsets,
                                                  subset_size=size, seed=config.seed)
    callback = adaptive_lr.EvaluationCallback(
        real_features, extractor, every_n_steps=config.eval_every or config.steps + 1,
        num_samples=config.eval_num_samples, kid_subsets=config.kid_subsets,
        kid_subset_size=config.kid_subset_size, compute_fid=config.best_metric == "fid",
        best_metric=config.best_metric, adaptive_lr=config.adaptive_lr, factor=config.lr_decay,
        seed=config.seed, writer=writer, on_new_best=on_new_best, evaluate_at_end=True,
        coefficient_variables=coefficients, verbose=1)
    return callback, floor


def _checkpoint_description(manager):
    return manager.latest_checkpoint or "none (no checkpoint was saved before the failure)"


def _restore(checkpoint, manager, config):
    """Restores the latest checkpoint (if any); ConfigError when its variables do not fit."""
    path = manager.latest_checkpoint
    if path is None:
        return None
    try:
        checkpoint.restore(path).assert_existing_objects_matched()
    except (AssertionError, ValueError) as error:
        raise ConfigError("architecture", f"Expected the checkpoint in `--workdir="
                          f"{config.workdir}` to come from the same architecture and loss; "
                          f"it does not fit ({str(error).splitlines()[0][:300]}). Use another "
                          f"--workdir. Received: `--architecture={config.architecture}`") from None
    return path


def _write_text(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _flags_header(config, argv):
    argv = argv or ["launch"]
    command = " ".join(["python -m mmd_keras.launch"] + [shlex.quote(a) for a in argv[1:]])
    return (f"Resolved flags of the run in {os.path.abspath(config.workdir)}.\n"
            f"Written by: {command}\n"
            f"Replay: python -m mmd_keras.launch --flagfile={os.path.join(config.workdir, FLAGS_FILE)}"
            "\n(the same --workdir resumes the run; add --workdir=NEW to train it again)")


def worker_config(config, tf_config=None):
    """The config this process runs under ``--strategy=multi_worker``.

    Every worker must take part in each (collective) checkpoint save, so workers cannot share
    one directory: the chief (``chief`` task, else ``worker`` 0) keeps ``--workdir``; another
    worker gets the private ``<workdir>/.worker_<index>`` and does not export. ``tf_config`` is
    the ``TF_CONFIG`` JSON (default: the environment); an unreadable one is left for
    :func:`mmd_keras.distribute.create_strategy` to report.
    """
    if config.strategy != "multi_worker":
        return config
    try:
        spec = json.loads(tf_config if tf_config is not None else os.environ.get("TF_CONFIG", ""))
        task_type, index = spec["task"]["type"], int(spec["task"]["index"])
        has_chief = "chief" in spec.get("cluster", {})
    except (ValueError, KeyError, TypeError):
        return config
    if task_type == "chief" or (task_type == "worker" and index == 0 and not has_chief):
        return config
    return dataclasses.replace(
        config, workdir=os.path.join(config.workdir, f".{task_type}_{index}"), export=False)


def early_strategy(config):
    """The strategy that must exist before TensorFlow runs any op, else None.

    ``MultiWorkerMirroredStrategy`` configures collective ops, which TensorFlow only allows
    at program start-up, and :func:`preflight` already builds networks: the launcher calls
    this first. A bad ``TF_CONFIG`` is a ConfigError naming ``--strategy``.
    """
    if config.strategy != "multi_worker":
        return None
    from mmd_keras import distribute

    try:
        return distribute.create_strategy("multi_worker")
    except ValueError as error:
        raise ConfigError("strategy", str(error)) from None


def run(config, argv=None, print_fn=print, strategy=None):
    """Trains (or resumes) the run described by ``config``; returns the exit code.

    Raises:
        ConfigError: before anything is written (bad input, busy or foreign workdir).
    ``strategy``: one made by :func:`early_strategy` (else created here).
    """
    strategy = strategy or early_strategy(config)
    config = worker_config(config)
    preflight(config)
    lock = WorkdirLock(config.workdir).acquire()
    try:
        return _run_locked(config, argv, print_fn, lock, strategy)
    finally:
        lock.release()


def _run_locked(config, argv, print_fn, lock, strategy=None):
    import keras
    import tensorflow as tf

    from mmd_keras import callbacks as cb
    from mmd_keras import distribute

    workdir = os.path.abspath(config.workdir)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    if strategy is None:
        strategy = distribute.create_strategy(config.strategy, tpu=config.tpu or None)
    replicas = strategy.num_replicas_in_sync
    paths = {name: os.path.join(workdir, name) for name in ("checkpoints", "samples", "tensorboard")}
    paths["saved_models"] = os.path.abspath(config.export_dir)
    savers = []
    with strategy.scope():
        model = build_model(config)
        guard = cb.NonFiniteGuard()
        writer = tf.summary.create_file_writer(paths["tensorboard"])
        evaluation, kid_floor = build_evaluation(
            config, writer, lambda step, metrics: savers[0].save_best(step), print_fn, model)
        items = dict(model.checkpoint_items())
        if evaluation is not None:
            items.update(evaluation.checkpoint_items())
        checkpoint = tf.train.Checkpoint(**items)
        manager = tf.train.CheckpointManager(checkpoint, paths["checkpoints"],
                                             max_to_keep=config.keep_checkpoints)
        best_manager = tf.train.CheckpointManager(
            checkpoint, os.path.join(paths["checkpoints"], "best"), max_to_keep=1)
        try:
            restored = _restore(checkpoint, manager, config)
        except ConfigError:
            lock.release(remove_if_created=True)
            raise
    saver = cb.CheckpointCallback(manager, config.checkpoint_every, best_manager, guard=guard)
    savers.append(saver)
    guard.describe_checkpoint = lambda: _checkpoint_description(manager)
    start_step = cb.current_step(model)
    os.makedirs(paths["samples"], exist_ok=True)
    _write_text(os.path.join(workdir, FLAGS_FILE), config_lib.to_flagfile(
        config, header=_flags_header(config, argv)))
    _write_text(os.path.join(workdir, RUN_FILE), json.dumps(
        {"identity": config_lib.identity(config), "replicas": replicas}, indent=2) + "\n")
    print_fn(f"Run directory: {workdir}")
    print_fn(f"  resolved flags:  {os.path.join(workdir, FLAGS_FILE)}")
    if restored:
        print_fn(f"Resuming from {restored} at generator step {start_step}.")
    print_fn(f"Global batch: {config.batch_size * replicas} ({config.batch_size} per replica x "
             f"{replicas} replica(s)); training generator steps {start_step} -> {config.steps}.")
    samples = cb.SampleGrid(paths["samples"], config.sample_every, config.num_grid_samples,
                            seed=config.seed + 1234, writer=writer, guard=guard)
    callbacks = [guard] + ([evaluation] if evaluation is not None else []) + [
        saver, samples, cb.ScalarLogger(writer, config.log_every), cb.StopAtStep(config.steps)]
    started = time.time()
    for initial_epoch, epochs, steps_per_epoch, first_step in fit_plan(
            start_step, config.steps, config.steps_per_epoch):
        model.fit(build_dataset(config, first_step, replicas=replicas), initial_epoch=initial_epoch, epochs=epochs,
                  steps_per_epoch=steps_per_epoch, callbacks=callbacks, shuffle=False,
                  verbose=1)
        if guard.failed:
            break
    writer.flush()
    elapsed = time.time() - started
    if guard.failed:
        print_fn(f"error: {guard.message}")
        return EXIT_NON_FINITE
    if start_step >= config.steps:
        print_fn(f"Nothing to train: the checkpoint is at step {start_step} >= --steps.")
    step = cb.current_step(model)
    print_fn(f"Trained to generator step {step} in {elapsed:.1f} s.")
    best = (f"; best by {config.best_metric} in {best_manager.directory}"
            if evaluation is not None else "")
    print_fn(f"  checkpoints:     {manager.latest_checkpoint} (latest {config.keep_checkpoints} "
             f"kept{best})")
    print_fn(f"  sample grids:    {paths['samples']} (latest: {samples.last_path})")
    print_fn(f"  TensorBoard:     tensorboard --logdir {paths['tensorboard']}")
    if evaluation is not None and evaluation.last_metrics:
        kid = evaluation.last_metrics
        print_fn(f"  KID ({evaluation.extractor.name} features, raw scale, "
                 f"{config.eval_num_samples} samples, {config.kid_subsets} subsets of "
                 f"{evaluation.kid_subset_size}) at step {step}: {kid['kid']:.5f} +- "
                 f"{kid['kid_std']:.5f}")
        if kid_floor is not None:
            print_fn(f"  KID real-vs-real floor (training vs held-out digits): "
                     f"{kid_floor.mean:.5f} +- {kid_floor.std:.5f}")
    export_dir = os.path.join(paths["saved_models"], config.name)
    if config.export and start_step >= config.steps and os.path.isdir(export_dir):
        print_fn(f"  SavedModel:      already exported under {export_dir}")
    elif config.export:
        from mmd_keras import export

        path = export.export_generator(model.sampling_generator, paths["saved_models"],
                                       config.name, latent_dim=config.latent_dim,
                                       latent_distribution=config.latent_distribution)
        print_fn(f"  SavedModel:      {path}  (saved_model_cli show --dir {path} --all)")
    return EXIT_OK
