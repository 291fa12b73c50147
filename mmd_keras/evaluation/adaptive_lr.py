"""KID-driven adaptive learning rate (Bińkowski et al. 2018, §4.1): the schedule's state machine.

:class:`AdaptiveLearningRate` is the state machine: every evaluation brings the
:class:`~mmd_keras.evaluation.similarity.CandidateSums` of the current generator (Y).

* While fewer than ``lag`` evaluations are queued, the new one is appended (no test).
* Otherwise Y is tested against the oldest queued one (Z, ``lag`` evaluations ago)
  with the relative-similarity test; p ≤ ``p_threshold`` is an improvement:
  the queue rotates (drops Z, appends Y) and the failure count resets.
* A failure with fewer than ``max_failures`` in a row leaves the queue frozen
  (Y is not stored, so the next test is against the same Z).
* The ``max_failures``-th failure in a row decays: learning rates × ``factor``
  (floored at ``min_learning_rate``), the queue keeps its last ``keep_after_decay``
  entries including Y and refills untested; the failure count resets.

Unlike the official codes, the whole state (queue contents and length, failure and
decay counts) lives in ``tf.Variable``s, so ``tf.train.Checkpoint`` restores it and a
resumed run takes the same decisions as an uninterrupted one.

:class:`mmd_keras.evaluation.callback.EvaluationCallback` runs it every N generator steps
from a Keras ``fit``.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from mmd_keras.evaluation import similarity


@dataclasses.dataclass(frozen=True)
class Decision:
    """What one :meth:`AdaptiveLearningRate.update` did.

    Attributes:
      action: "stored" (queue filling, no test), "improved" (p ≤ threshold; queue
        rotated), "failed" (queue frozen) or "decayed" (decay the learning rates).
      p_value, diff, variance: the test's outcome (NaN when ``action="stored"``).
      failures: consecutive failures after this update.
      queue_length: queued evaluations after this update.
      num_decays: decays so far.
    """

    action: str
    p_value: float
    diff: float
    variance: float
    failures: int
    queue_length: int
    num_decays: int


def check_int(value, name, minimum):
    """``int(value)`` if it is an integer ≥ ``minimum``, else a ValueError naming ``name``."""
    if int(value) != value or value < minimum:
        raise ValueError(f"Expected `{name}` an integer ≥ {minimum}. Received: `{name}={value}`")
    return int(value)


class AdaptiveLearningRate(tf.Module):
    """The relative-similarity learning-rate schedule, state in variables.

    Args:
      num_samples: m, rows of X and of each candidate in the test (2048 in paper 1).
      lag: L, queue length: compare with the evaluation L evaluations earlier (10).
      max_failures: F, consecutive failures that trigger a decay (3).
      p_threshold: p-values ≤ this are improvements (0.1).
      factor: learning-rate multiplier on decay (0.8 paper 2; 0.5 paper 1).
      min_learning_rate: floor of decayed learning rates (1e-6).
      keep_after_decay: queue entries kept after a decay, the new one included;
        None = min(3, lag) (paper 1's code keeps 3).
      test: ``(new, old) -> RelativeSimilarityResult``; default
        :func:`mmd_keras.evaluation.similarity.relative_similarity_test` (injectable for tests).
    """

    def __init__(self, num_samples, lag=10, max_failures=3, p_threshold=0.1, factor=0.8,
                 min_learning_rate=1e-6, keep_after_decay=None, test=None, name="adaptive_learning_rate"):
        super().__init__(name=name)
        self.num_samples = check_int(num_samples, "num_samples", 3)
        self.lag = check_int(lag, "lag", 1)
        self.max_failures = check_int(max_failures, "max_failures", 1)
        keep_after_decay = min(3, self.lag) if keep_after_decay is None else keep_after_decay
        self.keep_after_decay = check_int(keep_after_decay, "keep_after_decay", 0)
        if self.keep_after_decay > self.lag:
            raise ValueError(
                f"Expected `keep_after_decay` ≤ `lag={lag}`. Received: `keep_after_decay={keep_after_decay}`"
            )
        if not 0.0 < p_threshold < 1.0:
            raise ValueError(f"Expected `p_threshold` in (0, 1). Received: `p_threshold={p_threshold}`")
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"Expected `factor` in (0, 1]. Received: `factor={factor}`")
        if not min_learning_rate >= 0.0:
            raise ValueError(f"Expected `min_learning_rate` ≥ 0. Received: `min_learning_rate={min_learning_rate}`")
        self.p_threshold, self.factor = float(p_threshold), float(factor)
        self.min_learning_rate = float(min_learning_rate)
        self._test = test or similarity.relative_similarity_test
        width = 3 * self.num_samples + 2
        self.queue = tf.Variable(tf.zeros([self.lag, width], tf.float64), trainable=False, name="queue")
        self.queue_length = tf.Variable(0, dtype=tf.int64, trainable=False, name="queue_length")
        self.failures = tf.Variable(0, dtype=tf.int64, trainable=False, name="failures")
        self.num_decays = tf.Variable(0, dtype=tf.int64, trainable=False, name="num_decays")

    def entries(self):
        """The queued :class:`~mmd_keras.evaluation.similarity.CandidateSums`, oldest first."""
        rows = self.queue.numpy()[: int(self.queue_length.numpy())]
        return [similarity.CandidateSums.from_vector(row) for row in rows]

    def _store(self, entries):
        rows = np.zeros(self.queue.shape, np.float64)
        for i, entry in enumerate(entries):
            rows[i] = entry.to_vector()
        self.queue.assign(rows)
        self.queue_length.assign(len(entries))

    def update(self, new_sums):
        """Feeds the sums of the newest evaluation; returns the :class:`Decision`.

        Raises:
          ValueError: ``new_sums`` over a number of samples other than ``num_samples``.
        """
        if new_sums.num_samples != self.num_samples:
            raise ValueError(
                f"Expected `new_sums` over `num_samples={self.num_samples}` samples. "
                f"Received: `new_sums.num_samples={new_sums.num_samples}`"
            )
        entries = self.entries()
        nan = float("nan")
        p_value = diff = variance = nan
        if len(entries) < self.lag:
            action, entries = "stored", entries + [new_sums]
        else:
            result = self._test(new_sums, entries[0])
            p_value, diff, variance = result.p_value, result.diff, result.variance
            if p_value <= self.p_threshold:
                action, entries = "improved", entries[1:] + [new_sums]
                self.failures.assign(0)
            elif int(self.failures.numpy()) + 1 >= self.max_failures:
                action = "decayed"
                entries = (entries + [new_sums])[len(entries) + 1 - self.keep_after_decay:]
                self.failures.assign(0)
                self.num_decays.assign_add(1)
            else:
                action = "failed"
                self.failures.assign_add(1)
        self._store(entries)
        return Decision(action, p_value, diff, variance, int(self.failures.numpy()),
                        len(entries), int(self.num_decays.numpy()))

    def decayed(self, value, floor=None):
        """``max(value · factor, floor)``; floor defaults to ``min_learning_rate``."""
        floor = self.min_learning_rate if floor is None else floor
        return max(float(value) * self.factor, floor)
