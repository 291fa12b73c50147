"""The evaluation callback: every N generator steps, KID/FID of fresh samples, best-model
tracking and the KID-driven adaptive learning rate (Bińkowski et al. 2018, §4.1).

The schedule's state machine is :class:`mmd_keras.evaluation.adaptive_lr.AdaptiveLearningRate`;
this module wires it, the metrics and an extractor into a Keras ``fit``.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from mmd_keras.callbacks import learning_rate_variables
from mmd_keras.evaluation import metrics, similarity
from mmd_keras.evaluation.adaptive_lr import AdaptiveLearningRate, check_int


_ADAPTIVE = "the adaptive learning rate"


class _EvaluationState(tf.Module):
    """Checkpointed progress of :class:`EvaluationCallback`."""

    def __init__(self):
        super().__init__(name="evaluation_state")
        self.last_evaluated_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="last_evaluated_step")
        self.best_metric = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_metric")
        self.best_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_step")


class EvaluationCallback(keras.callbacks.Callback):
    """Every N generator steps: KID (and FID) of fresh samples; best tracking; adaptive LR.

    At each evaluation it draws ``num_samples`` images with
    ``model.generate(num_samples, seed=...)`` (the seed is a function of ``seed`` and
    the step, so a resumed run draws the same samples), maps them to features with
    ``extractor``, computes KID (raw scale) against ``real_features`` and optionally
    FID, logs them (``logs`` of the batch and of the epoch, so the progress bar and
    History show them; TensorBoard under ``evaluation/`` when ``writer`` is given),
    calls ``on_new_best(step, metrics)`` when ``best_metric`` improved, and feeds the
    first ``test_samples`` real/fake features to :class:`AdaptiveLearningRate`, whose
    decays multiply ``model.generator_optimizer.learning_rate``,
    ``model.critic_optimizer.learning_rate`` (floored) and every variable in
    ``coefficient_variables`` (e.g. the SMMD scaling coefficient; floor
    ``min_coefficient``) by ``factor``.

    Model contract: ``model.step`` (generator steps), ``model.generate``,
    ``model.generator_optimizer`` / ``critic_optimizer`` with float learning rates.

    Args:
      real_features: [n_real, d] cached features of real images.
      extractor: callable images [N, H, W, C] in [-1, 1] -> features [N, d].
      every_n_steps: evaluation period in generator steps (2000).
      num_samples: generated samples per evaluation; None = n_real.
      kid_subsets: KID subsets per evaluation (10 during training, as paper 1's code).
      kid_subset_size: KID subset size, capped at n_real and ``num_samples`` (1000).
      compute_fid: also compute FID (reported as "fid").
      best_metric: "kid" or "fid" (lower is better) for ``best_metric`` tracking.
      adaptive_lr: True (build an :class:`AdaptiveLearningRate` from the arguments
        below), False (no schedule) or a ready :class:`AdaptiveLearningRate`.
      test_samples: m of the three-sample test, capped likewise (2048).
      lag, max_failures, p_threshold, factor, min_learning_rate, keep_after_decay:
        see :class:`AdaptiveLearningRate` (defaults 10, 3, 0.1, 0.8, 1e-6, min(3, lag)).
      coefficient_variables: extra variables decayed by ``factor`` with the rates.
      min_coefficient: floor of the decayed ``coefficient_variables`` (0).
      seed: base seed of sample generation and KID subsets.
      writer: optional ``tf.summary`` writer.
      on_new_best: optional callable ``(step, metrics_dict)``, e.g. saving the
        best-by-metric checkpoint.
      evaluate_at_end: evaluate (without a schedule update) at the end of ``fit``
        when the last step was not evaluated.
      verbose: 1 prints one line per evaluation.
    """

    def __init__(self, real_features, extractor, every_n_steps=2000, num_samples=None, kid_subsets=10,
                 kid_subset_size=1000, compute_fid=False, best_metric="kid", adaptive_lr=True,
                 test_samples=2048, lag=10, max_failures=3, p_threshold=0.1, factor=0.8,
                 min_learning_rate=1e-6, keep_after_decay=None, coefficient_variables=(), min_coefficient=0.0,
                 seed=0, writer=None, on_new_best=None, evaluate_at_end=True, verbose=0):
        super().__init__()
        self.real_features = metrics.as_features(real_features, "real_features", 3)
        if not callable(extractor):
            raise ValueError(f"Expected a callable `extractor`. Received: `extractor={extractor!r}`")
        if best_metric not in ("kid", "fid"):
            raise ValueError(f"Expected `best_metric` 'kid' or 'fid'. Received: `best_metric={best_metric!r}`")
        if best_metric == "fid" and not compute_fid:
            raise ValueError("Expected `compute_fid=True` with `best_metric='fid'`. Received: `compute_fid=False`")
        n_real = len(self.real_features)
        self.extractor = extractor
        self.every_n_steps = check_int(every_n_steps, "every_n_steps", 1)
        self.num_samples = n_real if num_samples is None else check_int(num_samples, "num_samples", 3)
        self.kid_subsets = check_int(kid_subsets, "kid_subsets", 1)
        self.kid_subset_size = min(check_int(kid_subset_size, "kid_subset_size", 2), n_real, self.num_samples)
        self.compute_fid, self.best_metric_name = bool(compute_fid), best_metric
        self.coefficient_variables = list(coefficient_variables)
        self.min_coefficient = float(min_coefficient)
        self.seed, self.writer, self.on_new_best = int(seed), writer, on_new_best
        self.evaluate_at_end, self.verbose = bool(evaluate_at_end), int(verbose)
        self.state = _EvaluationState()
        self.scheduler = None
        if isinstance(adaptive_lr, AdaptiveLearningRate):
            if adaptive_lr.num_samples > min(n_real, self.num_samples):
                raise ValueError(
                    f"Expected `adaptive_lr.num_samples` ≤ {min(n_real, self.num_samples)} (real and generated "
                    f"samples). Received: `adaptive_lr.num_samples={adaptive_lr.num_samples}`"
                )
            self.scheduler = adaptive_lr
        elif adaptive_lr:
            m = min(check_int(test_samples, "test_samples", 3), n_real, self.num_samples)
            self.scheduler = AdaptiveLearningRate(
                m, lag=lag, max_failures=max_failures, p_threshold=p_threshold, factor=factor,
                min_learning_rate=min_learning_rate, keep_after_decay=keep_after_decay,
            )
        self.last_metrics = {}
        self.last_decision = None
        self.evaluations = []  # (step, metrics) of this process's evaluations (not checkpointed)

    @property
    def best_metric(self):
        """Best (lowest) value of the tracked metric so far (inf before any evaluation)."""
        return float(self.state.best_metric.numpy())

    def checkpoint_items(self):
        """Trackables holding the whole callback state, for ``tf.train.Checkpoint(**items)``."""
        items = {"evaluation_state": self.state}
        if self.scheduler is not None:
            items["adaptive_learning_rate"] = self.scheduler
        return items

    def _seed_for(self, step):
        return (self.seed * 1_000_003 + int(step)) % (2**31 - 1)

    def _current_step(self):
        step = getattr(self.model, "step", None)
        if step is None:
            raise ValueError(
                "Expected a model with a `step` generator-step counter (mmd_keras.models.MMDGAN). "
                f"Received: `model={self.model!r}`"
            )
        return int(np.asarray(step.numpy() if hasattr(step, "numpy") else step))

    def _decay(self):
        for _, variable in learning_rate_variables(self.model, _ADAPTIVE):
            variable.assign(self.scheduler.decayed(variable.numpy()))
        for variable in self.coefficient_variables:
            variable.assign(self.scheduler.decayed(variable.numpy(), self.min_coefficient))

    def evaluate(self, step, update_schedule=True):
        """Runs one evaluation at generator step ``step``; returns the metrics dict."""
        seed = self._seed_for(step)
        images = self.model.generate(self.num_samples, seed=seed)
        fake = metrics.as_features(self.extractor(images), "extractor(images)", 3)
        kid = metrics.kernel_inception_distance(
            self.real_features, fake, num_subsets=self.kid_subsets, subset_size=self.kid_subset_size, seed=seed,
        )
        results = {"kid": kid.mean, "kid_std": kid.std}
        if self.compute_fid:
            results["fid"] = metrics.frechet_distance(self.real_features, fake).value
        if self.scheduler is not None and update_schedule:
            m = self.scheduler.num_samples
            decision = self.scheduler.update(similarity.candidate_sums(self.real_features[:m], fake[:m]))
            if decision.action == "decayed":
                self._decay()
            self.last_decision = decision
            results["three_sample_p"] = decision.p_value
            results["lr_decays"] = float(decision.num_decays)
        if self.scheduler is not None:
            results["learning_rate"] = float(np.asarray(self.model.generator_optimizer.learning_rate))
        value = results[self.best_metric_name]
        improved = value < self.best_metric
        if improved:
            self.state.best_metric.assign(value)
            self.state.best_step.assign(step)
        self.state.last_evaluated_step.assign(step)
        self.last_metrics = results
        self.evaluations.append((int(step), results))
        if improved and self.on_new_best is not None:  # state complete: a checkpoint here is consistent
            self.on_new_best(step, dict(results))
        if self.writer is not None:
            with self.writer.as_default():
                for key, val in results.items():
                    if key != "learning_rate":  # the train step logs it (generator_lr)
                        tf.summary.scalar(f"evaluation/{key}", val, step=step)
            self.writer.flush()
        if self.verbose:
            print(f"[step {step}] " + ", ".join(f"{k}={v:.6g}" for k, v in results.items()))
        return results

    def on_train_begin(self, logs=None):
        if self.scheduler is not None:  # fail before training, not at the first decay
            learning_rate_variables(self.model, _ADAPTIVE)

    def on_train_batch_end(self, batch, logs=None):
        step = self._current_step()
        last = int(self.state.last_evaluated_step.numpy())
        if step // self.every_n_steps > last // self.every_n_steps:
            results = self.evaluate(step)
            if logs is not None:
                logs.update(results)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.last_metrics)

    def on_train_end(self, logs=None):
        step = self._current_step()
        if self.evaluate_at_end and step > int(self.state.last_evaluated_step.numpy()):
            self.evaluate(step, update_schedule=False)
