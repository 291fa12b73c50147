"""`MMDGAN`: a `keras.Model` that trains a generator against a critic with any MMD-family loss.

One `fit` step is one **generator** step. Inside it, in one compiled call (the critic
steps run as one `tf.while_loop`, so XLA compiles one critic step whatever their number;
unrolled only under several mirrored replicas, see `make_train_function`):

* ``critic_schedule="fixed"``: ``critic_steps`` critic updates, then one generator update
  (papers 1-2: 5).
* ``critic_schedule="paper2"``: 10 critic updates when ``step < 20`` or ``step % 500 == 0``,
  else 5 (Arbel et al. 2018): the loop's trip count, so Adam's state only moves on the
  steps that really happen.
* ``critic_schedule="joint"``: one forward pass gives both losses; the critic and the
  generator are updated from it (Wang et al. 2019, 1:1).

Real images. A dataset element is either one batch ``[b, H, W, C]``, reused by every critic
step and by the generator step of that `fit` step (what a Keras user passing an ordinary
batched dataset gets), or the step's *fresh* batches ``[b, n, H, W, C]`` (fresh real
batches, as the papers' TF1 codes draw them: their input queue is dequeued on every
``sess.run``): critic step ``i`` trains on ``real[:, i]`` and the generator step on
``real[:, k]``, ``k`` the number of critic steps that ran. ``n`` must be at least
:func:`real_batches_per_step` (``critic_steps + 1``; 11 for "paper2"; 1 for "joint");
`mmd_keras.datasets.build_dataset(..., batches_per_step=n)` makes such elements. The batch
axis comes first so that `tf.distribute` splits every step's batches across replicas.
Every step draws fresh latents.

Randomness is stateless: latents and the losses' seeds (gradient-penalty interpolation) are
functions of ``(seed, step, critic-step index, replica id)``, so restoring the step counter
replays the noise of an uninterrupted run.

Keras contract: ``model.save("gan.keras")`` / `keras.models.load_model` (the compile config
holds both optimizers and the loss with their parameters), ``save_weights`` /
``load_weights`` and `keras.callbacks.BackupAndRestore` carry the whole training state: the
networks (spectral-norm vectors and batch-norm statistics are their weights), the EMA
generator, both optimizers, the step counter and the loss, a Keras layer tracked as
``loss_object`` with its state (the gradient-penalty weight, Sobolev's multiplier, SMMD's
coefficient); see `mmd_keras.model_state` for an interruption inside an epoch.
`evaluate` reports the loss's distance and both losses on held-out real images without
changing any variable; `predict(latents)` runs the generator `generate` uses.
"""

import keras
import numpy as np
import tensorflow as tf

from mmd_keras import distribute, ema, model_inputs, model_state, performance, rng
from mmd_keras.catalog import CRITIC_SCHEDULES

PAPER2_CRITIC_STEPS, PAPER2_MAX_CRITIC_STEPS = 5, 10
# The critic-step index of evaluation draws (training uses 0..9 and rng.GENERATOR_INDEX).
EVALUATION_INDEX = 62


def paper2_extra_critic_steps(step):
    """Whether generator step ``step`` gets paper 2's 10 critic steps instead of 5.

    Arbel et al. 2018 (Sec. 6 / their code): 10 critic steps when ``step < 20`` or
    ``step % 500 == 0``. ``step``: Python int (returns bool) or int64 tensor (bool tensor).
    """
    if isinstance(step, (int, np.integer)):
        return step < 20 or step % 500 == 0
    return tf.logical_or(step < 20, tf.equal(step % 500, 0))


def paper2_critic_steps(step):
    """Paper 2's number of critic steps before generator step ``step`` (Python int)."""
    return PAPER2_MAX_CRITIC_STEPS if paper2_extra_critic_steps(step) else PAPER2_CRITIC_STEPS


def real_batches_per_step(critic_schedule, critic_steps=1):
    """Real batches one generator step can consume: one per critic step plus the generator's.

    "fixed": ``critic_steps + 1``; "paper2": 11 (its longest step: 10 critic steps); "joint": 1.
    """
    _check_choice("critic_schedule", critic_schedule, CRITIC_SCHEDULES)
    if critic_schedule == "joint":
        return 1
    critic = PAPER2_MAX_CRITIC_STEPS if critic_schedule == "paper2" else int(critic_steps)
    return critic + 1


