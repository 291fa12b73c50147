"""The KID-driven learning-rate state machine (paper 1, §4.1)."""

import numpy as np
import pytest
import tensorflow as tf

from mmd_keras.evaluation import adaptive_lr, similarity


def _tagged(tag, m=3):
    """Candidate sums carrying an integer tag (in ``kt_yy_2_sum``) to identify queue entries."""
    zeros = np.zeros(m)
    return similarity.CandidateSums(zeros, float(tag), zeros, zeros, 0.0)


class _ScriptedTest:
    """Stands in for the relative-similarity test: scripted p-values, records (new, old) tags."""

    def __init__(self, p_values):
        self.p_values, self.pairs = list(p_values), []

    def __call__(self, new, old):
        self.pairs.append((int(new.kt_yy_2_sum), int(old.kt_yy_2_sum)))
        return similarity.RelativeSimilarityResult(0.0, 1.0, 0.0, self.p_values.pop(0))


def _queue_tags(scheduler):
    return [int(entry.kt_yy_2_sum) for entry in scheduler.entries()]


def test_state_machine_on_a_scripted_p_value_sequence():
    script = _ScriptedTest([0.05, 0.5, 0.5, 0.5, 0.1, 0.9, 0.9])
    scheduler = adaptive_lr.AdaptiveLearningRate(3, lag=3, max_failures=2, keep_after_decay=2, test=script)
    decisions = [scheduler.update(_tagged(i)) for i in range(12)]
    # Hand-derived from the rules in the module docstring (lag 3, 2 failures, keep 2 after a decay):
    expected = [
        ("stored", [0]), ("stored", [0, 1]), ("stored", [0, 1, 2]),
        ("improved", [1, 2, 3]),   # e3 vs e0, p 0.05: rotate
        ("failed", [1, 2, 3]),     # e4 vs e1, p 0.5: frozen
        ("decayed", [3, 5]),       # e5 vs e1, 2nd failure: keep last 2 of [1, 2, 3, 5]
        ("stored", [3, 5, 6]),     # refill untested
        ("failed", [3, 5, 6]),     # e7 vs e3
        ("improved", [5, 6, 8]),   # e8 vs e3, p = 0.1 counts as improvement
        ("failed", [5, 6, 8]),     # e9 vs e5
        ("decayed", [8, 10]),      # e10 vs e5
        ("stored", [8, 10, 11]),
    ]
    assert [d.action for d in decisions] == [action for action, _ in expected]
    assert [d.queue_length for d in decisions] == [len(tags) for _, tags in expected]
    assert script.pairs == [(3, 0), (4, 1), (5, 1), (7, 3), (8, 3), (9, 5), (10, 5)]
    assert [d.failures for d in decisions] == [0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0]
    assert decisions[-1].num_decays == 2
    assert _queue_tags(scheduler) == [8, 10, 11]
    assert np.isnan(decisions[0].p_value) and decisions[4].p_value == 0.5


def test_defaults_floor_and_bad_arguments():
    scheduler = adaptive_lr.AdaptiveLearningRate(5)
    assert (scheduler.lag, scheduler.max_failures, scheduler.p_threshold, scheduler.factor,
            scheduler.min_learning_rate, scheduler.keep_after_decay) == (10, 3, 0.1, 0.8, 1e-6, 3)
    assert scheduler.decayed(1e-4) == pytest.approx(8e-5)
    assert scheduler.decayed(1.1e-6) == 1e-6
    assert scheduler.decayed(10.0, floor=0.0) == pytest.approx(8.0)
    with pytest.raises(ValueError, match="keep_after_decay"):
        adaptive_lr.AdaptiveLearningRate(5, lag=2, keep_after_decay=3)
    with pytest.raises(ValueError, match="factor"):
        adaptive_lr.AdaptiveLearningRate(5, factor=1.5)
    with pytest.raises(ValueError, match="new_sums"):
        scheduler.update(_tagged(0, m=4))


def test_scheduler_state_checkpoint_round_trip(tmp_path):
    script = _ScriptedTest([0.5, 0.05, 0.5])
    scheduler = adaptive_lr.AdaptiveLearningRate(3, lag=2, max_failures=3, keep_after_decay=2, test=script)
    for i in range(5):
        scheduler.update(_tagged(i))
    path = tf.train.Checkpoint(scheduler=scheduler).save(str(tmp_path / "ckpt"))
    restored = adaptive_lr.AdaptiveLearningRate(3, lag=2, max_failures=3, keep_after_decay=2,
                                                   test=_ScriptedTest([0.5]))
    tf.train.Checkpoint(scheduler=restored).restore(path).assert_consumed()
    # stored 0, 1; e2 fails (frozen); e3 improves (rotate); e4 fails (frozen).
    assert _queue_tags(restored) == _queue_tags(scheduler) == [1, 3]
    assert int(restored.failures.numpy()) == int(scheduler.failures.numpy()) == 1
    assert restored.update(_tagged(5)).failures == 2  # continues counting from the saved state
