"""The KID-driven learning-rate state machine and the evaluation callback (REFERENCE §8)."""

import glob

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import adaptive_lr, metrics, similarity


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
    # Hand-derived from REFERENCE §8 (lag 3, 2 failures, keep 2 after a decay):
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


class _FakeGAN:
    """The model contract the callback uses: step, generate(n, seed), two optimizers."""

    SHIFTS = (3.0, 2.0, 1.0, 0.8, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6)

    def __init__(self, learning_rate=1e-3):
        self.step = tf.Variable(0, dtype=tf.int64)
        self.generator_optimizer = keras.optimizers.Adam(learning_rate)
        self.critic_optimizer = keras.optimizers.Adam(2 * learning_rate)

    def generate(self, num_samples, seed=0):
        shift = self.SHIFTS[min(int(self.step.numpy()) // 2, len(self.SHIFTS) - 1)]
        return np.random.default_rng(seed).normal(shift, 1.0, size=(num_samples, 2, 2, 1)).astype(np.float32)


def _extract(images):
    return np.asarray(images).reshape(len(images), -1)


def _callback(model, real, **kwargs):
    kwargs = dict(dict(every_n_steps=2, kid_subsets=3, kid_subset_size=30, compute_fid=True, test_samples=40,
                       lag=2, max_failures=2, keep_after_decay=1, factor=0.5, seed=7), **kwargs)
    callback = adaptive_lr.EvaluationCallback(real, _extract, **kwargs)
    callback.set_model(model)
    return callback


def _run(callback, model, steps):
    history = []
    for step in steps:
        model.step.assign(step)
        logs = {}
        callback.on_train_batch_end(step - 1, logs)
        if logs:
            p_value = None if np.isnan(logs["three_sample_p"]) else logs["three_sample_p"]  # nan != nan
            history.append((step, callback.last_decision.action, p_value, logs["kid"], logs.get("fid"),
                            float(model.generator_optimizer.learning_rate.numpy()),
                            float(model.critic_optimizer.learning_rate.numpy())))
    return history


def test_resumed_run_makes_the_same_decisions_as_an_uninterrupted_one(tmp_path):
    real = np.random.default_rng(0).normal(size=(60, 4))
    model = _FakeGAN()
    uninterrupted = _run(_callback(model, real), model, range(1, 29))
    actions = [entry[1] for entry in uninterrupted]
    assert "improved" in actions and "decayed" in actions  # the sequence exercises the machine

    first_model = _FakeGAN()
    first = _callback(first_model, real)
    before = _run(first, first_model, range(1, 22))  # ends after a failure, one decay done
    checkpoint = tf.train.Checkpoint(step=first_model.step, generator_optimizer=first_model.generator_optimizer,
                                     critic_optimizer=first_model.critic_optimizer, **first.checkpoint_items())
    path = checkpoint.save(str(tmp_path / "run"))

    second_model = _FakeGAN()
    second = _callback(second_model, real)
    tf.train.Checkpoint(step=second_model.step, generator_optimizer=second_model.generator_optimizer,
                        critic_optimizer=second_model.critic_optimizer, **second.checkpoint_items()).restore(path)
    assert second.best_metric == first.best_metric
    after = _run(second, second_model, range(22, 29))
    assert before + after == uninterrupted
    # Learning rates: halved once per decay for both optimizers.
    decays = np.cumsum([entry[1] == "decayed" for entry in uninterrupted])
    np.testing.assert_allclose([entry[5] for entry in uninterrupted], 1e-3 * 0.5**decays, rtol=1e-6)
    np.testing.assert_allclose([entry[6] for entry in uninterrupted], 2e-3 * 0.5**decays, rtol=1e-6)


def test_callback_metrics_best_tracking_and_tensorboard(tmp_path):
    real = np.random.default_rng(1).normal(size=(60, 4))
    model = _FakeGAN()
    best_calls = []
    writer = tf.summary.create_file_writer(str(tmp_path))
    callback = _callback(model, real, writer=writer, on_new_best=lambda step, m: best_calls.append((step, m["kid"])))
    history = _run(callback, model, range(1, 13))
    assert [entry[0] for entry in history] == [2, 4, 6, 8, 10, 12]
    # KID and FID equal the metric functions on the same generated samples.
    model.step.assign(12)
    fake = _extract(model.generate(60, seed=callback._seed_for(12)))
    kid = metrics.kernel_inception_distance(real, fake, 3, 30, seed=callback._seed_for(12))
    assert history[-1][3] == kid.mean and history[-1][4] == metrics.frechet_distance(real, fake).value
    # on_new_best fires exactly at each new minimum of KID.
    kids, running, expected = [entry[3] for entry in history], np.inf, []
    for (step, *_), value in zip(history, [entry[3] for entry in history]):
        if value < running:
            running = value
            expected.append((step, value))
    assert best_calls == expected and callback.best_metric == min(kids)
    assert int(callback.state.best_step.numpy()) == expected[-1][0]
    logged = {}
    for event_file in glob.glob(str(tmp_path / "events*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            for value in event.summary.value:
                logged[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    assert logged[("evaluation/kid", 12)] == pytest.approx(kid.mean)
    assert logged[("evaluation/learning_rate", 12)] == pytest.approx(history[-1][5])


def test_decay_scales_coefficients_and_rejects_schedules():
    real = np.random.default_rng(2).normal(size=(20, 4))
    model = _FakeGAN()
    coefficient = tf.Variable(10.0)
    scheduler = adaptive_lr.AdaptiveLearningRate(
        20, lag=1, max_failures=1, keep_after_decay=1, factor=0.5, test=_ScriptedTest([0.9, 0.9]))
    callback = _callback(model, real, adaptive_lr=scheduler, coefficient_variables=[coefficient],
                         min_coefficient=3.0, compute_fid=False, kid_subset_size=10)
    actions = []
    for step in (2, 4, 6):
        callback.evaluate(step)
        actions.append(callback.last_decision.action)
    assert actions == ["stored", "decayed", "decayed"]
    np.testing.assert_allclose(model.generator_optimizer.learning_rate.numpy(), 2.5e-4, rtol=1e-6)
    np.testing.assert_allclose(model.critic_optimizer.learning_rate.numpy(), 5e-4, rtol=1e-6)
    assert float(coefficient.numpy()) == 3.0  # 10 → 5 → max(2.5, 3)

    scheduled = _FakeGAN()
    scheduled.generator_optimizer = keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9))
    callback = _callback(scheduled, real, adaptive_lr=adaptive_lr.AdaptiveLearningRate(
        20, lag=1, max_failures=1, test=_ScriptedTest([0.9])), compute_fid=False, kid_subset_size=10)
    with pytest.raises(ValueError, match="generator_optimizer"):
        callback.on_train_begin()
    callback.evaluate(2)
    with pytest.raises(ValueError, match="generator_optimizer"):
        callback.evaluate(4)


def test_callback_rejects_bad_arguments():
    real = np.zeros((20, 4))
    with pytest.raises(ValueError, match="real_features"):
        adaptive_lr.EvaluationCallback(np.zeros((20,)), _extract)
    with pytest.raises(ValueError, match="extractor"):
        adaptive_lr.EvaluationCallback(real, "inception")
    with pytest.raises(ValueError, match="compute_fid"):
        adaptive_lr.EvaluationCallback(real, _extract, best_metric="fid")
    with pytest.raises(ValueError, match="adaptive_lr.num_samples"):
        adaptive_lr.EvaluationCallback(real, _extract, adaptive_lr=adaptive_lr.AdaptiveLearningRate(30))


class _TinyKerasGAN(keras.Model):
    """A keras.Model honouring the MMDGAN contract, to run the callback inside ``fit``."""

    def __init__(self):
        super().__init__()
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.generator_optimizer = keras.optimizers.Adam(1e-3)
        self.critic_optimizer = keras.optimizers.Adam(1e-3)

    def train_step(self, data):
        self.step.assign_add(1)
        return {"loss": tf.constant(0.0)}

    def generate(self, num_samples, seed=0):
        return np.random.default_rng(seed).normal(size=(num_samples, 2, 2, 1))


def test_callback_inside_keras_fit_logs_to_history():
    real = np.random.default_rng(3).normal(size=(30, 4))
    model = _TinyKerasGAN()
    model.compile(optimizer=None)
    callback = adaptive_lr.EvaluationCallback(real, _extract, every_n_steps=4, kid_subsets=2, kid_subset_size=20,
                                              lag=1, evaluate_at_end=True)
    history = model.fit(np.zeros((10, 1)), batch_size=1, epochs=1, callbacks=[callback], verbose=0)
    assert [step for step, _ in callback.evaluations] == [4, 8, 10]  # then the end of training
    assert int(callback.state.last_evaluated_step.numpy()) == 10
    assert history.history["kid"] == [callback.evaluations[1][1]["kid"]]  # epoch end came after step 8
    assert "three_sample_p" not in callback.evaluations[2][1]  # the end evaluation leaves the schedule alone
    assert int(callback.scheduler.queue_length.numpy()) == 1
