"""The evaluation callback: metrics, best tracking, TensorBoard, decays, resume, Keras fit."""

import glob

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras.evaluation import adaptive_lr, metrics, similarity
from mmd_keras.evaluation.callback import EvaluationCallback


def _failing_test(max_calls):
    """A relative-similarity test that always fails (p = 0.9), allowed ``max_calls`` calls."""
    calls = []

    def test(new, old):
        calls.append((new, old))
        assert len(calls) <= max_calls
        return similarity.RelativeSimilarityResult(0.0, 1.0, 0.0, 0.9)

    return test


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
    callback = EvaluationCallback(real, _extract, **kwargs)
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
    # The learning rate is returned but written once, by the train step's logs (generator_lr):
    # a second tag would show the same scalar twice in TensorBoard.
    assert callback.last_metrics["learning_rate"] == pytest.approx(history[-1][5])
    assert not any(tag == "evaluation/learning_rate" for tag, _ in logged)


def test_decay_scales_coefficients_and_rejects_schedules():
    real = np.random.default_rng(2).normal(size=(20, 4))
    model = _FakeGAN()
    coefficient = tf.Variable(10.0)
    scheduler = adaptive_lr.AdaptiveLearningRate(
        20, lag=1, max_failures=1, keep_after_decay=1, factor=0.5, test=_failing_test(2))
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
        20, lag=1, max_failures=1, test=_failing_test(1)), compute_fid=False, kid_subset_size=10)
    with pytest.raises(ValueError, match="generator_optimizer"):
        callback.on_train_begin()
    callback.evaluate(2)
    with pytest.raises(ValueError, match="generator_optimizer"):
        callback.evaluate(4)


def test_callback_rejects_bad_arguments():
    real = np.zeros((20, 4))
    with pytest.raises(ValueError, match="real_features"):
        EvaluationCallback(np.zeros((20,)), _extract)
    with pytest.raises(ValueError, match="extractor"):
        EvaluationCallback(real, "inception")
    with pytest.raises(ValueError, match="compute_fid"):
        EvaluationCallback(real, _extract, best_metric="fid")
    with pytest.raises(ValueError, match="adaptive_lr.num_samples"):
        EvaluationCallback(real, _extract, adaptive_lr=adaptive_lr.AdaptiveLearningRate(30))


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
    callback = EvaluationCallback(real, _extract, every_n_steps=4, kid_subsets=2, kid_subset_size=20,
                                              lag=1, evaluate_at_end=True)
    history = model.fit(np.zeros((10, 1)), batch_size=1, epochs=1, callbacks=[callback], verbose=0)
    assert [step for step, _ in callback.evaluations] == [4, 8, 10]  # then the end of training
    assert int(callback.state.last_evaluated_step.numpy()) == 10
    assert history.history["kid"] == [callback.evaluations[1][1]["kid"]]  # epoch end came after step 8
    assert "three_sample_p" not in callback.evaluations[2][1]  # the end evaluation leaves the schedule alone
    assert int(callback.scheduler.queue_length.numpy()) == 1
