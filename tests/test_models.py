"""Tests of `mmd_keras.models.MMDGAN`: steps, schedules, seeds, EMA, clipping, resume, fit, ring8."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import losses
from mmd_keras import rng as rng_lib
from mmd_keras.models import MMDGAN, paper2_critic_steps

LATENT_DIM, BATCH = 4, 6
LOSS_NAMES = ("mmd", "repulsive", "rep_b", "mmd_rbf_b", "smmd", "swgan", "rep_gp", "gcmmd", "wgan_gp",
              "cramer", "sobolev", "hinge", "non_saturating")


def tiny_networks(output_dim=3, init_seed=0):
    """Generator [b, 4] -> [b, 4, 4, 1] (tanh) and critic [b, 4, 4, 1] -> [b, output_dim]."""
    keras.utils.set_random_seed(init_seed)
    z = keras.Input((LATENT_DIM,))
    x = keras.layers.Dense(16, activation="tanh")(z)
    generator = keras.Model(z, keras.layers.Reshape((4, 4, 1))(x))
    images = keras.Input((4, 4, 1))
    h = keras.layers.LeakyReLU(0.2)(keras.layers.Dense(8)(keras.layers.Flatten()(images)))
    critic = keras.Model(images, keras.layers.Dense(output_dim)(h))
    return generator, critic


def make_model(loss="repulsive", init_seed=0, generator_optimizer=None, critic_optimizer=None, **kwargs):
    loss = losses.get(loss)
    generator, critic = tiny_networks(loss.required_output_dim or 3, init_seed)
    kwargs.setdefault("critic_steps", 1)
    model = MMDGAN(generator, critic, **kwargs)
    model.compile(generator_optimizer=generator_optimizer, critic_optimizer=critic_optimizer, loss=loss)
    return model


def real_batch(seed=0, n=BATCH):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (n, 4, 4, 1)), tf.float32)


def values(variables):
    return [np.array(v) for v in variables]


def assert_same(before, variables):
    for old, new in zip(before, values(variables)):
        np.testing.assert_array_equal(old, new)


def assert_moved(before, variables):
    assert any(not np.array_equal(old, new) for old, new in zip(before, values(variables)))


def gaussian_gram(a, b):
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / 2.0)


def off_diagonal_mean(k):
    n = k.shape[0]
    return (k.sum() - np.trace(k)) / (n * (n - 1))


def numpy_mmd2(x, y):
    """Unbiased MMD² with the Gaussian kernel σ = 1 (float64)."""
    return off_diagonal_mean(gaussian_gram(x, x)) + off_diagonal_mean(gaussian_gram(y, y)) \
        - 2 * gaussian_gram(x, y).mean()


def hand_gradients(model, real, index, mode):
    """The step's gradients recomputed outside the model from the documented seeds."""
    seed = rng_lib.step_seed(model.seed, model.step, index, rng_lib.PURPOSE_LATENTS, replica=0)
    latents = rng_lib.sample_latents(BATCH, LATENT_DIM, model.latent_distribution, seed)
    loss_seed = rng_lib.step_seed(model.seed, model.step, index, rng_lib.PURPOSE_LOSS, replica=0)
    with tf.GradientTape(persistent=True) as tape:
        fake = model.generator(latents, training=True)
        out = model.loss_object(model.critic, real, fake, seed=loss_seed, mode=mode)
    critic_grads = tape.gradient(out.critic_loss, model.critic.trainable_variables)
    generator_grads = tape.gradient(out.generator_loss, model.generator.trainable_variables)
    return out, critic_grads, generator_grads, fake


@pytest.mark.parametrize("loss_name", LOSS_NAMES)
def test_steps_update_only_their_network_for_every_loss(loss_name):
    model = make_model(loss_name, clip_norm=1.0)
    real = real_batch()
    generator_before, critic_before = values(model.generator.weights), values(model.critic.weights)
    critic_logs = model._critic_step(real, 0)
    assert_same(generator_before, model.generator.weights)
    assert_moved(critic_before, model.critic.trainable_weights)
    critic_after = values(model.critic.weights)
    generator_logs = model._generator_step(real)
    assert_same(critic_after, model.critic.weights)
    assert_moved(generator_before, model.generator.trainable_weights)
    logs = model._format_logs({**critic_logs, **generator_logs})  # what train_step returns
    assert {"critic_loss", "generator_loss", "generator_lr", "critic_lr"} <= set(logs)
    assert all(v.shape == () and np.isfinite(v.numpy()) for v in logs.values()), logs


