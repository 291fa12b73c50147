"""Fresh real batches: every critic step and the generator step of a `fit` step train on a
batch of their own (elements ``[batch, n, ...]``), as the papers' codes draw them.

Each test fails when a critic step reuses a batch: the model's step is replayed by hand with
the documented batch of every critic step, or compared with the one-batch layout.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import datasets, losses, models
from mmd_keras.models import MMDGAN, real_batches_per_step

LATENT_DIM, BATCH = 4, 6


def make_model(critic_schedule="fixed", critic_steps=3, loss="repulsive", jit_compile=False,
               steps_per_execution=1, seed=0):
    keras.utils.set_random_seed(0)
    z = keras.Input((LATENT_DIM,))
    generator = keras.Model(z, keras.layers.Reshape((4, 4, 1))(keras.layers.Dense(16, activation="tanh")(z)))
    images = keras.Input((4, 4, 1))
    h = keras.layers.LeakyReLU(0.2)(keras.layers.Dense(8)(keras.layers.Flatten()(images)))
    critic = keras.Model(images, keras.layers.Dense(3)(h))
    model = MMDGAN(generator, critic, latent_dim=LATENT_DIM, critic_schedule=critic_schedule,
                   critic_steps=critic_steps, seed=seed)
    model.compile(generator_optimizer=keras.optimizers.SGD(0.1), critic_optimizer=keras.optimizers.SGD(0.1),
                  loss=losses.get(loss), jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model


def element(n, seed=0):
    """One fresh-batch element ``[BATCH, n, 4, 4, 1]`` whose batches all differ."""
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (BATCH, n, 4, 4, 1)), tf.float32)


def weights(model):
    return [np.array(v) for v in model.generator.variables + model.critic.variables]


def replay(model, real, critic_steps):
    """The step by hand: critic step ``i`` on ``real[:, i]``, the generator on ``real[:, k]``."""
    for index in range(critic_steps):
        model._critic_step(real[:, index], index)
    model._generator_step(real[:, critic_steps])
    model.step.assign_add(1)


def test_real_batches_per_step_of_each_schedule():
    assert real_batches_per_step("fixed", 5) == 6
    assert real_batches_per_step("paper2", 5) == 11  # its longest step: 10 critic steps
    assert real_batches_per_step("joint", 1) == 1
    assert make_model(critic_steps=3).real_batches_per_step == 4


@pytest.mark.parametrize("step, critic_steps", [(0, 10), (20, 5)])
def test_paper2_step_uses_the_first_batches_it_needs(step, critic_steps):
    """Paper 2's schedule in one graph (`tf.cond`): 10 or 5 critic steps, the generator on
    the batch after the last critic step's."""
    real = element(11)
    model, hand = make_model("paper2"), make_model("paper2")
    for m in (model, hand):
        m.step.assign(step)
    tf.function(model.train_step)(real)
    replay(hand, real, critic_steps)
    assert int(model.critic_optimizer.iterations.numpy()) == critic_steps
    for a, b in zip(weights(model), weights(hand)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fixed_step_trains_each_critic_step_on_its_own_batch():
    real = element(4)
    model, hand, reused = make_model(), make_model(), make_model()
    model.train_step(real)
    replay(hand, real, 3)
    for a, b in zip(weights(model), weights(hand)):
        np.testing.assert_array_equal(a, b)
    # Reusing batch 0 everywhere (the one-batch layout) trains to other weights.
    reused.train_step(real[:, 0])
    assert max(np.abs(a - b).max() for a, b in zip(weights(model), weights(reused))) > 1e-3


def test_one_batch_layout_equals_a_fresh_element_of_copies():
    """An ordinary batched dataset keeps its meaning: one batch for every step of a `fit` step."""
    real = element(1)[:, 0]
    plain, copies = make_model(), make_model()
    plain.train_step(real)
    copies.train_step(tf.stack([real] * 4, axis=1))
    for a, b in zip(weights(plain), weights(copies)):
        np.testing.assert_array_equal(a, b)


def test_too_few_batches_in_an_element_is_a_clear_error():
    with pytest.raises(ValueError, match=r"n >= 4.*critic_steps=3.*Received: elements of shape"):
        make_model().train_step(element(3))


def test_joint_schedule_uses_the_first_batch():
    real = element(2)
    model, plain = make_model("joint", 1), make_model("joint", 1)
    model.train_step(real)
    plain.train_step(real[:, 0])
    for a, b in zip(weights(model), weights(plain)):
        np.testing.assert_array_equal(a, b)


def stream(num_steps, n, seed=0):
    """``num_steps`` fresh-batch elements ``[BATCH, n, 4, 4, 1]`` (`pipeline.stack_batches`)."""
    data = np.random.default_rng(seed).uniform(-1, 1, (num_steps * n * BATCH, 4, 4, 1)).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices(data).batch(BATCH, drop_remainder=True)
    return datasets.pipeline.stack_batches(batches, n)


@pytest.mark.slow
def test_fit_with_xla_and_steps_per_execution_replays_the_eager_steps():
    """`fit` (compiled, XLA, two steps per execution) on a fresh-batch stream ends with the
    weights of eager steps on the same elements."""
    elements = list(stream(4, 4))
    eager = make_model()
    for real in elements:
        eager.train_step(real)
    for jit, per_execution in ((False, 2), (True, 1)):
        model = make_model(jit_compile=jit, steps_per_execution=per_execution)
        model.fit(stream(4, 4), epochs=1, steps_per_epoch=4, verbose=0)
        assert int(model.step.numpy()) == 4
        for a, b in zip(weights(model), weights(eager)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_stack_batches_keeps_the_stream_and_skips_whole_steps():
    """Element ``s`` holds batches ``s*n .. s*n+n-1`` of the plain stream, batch axis first;
    ``start_batch`` (a resumed run) skips whole steps."""
    plain = [b.numpy() for b in datasets.build_dataset("digits", "train", image_size=16, batch_size=4,
                                                       seed=3).take(9)]
    stacked = [e.numpy() for e in datasets.build_dataset("digits", "train", image_size=16, batch_size=4,
                                                         seed=3, batches_per_step=3).take(3)]
    assert stacked[0].shape == (4, 3, 16, 16, 1)
    for s in range(3):
        for i in range(3):
            np.testing.assert_array_equal(stacked[s][:, i], plain[3 * s + i])
    resumed = datasets.build_dataset("digits", "train", image_size=16, batch_size=4, seed=3,
                                     batches_per_step=3, start_batch=2)
    np.testing.assert_array_equal(next(iter(resumed)).numpy(), stacked[2])
    with pytest.raises(ValueError, match="Expected `batches_per_step` to be a positive int"):
        datasets.build_dataset("digits", batches_per_step=0)



@pytest.mark.parametrize("schedule", ["fixed", "paper2"])
def test_backup_and_restore_inside_an_epoch_is_exact_with_fresh_batches(tmp_path, schedule):
    """`BackupAndRestore` interrupted at step 6 resumes on the same fresh batches: the state
    equals an uninterrupted run's, bitwise (op determinism on, as ``--deterministic``)."""
    from tensorflow.python.framework import config as tf_config

    import test_models_saving as saving

    def fresh_dataset():
        n = real_batches_per_step(schedule, 2)
        images = np.random.default_rng(0).uniform(-1, 1, (saving.BATCHES * n * saving.BATCH, 4, 4, 1))
        batches = tf.data.Dataset.from_tensor_slices(images.astype("float32")).batch(saving.BATCH)
        return datasets.pipeline.stack_batches(batches, n)

    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    try:
        reference = saving.build(schedule)
        reference.fit(fresh_dataset(), epochs=saving.EPOCHS, verbose=0)
        backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=1)
        with pytest.raises(RuntimeError, match="interrupted"):
            saving.build(schedule).fit(fresh_dataset(), epochs=saving.EPOCHS,
                                       callbacks=[backup, saving.StopAt(6)], verbose=0)
        resumed = saving.build(schedule, init_seed=3)
        resumed.fit(fresh_dataset(), epochs=saving.EPOCHS, callbacks=[backup], verbose=0)
        saving.assert_same_state(saving.state(resumed), saving.state(reference))
    finally:
        tf_config.disable_op_determinism()


@pytest.mark.slow
def test_launcher_uses_fresh_batches_by_default_and_resumes_exactly(tmp_path):
    """Through the launcher (subprocess): a deterministic 2-critic-step run stopped at step 3
    and resumed to step 6 ends bitwise equal to an uninterrupted run; the same run with
    ``--nofresh_real_batches`` (one batch per generator step) ends elsewhere."""
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": repo}
    flags = [f"--flagfile={os.path.join(repo, 'configs', 'smoke.cfg')}", "--deterministic",
             "--critic_schedule=fixed", "--critic_steps=2", "--checkpoint_every=3", "--steps_per_epoch=3",
             "--export=false"]

    def launch(workdir, *extra):
        result = subprocess.run([sys.executable, "-m", "mmd_keras.launch", *flags, f"--workdir={workdir}", *extra],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    def final(workdir):
        reader = tf.train.load_checkpoint(str(workdir / "checkpoints" / "ckpt-6"))
        return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
                if not k.startswith("save_counter") and "OBJECT_GRAPH" not in k}

    launch(tmp_path / "whole", "--steps=6")
    launch(tmp_path / "split", "--steps=3")
    assert "Resuming from" in launch(tmp_path / "split", "--steps=6").stdout
    launch(tmp_path / "reused", "--steps=6", "--nofresh_real_batches")
    whole, split, reused = final(tmp_path / "whole"), final(tmp_path / "split"), final(tmp_path / "reused")
    assert whole.keys() == split.keys() and len(whole) > 10
    for key, value in whole.items():
        np.testing.assert_array_equal(split[key], value, err_msg=key)
    assert any(not np.array_equal(reused[k], v) for k, v in whole.items() if "critic" in k)


def _graph_op_count(function, op_type):
    """Nodes of ``op_type`` in a concrete function's graph and every function it calls."""
    graph_def = function.graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return sum(node.op == op_type for node in nodes)


@pytest.fixture
def no_graph_rewrites():
    """Grappler off: its arithmetic rewrites differ between a loop body and unrolled code
    (last-bit differences), which would hide whether both compute the same updates."""
    previous = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    yield
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False, **previous})