def _real_images(data):
    """Images of a dataset element (float): strips labels/weights of tuples, takes ``"image"`` of dicts."""
    if isinstance(data, dict):
        if "image" not in data:
            raise ValueError("Expected dataset elements that are images, (images, labels) tuples "
                             f"or dicts with an 'image' key. Received: dict keys {sorted(data)}")
        data = data["image"]
    elif isinstance(data, (tuple, list)):
        data = data[0]
    return data if data.dtype.is_floating else tf.cast(data, "float32")


def _critic_loop_in_graph(strategy=None):
    """Whether the critic steps can run as a `tf.while_loop` in the replica function of
    ``strategy`` (default: the current one): not under several replicas of a mirrored strategy,
    whose replica threads refuse the optimizers' `merge_call` inside a nested graph (TPU
    replicas and one device accept it)."""
    strategy = strategy or tf.distribute.get_strategy()
    return (strategy.num_replicas_in_sync == 1
            or isinstance(strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy)))


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"Expected `{name}` in {choices}. Received: `{name}={value!r}`")


@keras.saving.register_keras_serializable(package="mmd_keras")
class MMDGAN(keras.Model):
    """Generator + critic trained with an MMD-family `GANLoss` (`mmd_keras.losses`).

    Args:
        generator: `keras.Model`, latents ``[b, latent_dim]`` -> images ``[b, H, W, C]`` in [-1, 1].
        critic: `keras.Model`, images -> features ``[b, s]``.
        latent_dim: int; inferred from ``generator.inputs`` when None.
        latent_distribution: "uniform" (U[-1, 1], papers 1-2) or "normal" (N(0, I), paper 3).
        critic_schedule: "fixed", "paper2" or "joint" (see module docstring).
        critic_steps: int >= 1, critic steps per generator step for "fixed".
        ema_decay: None (off) or a float in (0, 1): exponential moving average of the
            generator weights in `ema_generator`, updated after each generator step and used
            by `generate` and export.
        clip_norm: None or a float > 0: clip every gradient tensor of both networks to this
            norm before the optimizer (papers 1-2 codes use 1).
        seed: int, the run seed of every stateless draw.
        mmd_across_replicas: "block" (each replica's MMD on its own batch) or "global"
            (critic features all-gathered with gradient; equals one device on the global batch).
        logs_as_vectors: None (auto: on under MultiWorkerMirroredStrategy, whose `fit` needs
            logged values of rank >= 1), True or False.
    """

    def __init__(self, generator, critic, latent_dim=None, latent_distribution="uniform",
                 critic_schedule="fixed", critic_steps=5, ema_decay=None, clip_norm=None, seed=0,
                 mmd_across_replicas="block", logs_as_vectors=None, **kwargs):
        super().__init__(**kwargs)
        _check_choice("latent_distribution", latent_distribution, rng.LATENT_DISTRIBUTIONS)
        _check_choice("critic_schedule", critic_schedule, CRITIC_SCHEDULES)
        _check_choice("mmd_across_replicas", mmd_across_replicas, distribute.ACROSS_REPLICAS)
        if isinstance(critic_steps, bool) or not isinstance(critic_steps, (int, np.integer)) \
                or not 1 <= critic_steps < EVALUATION_INDEX:
            raise ValueError(f"Expected `critic_steps` an int in [1, {EVALUATION_INDEX}). "
                             f"Received: `critic_steps={critic_steps!r}`")
        if ema_decay is not None and not 0.0 < float(ema_decay) < 1.0:
            raise ValueError(f"Expected `ema_decay` None or in (0, 1). Received: `ema_decay={ema_decay!r}`")
        if clip_norm is not None and not float(clip_norm) > 0.0:
            raise ValueError(f"Expected `clip_norm` None or > 0. Received: `clip_norm={clip_norm!r}`")
        if latent_dim is None:
            if not getattr(generator, "inputs", None):
                raise ValueError("Expected `latent_dim` when the generator has no `inputs` "
                                 "(a subclassed model). Received: `latent_dim=None`")
            latent_dim = generator.inputs[0].shape[-1]
        if int(latent_dim) < 1:
            raise ValueError(f"Expected `latent_dim` >= 1. Received: `latent_dim={latent_dim!r}`")
        self.generator, self.critic = generator, critic
        self.latent_dim, self.latent_distribution = int(latent_dim), latent_distribution
        self.critic_schedule, self.critic_steps = critic_schedule, int(critic_steps)
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.seed, self.mmd_across_replicas = int(seed), mmd_across_replicas
        self.logs_as_vectors = logs_as_vectors
        # Keras variables: saved by `save`, `save_weights` and `BackupAndRestore`. The step
        # counter is also the RNG state and drives the paper-2 schedule.
        self.step = self._counter("generator_step")
        # Where the running `fit` epoch started (see `model_state.InEpochResume`).
        self.fit_epoch, self.fit_epoch_start_step = self._counter("fit_epoch"), self._counter("fit_epoch_start_step")
        fake = self.generator(tf.zeros([2, self.latent_dim]))
        self._image_shape = tuple(fake.shape[1:])
        self.critic(tf.cast(fake, "float32"))
        self.ema_generator = (ema.clone_network(generator, name="ema_generator", trainable=False)
                              if self.ema_decay else None)
        self.generator_optimizer = self.critic_optimizer = self.loss_object = None
        self._evaluation_trackers = {}
        self._batches_to_skip = 0
        self.built = True

    def _counter(self, name):
        return self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name=name,
                               aggregation="only_first_replica")

    # ----------------------------------------------------------------------------- compile
    def compile(self, generator_optimizer=None, critic_optimizer=None, loss=None, jit_compile="auto",
                steps_per_execution=1, run_eagerly=False, optimizer=None, **kwargs):
        """Sets the optimizers and the loss; builds both optimizers (needed by `fit` under
        strategies and by exact checkpoints).

        Args:
            generator_optimizer: a `keras.optimizers.Optimizer` or what `keras.optimizers.get`
                takes (``"adam"``, a config dict); default ``Adam(2e-4, beta_1=0.5,
                beta_2=0.999)``, the launcher's defaults (``--generator_lr``, ``--adam_beta1``,
                ``--adam_beta2``).
            critic_optimizer: same for the critic; default ``Adam(5e-4, beta_1=0.5,
                beta_2=0.999)`` (``--critic_lr``).
            loss: a `mmd_keras.losses` name ("mmd", "repulsive", "smmd", ...), config dict or
                `GANLoss` instance.
            jit_compile, steps_per_execution, run_eagerly: as `keras.Model.compile`
                (``jit_compile=True`` is refused under several mirrored replicas:
                `distribute.check_jit_compile`).
            optimizer: Keras's spelling, instead of the two above: one optimizer (or
                identifier) whose config both networks get, each in its own copy (own slots
                and iteration counter), e.g. ``compile(optimizer="adam", loss="mmd")``.
            **kwargs: other `keras.Model.compile` arguments except loss/metrics.

        Under the ``mixed_float16`` policy each optimizer is wrapped in a
        `keras.optimizers.LossScaleOptimizer` (its own dynamic loss scale).
        """
        if loss is None:
            raise ValueError("Expected `loss` a mmd_keras.losses name, config dict or GANLoss. "
                             "Received: `loss=None`")
        distribute.check_jit_compile(self.distribute_strategy, jit_compile)
        super().compile(optimizer=None, jit_compile=jit_compile, steps_per_execution=steps_per_execution,
                        run_eagerly=run_eagerly, **kwargs)
        from mmd_keras import losses  # Imported late: the losses import the kernels.

        if not isinstance(loss, (str, dict, losses.GANLoss)):
            raise ValueError("Expected `loss` a mmd_keras.losses name, config dict or GANLoss. "
                             f"Received: `loss={loss!r}`")
        with self.distribute_strategy.scope():  # the loss's state variables, mirrored
            loss = losses.get(loss)
        # A functional critic declares its width: a mismatch fails here, before any step.
        loss.check_output_dim(self.critic.outputs[0].shape[-1] if getattr(self.critic, "outputs", None)
                              else None)
        # The loss is a Keras layer: as an attribute its variables are the model's (saved by
        # `save`, `save_weights`, `BackupAndRestore`; a child of `tf.train.Checkpoint(model)`).
        # A loss replaced by a new `compile` leaves the tracked layers.
        if self.loss_object is not None and self.loss_object is not loss:
            self._tracker.untrack(self.loss_object)
        self.loss_object = loss
        optimizers = []
        resolved = model_inputs.resolve_optimizers(generator_optimizer, critic_optimizer, optimizer)
        for opt, network in zip(resolved, (self.generator, self.critic)):
            if (keras.mixed_precision.global_policy().name == "mixed_float16"
                    and not isinstance(opt, keras.optimizers.LossScaleOptimizer)):
                opt = keras.optimizers.LossScaleOptimizer(opt)
            if not opt.built:
                opt.build(network.trainable_variables)
            optimizers.append(opt)
        self.generator_optimizer, self.critic_optimizer = optimizers
        self._evaluation_trackers = {}

    def get_compile_config(self):
        """Both optimizers and the loss with their parameters (what ``model.save`` stores)."""
        if self.loss_object is None:
            return {}
        from mmd_keras import losses
        return {"generator_optimizer": keras.saving.serialize_keras_object(self.generator_optimizer),
                "critic_optimizer": keras.saving.serialize_keras_object(self.critic_optimizer),
                "loss": losses.serialize(self.loss_object), "jit_compile": self.jit_compile,
                "steps_per_execution": self.steps_per_execution, "run_eagerly": self.run_eagerly}

    def compile_from_config(self, config):
        """Compiles from `get_compile_config`'s dict (used by `keras.models.load_model`)."""
        config = dict(config)
        for key in ("generator_optimizer", "critic_optimizer"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        self.compile(**config)

    # ------------------------------------------------------------------------ random draws
    def _seed(self, index, purpose):
        return rng.step_seed(self.seed, self.step, index, purpose)

    def _fakes(self, batch_size, index, training=True, seed=None):
        """The generator's fake batches for step ``index`` (1, or 2 for Cramér)."""
        seed = seed or self._seed
        fakes = []
        for purpose in (rng.PURPOSE_LATENTS, rng.PURPOSE_LATENTS_2)[:self.loss_object.num_fake_batches]:
            latents = rng.sample_latents(batch_size, self.latent_dim, self.latent_distribution, seed(index, purpose))
            fakes.append(self.generator(latents, training=training))
        return fakes

    # -------------------------------------------------------------------------- the steps
    def _loss(self, real, fakes, index, mode, training=True, seed=None):
        fake_2 = fakes[1] if len(fakes) > 1 else None
        fake_2 = None if fake_2 is None else tf.cast(fake_2, real.dtype)
        return self.loss_object(
            self.critic, real, tf.cast(fakes[0], real.dtype), seed=(seed or self._seed)(index, rng.PURPOSE_LOSS),
            mode=mode, fake_images_2=fake_2,
            feature_gather=distribute.feature_gather_for(self.mmd_across_replicas), training=training)

    def _minimize(self, optimizer, tape, loss, variables):
        """Applies ``d loss / d variables`` (loss already scaled for replicas and loss scaling)."""
        grads = tape.gradient(loss, variables)
        if self.clip_norm is not None:
            # Gradients carry the loss scale: clipping at clip_norm * scale == clipping unscaled.
            scale = optimizer.scale_loss(tf.constant(1.0))
            grads = [None if g is None else tf.clip_by_norm(g, self.clip_norm * scale) for g in grads]
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])

    def _scaled(self, optimizer, loss):
        return optimizer.scale_loss(distribute.scale_loss(loss))

    def _apply_state(self, out):
        if out.state_updates:
            self.loss_object.apply_state_updates(out.state_updates)

    def _critic_step(self, real, index):
        """One critic update on ``real`` and fresh fakes; returns the critic logs."""
        fakes = [tf.stop_gradient(f) for f in self._fakes(tf.shape(real)[0], index)]
        with tf.GradientTape() as tape:
            out = self._loss(real, fakes, index, "critic")
            scaled = self._scaled(self.critic_optimizer, out.critic_loss)
        self._minimize(self.critic_optimizer, tape, scaled, self.critic.trainable_variables)
        self._apply_state(out)
        return {"critic_loss": out.critic_loss, **out.metrics}

    def _generator_step(self, real):
        """One generator update; returns the generator logs."""
        with tf.GradientTape() as tape:
            fakes = self._fakes(tf.shape(real)[0], rng.GENERATOR_INDEX)
            out = self._loss(real, fakes, rng.GENERATOR_INDEX, "generator")
            scaled = self._scaled(self.generator_optimizer, out.generator_loss)
        self._minimize(self.generator_optimizer, tape, scaled, self.generator.trainable_variables)
        self._apply_state(out)
        return {"generator_loss": out.generator_loss, **out.metrics}

    def _joint_step(self, real):
        """Paper 3: both losses from one forward pass, both networks updated from it."""
        with tf.GradientTape() as critic_tape, tf.GradientTape() as generator_tape:
            fakes = self._fakes(tf.shape(real)[0], 0)
            out = self._loss(real, fakes, 0, "both")
            critic_scaled = self._scaled(self.critic_optimizer, out.critic_loss)
            generator_scaled = self._scaled(self.generator_optimizer, out.generator_loss)
        self._minimize(self.critic_optimizer, critic_tape, critic_scaled, self.critic.trainable_variables)
        self._minimize(self.generator_optimizer, generator_tape, generator_scaled,
                       self.generator.trainable_variables)
        self._apply_state(out)
        return {"critic_loss": out.critic_loss, "generator_loss": out.generator_loss, **out.metrics}

    @property
    def real_batches_per_step(self):
        """Real batches one generator step can consume (:func:`real_batches_per_step`)."""
        return real_batches_per_step(self.critic_schedule, self.critic_steps)

    def _step_batches(self, data):
        """``(real, fresh)``: the element's images and whether they are per-step fresh batches
        ``[b, n, ...]`` (checked against the schedule's need) or one batch ``[b, ...]``."""
        real = _real_images(data)
        rank, image_rank = real.shape.rank, len(self._image_shape)
        if rank == image_rank + 1:
            return real, False
        needed = self.real_batches_per_step
        if rank != image_rank + 2 or (real.shape[1] is not None and real.shape[1] < needed):
            raise ValueError(
                f"Expected dataset elements of real images [batch, {', '.join(map(str, self._image_shape))}] "
                f"or fresh batches [batch, n >= {needed}, {', '.join(map(str, self._image_shape))}] "
                f"(critic_schedule={self.critic_schedule!r}, critic_steps={self.critic_steps}). "
                f"Received: elements of shape {real.shape}")
        return real, True

    @staticmethod
    def _batch(real, fresh, index):
        """The real batch of critic step ``index`` (int or int tensor): ``real[:, index]`` for
        fresh batches, else the one batch of the element."""
        if not fresh:
            return real
        return real[:, index] if isinstance(index, int) else tf.gather(real, index, axis=1)

    def _critic_steps(self, real, fresh=False, extra=None):
        """All critic steps of one generator step.

        Returns ``(logs, count)``: the last step's logs and the number of critic steps run
        (int, or an int tensor when the graph decides), which indexes the generator's batch.
        ``extra`` (paper2 only): a Python bool fixes the number of critic steps at trace time;
        None decides in the graph (one compiled call for every step).
        """
        count = self.critic_steps if self.critic_schedule == "fixed" else PAPER2_CRITIC_STEPS
        if self.critic_schedule == "paper2":
            if extra is None:
                condition = paper2_extra_critic_steps(tf.convert_to_tensor(self.step))
                count = tf.where(condition, PAPER2_MAX_CRITIC_STEPS, PAPER2_CRITIC_STEPS)
            elif extra:
                count = PAPER2_MAX_CRITIC_STEPS
        if tf.executing_eagerly():  # A Python loop (eager tensors know their value).
            count = int(count)
        elif _critic_loop_in_graph():
            return self._critic_loop(real, fresh, count), count
        elif not isinstance(count, int):
            # Several mirrored replicas: the optimizers' all-reduce (a `merge_call`) cannot run
            # in a loop or `tf.cond` of the replica function, so the steps are unrolled at trace
            # time; `make_train_function` fixes paper 2's count in cross-replica context.
            raise ValueError("Expected a Python number of critic steps (`extra_critic_steps` "
                             "True or False) under several mirrored replicas. Received: "
                             f"`extra_critic_steps={extra!r}`")
        logs = None
        for index in range(count):
            logs = self._critic_step(self._batch(real, fresh, index), index)
        return logs, count

    def _critic_loop(self, real, fresh, count):
        """``count`` critic steps as one `tf.while_loop`: XLA compiles one critic step, and
        paper 2's 10-or-5 choice is the trip count. Step ``i`` draws the seeds of index ``i``
        and trains on ``real[:, i]`` (fresh batches), the same computation as unrolled steps.

        Returns the last step's logs (float32 scalars).
        """
        def step(index):
            logs = self._critic_step(self._batch(real, fresh, index), index)
            return {key: tf.cast(value, tf.float32) for key, value in logs.items()}

        # The logs' names: the step traced once in a scratch graph (as AutoGraph does for a
        # loop variable first assigned inside the loop); nothing of it runs.
        names = list(tf.function(step, autograph=False).get_concrete_function(
            tf.TensorSpec([], tf.int32)).structured_outputs)
        initial = {name: tf.constant(0.0) for name in names}
        # `maximum_iterations` states the largest count in the graph (the count itself, or
        # paper 2's 10): XLA and graph tools see a bounded loop.
        _, logs = tf.while_loop(lambda index, _: index < count, lambda index, _: (index + 1, step(index)),
                                (tf.constant(0), initial),
                                maximum_iterations=count if isinstance(count, int) else PAPER2_MAX_CRITIC_STEPS)
        return logs

    def train_step(self, data, extra_critic_steps=None):
        """One generator step (and its critic steps) on real images in [-1, 1]: one batch
        ``[b, H, W, C]`` for every step, or fresh batches ``[b, n, H, W, C]`` (module docstring)."""
        real, fresh = self._step_batches(data)
        if self.critic_schedule == "joint":
            logs = self._joint_step(self._batch(real, fresh, 0))
        else:
            critic_logs, count = self._critic_steps(real, fresh, extra_critic_steps)
            logs = {**critic_logs, **self._generator_step(self._batch(real, fresh, count))}
        # Keras 3 BN moving statistics are replica-local ("none" aggregation): average them.
        distribute.sync_moving_statistics(self.generator.non_trainable_variables
                                          + self.critic.non_trainable_variables)
        # After the step's computation: a batch that fails to load (e.g. `fit`'s range check)
        # must not advance the counter or the EMA (graph ops without a data dependency run anyway).
        with tf.control_dependencies(tf.nest.flatten(logs)):
            self.step.assign_add(1)
            if self.ema_generator is not None:
                ema.update_ema(self.ema_generator, self.generator, self.ema_decay)
        return self._format_logs(logs)

    def make_train_function(self, force=False):
        """Keras's train function (except for paper2 under several mirrored replicas), which
        first skips the batches a resumed epoch already trained on (`model_state.InEpochResume`).

        MirroredStrategy cannot synchronize (optimizer all-reduce) inside a `tf.cond` or loop of
        the replica function, so there the condition is taken in cross-replica context around
        two versions of `train_step` (10 or 5 critic steps, unrolled):
        `_paper2_replicated_train_function`. Logs are replica 0's.
        """
        if self.train_function is not None and not force:
            return self.train_function
        strategy = self.distribute_strategy
        if self.critic_schedule != "paper2" or _critic_loop_in_graph(strategy):
            super().make_train_function(force=True)
        else:
            self.train_function = self._paper2_replicated_train_function()
        self.train_function = model_state.skipping_train_function(self, self.train_function)
        return self.train_function

    def _paper2_replicated_train_function(self):
        """``steps_per_execution`` generator steps per call, as Keras's train function: one
        `tf.function` (``jit_compile`` honoured where the strategy compiles) looping over the
        iterator in the graph, ending early at the end of the data; each step takes paper 2's
        10-or-5 choice in cross-replica context."""
        strategy, steps = self.distribute_strategy, self.steps_per_execution

        def run(data, extra):
            outputs = strategy.run(self.train_step, args=(data,), kwargs={"extra_critic_steps": extra})
            return {k: strategy.experimental_local_results(v)[0] for k, v in outputs.items()}

        def one_step(data):
            extra = paper2_extra_critic_steps(tf.convert_to_tensor(self.step))
            return tf.cond(extra, lambda: run(data, True), lambda: run(data, False))

        def multi_step(iterator):
            # Keras's form (TF trainer): an Optional of the outputs as loop variable, whose
            # spec is only known once the step is traced in the loop body.
            empty = tf.experimental.Optional.empty(None)

            def body(index, outputs, inputs):
                outputs = tf.experimental.Optional.from_value(one_step(inputs.get_value()))
                empty._element_spec = outputs.element_spec
                following = tf.cond(index + 1 < steps, iterator.get_next_as_optional, lambda: inputs)
                return index + 1, outputs, following

            _, outputs, _ = tf.while_loop(
                lambda index, _, inputs: tf.logical_and(index < steps, inputs.has_value()), body,
                (tf.constant(0), empty, iterator.get_next_as_optional()))
            outputs._element_spec = empty.element_spec
            return outputs

        if not self.run_eagerly:
            one_step = tf.function(one_step, reduce_retracing=True, jit_compile=bool(self.jit_compile))
            multi_step = tf.function(multi_step, reduce_retracing=True)

        def train_function(iterator):
            if isinstance(iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)) \
                    and not self.run_eagerly:
                outputs = multi_step(iterator)
                if not outputs.has_value():
                    raise StopIteration
                return outputs.get_value()
            for _, data in zip(range(steps), iterator):
                outputs = one_step(data)
            return outputs

        return train_function

    def _format_logs(self, logs, learning_rates=True):
        logs = dict(logs)
        if learning_rates:
            logs["generator_lr"] = self.generator_optimizer.learning_rate
            logs["critic_lr"] = self.critic_optimizer.learning_rate
        as_vectors = self.logs_as_vectors
        if as_vectors is None:
            as_vectors = isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy)
        shape = [1] if as_vectors else []
        return {k: tf.reshape(tf.cast(tf.convert_to_tensor(v), tf.float32), shape) for k, v in logs.items()}

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            check_input_range=True, **kwargs):
        """`keras.Model.fit`; with `keras.callbacks.BackupAndRestore` a run interrupted inside
        an epoch resumes exactly where it stopped (`model_state.InEpochResume`).

        Exact resumption also needs the data of each epoch to be the same batches in the
        same order in every run (a dataset without reshuffling, or one seeded per epoch).

        ``check_input_range`` (default True): raise ValueError when the first batch of real
        images (of a `tf.data.Dataset`, per iteration, or of in-memory arrays) is clearly
        outside [-1, 1] — beyond `model_inputs.TOLERANCE` (0.5), e.g. [0, 255] pixels — with
        min and max over all its values. Skipped for toy data (generators of points) and for
        other inputs (Python generators, `keras.utils.PyDataset`). False turns it off.
        """
        performance.note_kernel_set()  # once per process: Eigen kernels on x86 and how to change
        # Keras never clears `_initial_epoch`; `BackupAndRestore` sets it again when it restores.
        self._initial_epoch = None
        if not isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks = list(callbacks or []) + [model_state.InEpochResume()]
        if check_input_range and len(self._image_shape) == 3:
            if isinstance(x, tf.data.Dataset):
                x = model_inputs.checked_dataset(x, _real_images)
            elif x is not None and all(isinstance(a, (np.ndarray, tf.Tensor)) for a in tf.nest.flatten(x)):
                model_inputs.check_first_batch(x, batch_size or 32, _real_images)
        try:
            return super().fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                               callbacks=callbacks, **kwargs)
        except tf.errors.InvalidArgumentError as error:
            model_inputs.raise_clear_range_error(error)
            raise

    # ---------------------------------------------------------------------------- evaluate
    def _evaluation_seed(self, batch_index):
        """Evaluation draws depend on (seed, batch index), not on the training step: two
        evaluations of the same held-out data at different steps compare the networks."""
        return lambda index, purpose: rng.step_seed(self.seed, batch_index, index, purpose)

    def _evaluation_logs(self, real, batch_index):
        """The loss (mode "both": penalties included) on ``real`` and fresh fakes, no update."""
        seed = self._evaluation_seed(batch_index)
        fakes = self._fakes(tf.shape(real)[0], EVALUATION_INDEX, training=False, seed=seed)
        out = self._loss(real, fakes, EVALUATION_INDEX, "both", training=False, seed=seed)
        return {"critic_loss": out.critic_loss, "generator_loss": out.generator_loss, **out.metrics}

    def make_test_function(self, force=False):
        """Keras's test function; first creates one `keras.metrics.Mean` per logged value."""
        if not self._evaluation_trackers:
            # The names of the loss's logs: one eager call on 2 images, in replica context (an
            # all-gather of features needs it). `evaluate` calls this eagerly.
            keys = list(self.distribute_strategy.run(
                self._evaluation_logs, args=(tf.zeros((2,) + self._image_shape), tf.constant(0, tf.int64))))
            with self.distribute_strategy.scope():
                self._evaluation_trackers = {key: keras.metrics.Mean(name=key) for key in keys}
        return super().make_test_function(force)

    @property
    def metrics(self):
        """The evaluation means (`evaluate` averages over batches; `fit` logs its last step)."""
        return list(self._evaluation_trackers.values())

    def test_step(self, data):
        """Loss values on one held-out batch of real images, with the generator being trained
        (not the EMA: these are the training objective's values, comparable with `fit`'s logs).

        The loss's distance (e.g. ``mmd2``), penalties and both losses are averaged over the
        batches of one `evaluate` call; batch ``i`` draws its latents from ``(seed, i)``. No
        weight, optimizer, counter or loss state changes (networks in inference mode).
        """
        real, fresh = self._step_batches(data)
        if fresh:  # Held-out images in the fresh-batch layout: all of them, as one batch.
            real = tf.reshape(real, (-1,) + self._image_shape)
        batch_index = tf.cast(self._evaluation_trackers["critic_loss"].count, tf.int64)
        logs = self._evaluation_logs(real, batch_index)
        for key, value in logs.items():
            self._evaluation_trackers[key].update_state(value)
        return self._format_logs({key: tracker.result() for key, tracker in self._evaluation_trackers.items()},
                                 learning_rates=False)

    def predict_step(self, data):
        """`predict(latents)`: images from `sampling_generator` (the EMA generator when on,
        as `generate`), in inference mode, in the generator's output dtype."""
        latents = data[0] if isinstance(data, (tuple, list)) else data
        model_inputs.check_latents(latents, self.latent_dim)
        return self.sampling_generator(latents, training=False)

    # --------------------------------------------------------------------- using the model
    def call(self, latents, training=False):
        """The generator (not the EMA) on ``latents [b, latent_dim]``."""
        model_inputs.check_latents(latents, self.latent_dim)
        return self.generator(latents, training=training)

    @property
    def sampling_generator(self):
        """The network `generate`, `predict` and export use: the EMA generator when on."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def sample_latents(self, num_samples, seed=0):
        """The latents of ``generate(num_samples, seed)``: `mmd_keras.rng.generation_latents`,
        the same as the exported SavedModel's ``sample(batch_size, seed)``."""
        return rng.generation_latents(int(num_samples), self.latent_dim, self.latent_distribution, int(seed))

    def generate(self, num_samples, seed=0, batch_size=256):
        """``num_samples`` images ``[N, H, W, C]`` float32 numpy in [-1, 1], reproducible.

        The latents depend only on ``seed`` (not on ``batch_size``); the EMA generator is used
        when ``ema_decay`` is set; networks run in inference mode.
        """
        if int(num_samples) < 1 or int(batch_size) < 1:
            raise ValueError("Expected `num_samples` >= 1 and `batch_size` >= 1. Received: "
                             f"`num_samples={num_samples}`, `batch_size={batch_size}`")
        latents = self.sample_latents(num_samples, seed)
        network = self.sampling_generator
        chunks = [network(latents[i:i + batch_size], training=False)
                  for i in range(0, int(num_samples), int(batch_size))]
        return np.concatenate([np.asarray(tf.cast(c, tf.float32)) for c in chunks], axis=0)

    # ------------------------------------------------------------------------------ state
    def save_own_variables(self, store):
        """The counters, by name (networks, optimizers and the loss save their own)."""
        model_state.save_variables(store, self._state_variables())

    def load_own_variables(self, store):
        model_state.load_variables(store, self._state_variables(), self.name)

    def _state_variables(self):
        return {"generator_step": self.step, "fit_epoch": self.fit_epoch,
                "fit_epoch_start_step": self.fit_epoch_start_step}

    def checkpoint_items(self):
        """Every trackable an exact resume needs, for ``tf.train.Checkpoint(**items)``.

        The layout of the launcher's `tf.train.Checkpoint`. Spectral-norm vectors and
        batch-norm statistics are weights of the networks; the step counter is also the RNG
        state; the loss (once compiled) carries its own state variables (e.g. the gradient-penalty
        weight, SMMD's coefficient). ``model.save``/``save_weights`` carry the same state through
        Keras.
        """
        items = {"generator": self.generator, "critic": self.critic, "step": self.step}
        if self.ema_generator is not None:
            items["ema_generator"] = self.ema_generator
        if self.generator_optimizer is not None:
            items["generator_optimizer"] = self.generator_optimizer
            items["critic_optimizer"] = self.critic_optimizer
        if self.loss_object is not None:
            items["loss"] = self.loss_object
        return items

    def get_config(self):
        return {
            "generator": keras.saving.serialize_keras_object(self.generator),
            "critic": keras.saving.serialize_keras_object(self.critic),
            "latent_dim": self.latent_dim, "latent_distribution": self.latent_distribution,
            "critic_schedule": self.critic_schedule, "critic_steps": self.critic_steps,
            "ema_decay": self.ema_decay, "clip_norm": self.clip_norm, "seed": self.seed,
            "mmd_across_replicas": self.mmd_across_replicas, "logs_as_vectors": self.logs_as_vectors,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "critic"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