def test_critic_step_is_the_hand_computed_clipped_gradient_step():
    sgd = keras.optimizers.SGD(1.0)
    model = make_model("mmd", critic_optimizer=sgd, clip_norm=1e-3)
    real = real_batch()
    before = values(model.critic.trainable_variables)
    out, grads, _, fake = hand_gradients(model, real, 0, "critic")
    logs = model._critic_step(real, 0)
    np.testing.assert_allclose(logs["critic_loss"], out.critic_loss, rtol=1e-6)
    for old, new, g in zip(before, values(model.critic.trainable_variables), grads):
        norm = np.linalg.norm(g.numpy())
        expected = old - g.numpy() * min(1.0, 1e-3 / norm)
        np.testing.assert_allclose(new, expected, atol=1e-7)
        assert np.linalg.norm(new - old) <= 1e-3 + 1e-6
    assert "mmd2" in logs and "gradient_penalty" in logs


def test_joint_step_equals_one_forward_pass_and_hand_updates():
    lr = 0.1
    model = make_model("repulsive", critic_schedule="joint", latent_distribution="normal",
                       generator_optimizer=keras.optimizers.SGD(lr), critic_optimizer=keras.optimizers.SGD(lr))
    real = real_batch(1)
    critic_before, generator_before = values(model.critic.trainable_variables), values(
        model.generator.trainable_variables)
    out, critic_grads, generator_grads, fake = hand_gradients(model, real, 0, "both")
    x, y = (model.critic(t).numpy().astype(np.float64) for t in (real, fake))
    logs = model.train_step(real)
    np.testing.assert_allclose(logs["generator_loss"], numpy_mmd2(x, y), rtol=1e-4, atol=1e-6)
    repulsive = off_diagonal_mean(gaussian_gram(x, x)) - off_diagonal_mean(gaussian_gram(y, y))
    np.testing.assert_allclose(logs["critic_loss"], repulsive, rtol=1e-4, atol=1e-6)
    for before, grads, variables in ((critic_before, critic_grads, model.critic.trainable_variables),
                                     (generator_before, generator_grads, model.generator.trainable_variables)):
        for old, g, new in zip(before, grads, values(variables)):
            np.testing.assert_allclose(new, old - lr * g.numpy(), atol=1e-6)
    assert model.critic_optimizer.iterations.numpy() == 1 == model.generator_optimizer.iterations.numpy()


def test_paper2_schedule_counts_critic_updates():
    assert [paper2_critic_steps(s) for s in (0, 19, 20, 499, 500, 501, 1000)] == [10, 10, 5, 5, 10, 5, 10]
    model = make_model("repulsive", critic_schedule="paper2")
    real = real_batch()
    counts = []
    for step in (0, 20, 500, 21):
        model.step.assign(step)
        before = int(model.critic_optimizer.iterations.numpy())
        model.train_step(real)
        counts.append(int(model.critic_optimizer.iterations.numpy()) - before)
    assert counts == [10, 5, 10, 5]
    assert int(model.generator_optimizer.iterations.numpy()) == 4


def test_fixed_schedule_and_step_counter():
    model = make_model("repulsive", critic_steps=3)
    model.train_step(real_batch())
    model.train_step(real_batch())
    assert int(model.critic_optimizer.iterations.numpy()) == 6
    assert int(model.generator_optimizer.iterations.numpy()) == 2 == int(model.step.numpy())


def test_same_seed_same_logs_and_different_seed_different_logs():
    def run(seed):
        model = make_model("mmd", seed=seed, critic_steps=2)  # the witness GP draws from the seed too
        return [{k: v.numpy() for k, v in model.train_step(real_batch()).items()} for _ in range(2)]

    first, second, other = run(7), run(7), run(8)
    assert first == second
    assert first[1]["critic_loss"] != other[1]["critic_loss"]