@pytest.mark.parametrize("step, critic_steps", [(0, 10), (20, 5)])
def test_paper2_critic_loop_replays_the_unrolled_steps_bitwise(monkeypatch, no_graph_rewrites, step,
                                                               critic_steps):
    """The critic steps run as one `tf.while_loop` in the compiled step: the same weights,
    bit for bit, as the same steps unrolled one by one in a compiled step (the form that
    several mirrored replicas trace: index ``i`` on ``real[:, i]``)."""
    real = element(11, seed=3)
    model, unrolled = make_model("paper2"), make_model("paper2")
    for m in (model, unrolled):
        m.step.assign(step)
    tf.function(model.train_step)(real)
    monkeypatch.setattr(models, "_critic_loop_in_graph", lambda: False)
    tf.function(lambda r: unrolled.train_step(r, extra_critic_steps=critic_steps == 10))(real)
    assert int(model.critic_optimizer.iterations.numpy()) == critic_steps
    for a, b in zip(weights(model), weights(unrolled)):
        np.testing.assert_array_equal(a, b)


def test_compiled_step_holds_one_critic_step_whatever_the_count():
    """XLA compiles one critic-step body: the critic's matmuls in the traced train step do
    not grow with the number of critic steps (1, 3 or paper 2's 10-or-5)."""
    real = element(11)
    counts = {}
    for name, (schedule, steps) in {"c1": ("fixed", 1), "c3": ("fixed", 3), "paper2": ("paper2", 5)}.items():
        model = make_model(schedule, steps)
        counts[name] = _graph_op_count(tf.function(model.train_step).get_concrete_function(real), "MatMul")
    assert counts["c1"] == counts["c3"] == counts["paper2"], counts
    # The generator step alone (a fixed schedule has >= 1 critic step): fewer matmuls.
    generator_only = make_model()
    function = tf.function(lambda r: generator_only._generator_step(r)).get_concrete_function(real[:, 0])
    assert 0 < _graph_op_count(function, "MatMul") < counts["c1"]