def test_ema_matches_hand_formula_and_is_used_by_generate():
    decay = 0.75
    model = make_model("repulsive", ema_decay=decay)
    theta = [values(model.generator.weights)]
    for _ in range(2):
        model.train_step(real_batch())
        theta.append(values(model.generator.weights))
    for k, ema in enumerate(values(model.ema_generator.weights)):
        expected = decay * (decay * theta[0][k] + (1 - decay) * theta[1][k]) + (1 - decay) * theta[2][k]
        np.testing.assert_allclose(ema, expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(values(model.ema_generator.weights)[0], theta[2][0])
    latents = model.sample_latents(5, seed=3)
    np.testing.assert_array_equal(model.generate(5, seed=3), model.ema_generator(latents).numpy())


def test_generate_is_reproducible_and_independent_of_batch_size():
    model = make_model("repulsive")
    a = model.generate(10, seed=3, batch_size=4)
    assert a.shape == (10, 4, 4, 1) and a.dtype == np.float32
    assert np.abs(a).max() <= 1.0
    np.testing.assert_allclose(a, model.generate(10, seed=3, batch_size=16), atol=1e-6)
    assert not np.allclose(a, model.generate(10, seed=4))
    latents = model.sample_latents(10, seed=3).numpy()
    assert latents.min() >= -1 and latents.max() <= 1  # uniform[-1, 1]
    # The SavedModel's `sample(batch_size, seed)` draws with the same function.
    np.testing.assert_array_equal(latents, rng_lib.generation_latents(10, LATENT_DIM, "uniform", 3).numpy())


def test_checkpoint_restore_resumes_exactly(tmp_path):
    model = make_model("mmd", ema_decay=0.9, seed=3)
    for _ in range(2):
        model.train_step(real_batch())
    path = tf.train.Checkpoint(**model.checkpoint_items()).save(str(tmp_path / "ckpt"))
    expected_logs = [model.train_step(real_batch())["critic_loss"].numpy() for _ in range(2)]
    resumed = make_model("mmd", ema_decay=0.9, seed=3, init_seed=99)
    # "mmd" has a witness gradient penalty: its weight is state of the loss item (collapse
    # recovery may raise it).
    assert set(resumed.checkpoint_items()) == {"generator", "critic", "step", "ema_generator",
                                               "generator_optimizer", "critic_optimizer", "loss"}
    tf.train.Checkpoint(**resumed.checkpoint_items()).restore(path).assert_consumed()
    assert int(resumed.step.numpy()) == 2
    logs = [resumed.train_step(real_batch())["critic_loss"].numpy() for _ in range(2)]
    assert logs == expected_logs
    for network in ("generator", "critic", "ema_generator"):
        for a, b in zip(getattr(model, network).weights, getattr(resumed, network).weights):
            np.testing.assert_array_equal(np.array(a), np.array(b))


def test_loss_variables_are_checkpoint_items(tmp_path):
    model = make_model("smmd")
    coefficient = model.loss_object.variables[0]
    checkpoint = tf.train.Checkpoint(**model.checkpoint_items())
    path = checkpoint.save(str(tmp_path / "ckpt"))
    coefficient.assign(3.0)
    checkpoint.restore(path)
    assert float(coefficient.numpy()) == 10.0  # paper 2's SMMD coefficient, restored


def fit_and_eager_logs(images, jit_compile, **kwargs):
    """Logs of `fit` on ``(images, labels)`` batches and of the same steps run eagerly."""
    labelled = tf.data.Dataset.from_tensor_slices((images, np.arange(len(images))))
    model = make_model("repulsive", **kwargs)
    model.compile(loss="repulsive", jit_compile=jit_compile)
    steps = len(images) // BATCH
    history = model.fit(labelled.batch(BATCH, drop_remainder=True).repeat(), epochs=2,
                        steps_per_epoch=steps // 2, verbose=0).history
    eager = make_model("repulsive", **kwargs)
    eager_logs = [eager.train_step(tf.constant(images[i * BATCH:(i + 1) * BATCH])) for i in range(steps)]
    return model, history, eager_logs


def test_fit_with_labelled_and_plain_datasets():
    images = np.random.default_rng(0).uniform(-1, 1, (24, 4, 4, 1)).astype("float32")
    model, history, eager_logs = fit_and_eager_logs(images, jit_compile=False, ema_decay=0.5)
    assert {"critic_loss", "generator_loss", "mmd2", "critic_lr", "generator_lr"} <= set(history)
    np.testing.assert_allclose(history["generator_lr"], 2e-4, rtol=1e-6)  # compile's default
    np.testing.assert_allclose(history["critic_lr"], 5e-4, rtol=1e-6)
    assert int(model.step.numpy()) == 4
    # The compiled steps replay the eager ones: same seeds, same updates.
    for key in ("critic_loss", "generator_loss"):
        np.testing.assert_allclose(history[key][-1], eager_logs[-1][key], rtol=1e-5, atol=1e-6)
    plain = tf.data.Dataset.from_tensor_slices(images).batch(BATCH, drop_remainder=True)
    plain_history = model.fit(plain, epochs=1, verbose=0).history
    assert np.isfinite(plain_history["critic_loss"]).all() and int(model.step.numpy()) == 8


@pytest.mark.slow
def test_fit_jit_compiled_matches_eager():
    images = np.random.default_rng(1).uniform(-1, 1, (12, 4, 4, 1)).astype("float32")
    _, history, eager_logs = fit_and_eager_logs(images, jit_compile=True, critic_schedule="joint")
    for key in ("critic_loss", "generator_loss"):
        np.testing.assert_allclose(history[key][-1], eager_logs[-1][key], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_fit_paper2_schedule_in_graph_mode():
    images = np.random.default_rng(0).uniform(-1, 1, (12, 4, 4, 1)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices({"image": images}).batch(BATCH, drop_remainder=True)
    model = make_model("repulsive", critic_schedule="paper2", logs_as_vectors=True)
    model.step.assign(19)
    model.fit(dataset, epochs=1, verbose=0)  # steps 19 (10 critic steps) and 20 (5)
    assert int(model.critic_optimizer.iterations.numpy()) == 15
    assert model.train_step(real_batch())["critic_loss"].shape == (1,)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_step(policy):
    keras.mixed_precision.set_global_policy(policy)
    model = make_model("mmd", clip_norm=1.0)
    assert model.critic(real_batch()).dtype == policy.split("_")[1]
    is_scaled = isinstance(model.critic_optimizer, keras.optimizers.LossScaleOptimizer)
    assert is_scaled == (policy == "mixed_float16")
    before = values(model.critic.trainable_variables)
    logs = model.train_step(real_batch())
    assert all(v.dtype == tf.float32 and np.isfinite(v.numpy()) for v in logs.values())
    assert_moved(before, model.critic.trainable_variables)


@pytest.mark.parametrize("kwargs", [
    {"critic_schedule": "sometimes"}, {"latent_distribution": "cauchy"}, {"critic_steps": 0},
    {"critic_steps": 2.5}, {"ema_decay": 1.0}, {"clip_norm": -1.0}, {"mmd_across_replicas": "ring"},
])
def test_invalid_arguments_raise(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        MMDGAN(*tiny_networks(), **kwargs)


def test_compile_checks_loss_and_critic_output():
    model = MMDGAN(*tiny_networks(output_dim=3))
    with pytest.raises(ValueError, match="loss"):
        model.compile()
    with pytest.raises(ValueError, match="output dimension 1"):
        model.compile(loss="swgan")  # SMMD takes any output size; SWGAN needs 1


@pytest.mark.parametrize("distribution, mean, std", [("uniform", 0.0, 1 / np.sqrt(3)), ("normal", 0.0, 1.0)])
def test_latents_have_the_distribution_and_replay_under_xla(distribution, mean, std):
    step = tf.Variable(7, dtype=tf.int64)

    def draw():
        return rng_lib.sample_latents(4000, 8, distribution, rng_lib.step_seed(0, step, 1, rng_lib.PURPOSE_LATENTS, replica=0))

    eager, compiled = draw().numpy(), tf.function(draw, jit_compile=True)().numpy()
    np.testing.assert_allclose(compiled, eager, atol=1e-5)
    assert abs(eager.mean() - mean) < 0.02 and abs(eager.std() - std) < 0.02
    if distribution == "uniform":
        assert -1 < eager.min() and eager.max() < 1
    other = rng_lib.sample_latents(4000, 8, distribution, rng_lib.step_seed(0, step, 1, rng_lib.PURPOSE_LATENTS, replica=1))
    assert np.abs(other.numpy() - eager).mean() > 0.1  # replicas draw different latents


def smooth_model(loss, jit_compile, critic_schedule="fixed", steps_per_execution=1, learning_rate=0.1,
                 critic_steps=2):
    """Vector "images" [b, 2], tanh networks (no kink where XLA and TF could round a
    pre-activation to opposite signs), SGD (no Adam normalization of near-zero gradients)."""
    loss = losses.get(loss) if isinstance(loss, str) else loss
    keras.utils.set_random_seed(3)
    generator = keras.Sequential([keras.Input((3,)), keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(2)])
    critic = keras.Sequential([keras.Input((2,)), keras.layers.Dense(6, activation="tanh"),
                               keras.layers.Dense(loss.required_output_dim or 3)])
    model = MMDGAN(generator, critic, critic_schedule=critic_schedule, critic_steps=critic_steps, seed=1)
    model.compile(generator_optimizer=keras.optimizers.SGD(learning_rate),
                  critic_optimizer=keras.optimizers.SGD(learning_rate),
                  loss=loss, jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model


def smooth_data(batches=3):
    return tf.data.Dataset.from_tensor_slices(
        np.random.default_rng(2).normal(size=(4 * batches, 2)).astype("float32")).batch(4)


# Float32 round-off, amplified by training, separates XLA from TF (XLA's CPU tanh/exp/log
# are other approximations, a few ulps apart): in the witness-GP test below (3 steps, lr 0.1,
# weights moved 0.35) XLA vs TF differ by 1.3e-5, and TF vs TF on data moved by one ulp
# (np.nextafter) by 1.2e-5 -- the same size. A real mismatch (another seed, a missing term)
# moves weights by >= 1e-3. Hence atol 1e-4. The all-losses test uses lr 3e-3: at lr 0.1
# Cramér and WGAN-GP diverge (weights move by 68 and 5e3) and a one-ulp change of the data
# already moves them by 0.08 and 0.03; at 3e-3 the largest XLA difference is Cramér's 3.4e-5.
XLA_ATOL = 1e-4


@pytest.mark.slow
def test_xla_train_step_with_witness_gradient_penalty_matches_eager():
    """The compiled (XLA) train step, nested-tape gradient penalty included, ends with the
    weights of the uncompiled one (see XLA_ATOL)."""
    from mmd_keras import kernels

    loss = losses.get("mmd", kernel=kernels.get("rq_dot"), gradient_penalty_weight=1.0)
    compiled, plain = smooth_model(loss, True), smooth_model(loss, False)
    initial = values(plain.trainable_variables)
    logs = compiled.fit(smooth_data(), epochs=1, verbose=0).history
    plain.fit(smooth_data(), epochs=1, verbose=0)
    assert np.isfinite(logs["gradient_penalty"]).all()
    moved = max(np.abs(a - b).max() for a, b in zip(values(plain.trainable_variables), initial))
    assert moved > 1e-2
    for a, b in zip(values(compiled.trainable_variables), values(plain.trainable_variables)):
        np.testing.assert_allclose(a, b, atol=XLA_ATOL, rtol=0)


# Every loss in the critic/generator modes ("fixed") and in the "both" mode ("joint"); paper2
# adds only a `tf.cond` around the same critic steps, checked with two losses (one with state).
XLA_CASES = ([(name, "fixed") for name in sorted(losses.LOSSES)] + [(name, "joint") for name in sorted(losses.LOSSES)]
             + [("repulsive", "paper2"), ("sobolev", "paper2")])


@pytest.mark.slow
@pytest.mark.parametrize("loss_name, critic_schedule", XLA_CASES)
def test_xla_train_step_matches_uncompiled_for_every_loss_and_schedule(loss_name, critic_schedule):
    """Issue 13 item 7: every loss of the registry, every schedule compiles under XLA on CPU
    (TPU readiness) and ends with the weights (and loss state) of the uncompiled step."""
    compiled, plain = (smooth_model(loss_name, jit, critic_schedule, learning_rate=3e-3, critic_steps=1)
                       for jit in (True, False))
    assert compiled.jit_compile is True
    compiled.fit(smooth_data(1), epochs=1, verbose=0)
    plain.fit(smooth_data(1), epochs=1, verbose=0)
    for a, b in zip(values(compiled.variables + compiled.loss_object.variables),
                    values(plain.variables + plain.loss_object.variables)):
        np.testing.assert_allclose(a, b, atol=XLA_ATOL, rtol=0)
    assert int(compiled.step.numpy()) == 1


def test_steps_per_execution_gives_the_weights_of_single_steps():
    """``steps_per_execution=2`` through `fit` (Keras's in-graph loop over the iterator) is
    the same computation as two calls: bitwise equal weights."""
    states = []
    for steps_per_execution in (1, 2):
        model = smooth_model("repulsive", False, "fixed", steps_per_execution)
        model.fit(smooth_data(4), epochs=1, verbose=0)
        assert int(model.step.numpy()) == 4
        states.append(values(model.variables))
    for a, b in zip(*states):
        np.testing.assert_array_equal(a, b)
