"""The benchmarks' FLOP counter against hand arithmetic, and their CLI contract."""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks import flops
from mmd_keras.evaluation import metrics


def _tiny_net():
    conv = tf.Variable(tf.random.normal([3, 3, 1, 2]))     # 3×3 conv, 1 -> 2 channels
    dense = tf.Variable(tf.random.normal([6 * 6 * 2, 3]))  # flatten 72 -> 3
    return conv, dense


def _forward(x, conv, dense):
    h = tf.nn.conv2d(x, conv, strides=1, padding="SAME")
    return tf.matmul(tf.reshape(tf.nn.relu(h), [2, 72]), dense)


# Hand arithmetic for x [2, 6, 6, 1]: conv 2·(2·6·6·2)·(3·3·1) = 2592, dense 2·2·72·3 = 864.
CONV, DENSE = 2 * (2 * 6 * 6 * 2) * (3 * 3 * 1), 2 * 2 * 72 * 3


def test_forward_counts_conv_and_dense():
    conv, dense = _tiny_net()
    f = tf.function(lambda x: _forward(x, conv, dense))
    assert CONV == 2592 and DENSE == 864
    assert flops.function_flops(f, tf.TensorSpec([2, 6, 6, 1]))["total"] == CONV + DENSE


def test_weight_gradients_skip_the_pruned_input_gradient():
    conv, dense = _tiny_net()

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(_forward(x, conv, dense))
        grads = tape.gradient(loss, [conv, dense])
        conv.assign_sub(0.1 * grads[0])
        dense.assign_sub(0.1 * grads[1])
        return loss

    counted = flops.function_flops(step, tf.TensorSpec([2, 6, 6, 1]))
    # forward conv + filter gradient (the input gradient of the first conv is dead code);
    # dense forward + input gradient (feeds the conv) + kernel gradient.
    assert counted["total"] == 2 * CONV + 3 * DENSE
    assert counted["by_op"]["Conv2DBackpropFilter"] == CONV
    assert "Conv2DBackpropInput" not in counted["by_op"]


def test_input_gradient_and_transposed_conv_are_counted():
    kernel = tf.Variable(tf.random.normal([4, 4, 5, 2]))  # transposed conv 2 -> 5 channels, stride 2

    @tf.function
    def up(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.conv2d_transpose(x, kernel, [1, 6, 6, 5], strides=2, padding="SAME")
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, x)

    # Each of the three ops (transpose, its input gradient = a conv) is 2·(1·3·3·2)·(4·4·5).
    counted = flops.function_flops(up, tf.TensorSpec([1, 3, 3, 2]))
    assert counted["total"] == 2 * (2 * 1 * 3 * 3 * 2 * 4 * 4 * 5)


def test_matmul_transpose_flags():
    f = tf.function(lambda a, b: tf.matmul(a, b, transpose_a=True, transpose_b=True))
    assert flops.function_flops(f, tf.TensorSpec([7, 3]), tf.TensorSpec([5, 7]))["total"] == 2 * 3 * 5 * 7


@pytest.mark.parametrize("module, args", [
    ("train_step", ["--losses", "no_such_loss"]),
    ("train_step", ["--repeats", "0"]),
    ("kernel_cost", ["--batches", "1"]),
    ("kernel_cost", ["--dims", "x"]),
    ("evaluation", ["--subsets", "-3"]),
    ("evaluation", ["--n", "10", "--subset_size", "20"]),
    ("run_all", ["--label", ""]),
    ("conv_ops", ["--batch", "0"]),
    ("peer", ["--repeats", "0"]),
    ("profile_step", ["--case", "mmd_rep/x5"]),
    ("threads", ["--rounds", "0"]),
    ("accelerator", ["--repeats", "-1"]),
    ("main_job", ["--steps", "0"]),
    ("xla_compile", ["--cases", "smmd/c7"]),
])
def test_bad_arguments_exit_2_and_write_nothing(module, args, tmp_path, cli_exit_2):
    out = tmp_path / "r.json"
    main = importlib.import_module(f"benchmarks.{module}").main
    assert "error" in cli_exit_2(main, [*args, "--output", str(out)]).lower()
    assert not out.exists()


def test_kid_fast_path_on_float32_rows_equals_float64_reference():
    # The benchmark's KID fix keeps float32 features and converts only the gathered rows.
    rng = np.random.default_rng(0)
    a = np.abs(rng.standard_normal((60, 9))).astype(np.float32)
    b = (np.abs(rng.standard_normal((50, 9))) + 0.2).astype(np.float32)
    fast = metrics.kernel_inception_distance(a, b, num_subsets=4, subset_size=20, seed=3)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    random, values = np.random.RandomState(3), []
    for _ in range(4):
        x, y = a64[random.choice(60, 20, replace=False)], b64[random.choice(50, 20, replace=False)]
        k_xx, k_yy, k_xy = [(p @ q.T / 9 + 1) ** 3 for p, q in ((x, x), (y, y), (x, y))]
        values.append((k_xx.sum() - np.trace(k_xx)) / 380 + (k_yy.sum() - np.trace(k_yy)) / 380
                      - 2 * k_xy.mean())
    np.testing.assert_allclose(fast.mean, np.mean(values), rtol=1e-12)
    bad = a.copy()
    bad[5, 3] = np.inf
    with pytest.raises(ValueError, match="finite"):
        metrics.kernel_inception_distance(bad, b, num_subsets=1, subset_size=20)


# --- the PyTorch peer (benchmarks/peer_torch.py) is the library's step, op for op ---------------

def test_peer_networks_have_the_librarys_parameter_shapes():
    pytest.importorskip("torch")
    from benchmarks import peer_torch
    from mmd_keras import networks

    def keras_shapes(model):  # Keras conv kernels [kh, kw, c_in, c_out], deconv [kh, kw, c_out, c_in]
        return sorted(tuple(v.shape) for v in model.trainable_weights if len(v.shape) != 4) + \
            sorted(tuple(sorted(v.shape)) for v in model.trainable_weights if len(v.shape) == 4)

    def torch_shapes(module):
        params = [p for p in module.parameters()]
        flat = [tuple(p.shape[::-1]) if p.dim() == 2 else tuple(p.shape) for p in params if p.dim() != 4]
        return sorted(flat) + sorted(tuple(sorted(p.shape)) for p in params if p.dim() == 4)

    assert keras_shapes(networks.build_generator("dcgan_s1", image_size=32)) == \
        torch_shapes(peer_torch.generator())
    assert keras_shapes(networks.build_critic("dcgan_s1", image_size=32, output_dim=16)) == \
        torch_shapes(peer_torch.critic())


def test_peer_loss_equals_the_librarys_mmd_rep():
    torch = pytest.importorskip("torch")
    from benchmarks import peer_torch
    from mmd_keras import losses
    from mmd_keras.losses import mmd_family

    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((2, 8, 16)).astype(np.float32) * 0.5
    loss = losses.get("repulsive")
    expected = [mmd_family.repulsive_critic_loss(real, fake, loss.kernel, 1.0, loss.estimator).numpy(),
                mmd_family.repulsive_generator_loss(real, fake, loss.kernel, loss.estimator).numpy()]
    got = [t.item() for t in peer_torch.repulsive_losses(torch.from_numpy(real), torch.from_numpy(fake))]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_peer_pico_sigma_equals_the_librarys():
    torch = pytest.importorskip("torch")
    from benchmarks import peer_torch
    from mmd_keras import layers

    rng = np.random.default_rng(1)
    for kernel_size, stride in ((4, 2), (3, 1)):
        kernel = rng.standard_normal((kernel_size, kernel_size, 3, 5)).astype(np.float32)
        x = rng.standard_normal((1, 8, 8, 3)).astype(np.float32)
        # The peer keeps its vector on the input side; the library picks the smaller side.
        layer = layers.SNConv2D(5, kernel_size, strides=stride, padding="same", sn_mode="pico",
                                pico_vector="input")
        layer.build((None, 8, 8, 3))
        layer.kernel.assign(kernel)
        layer.sn_x.assign(x)
        expected = layer.spectral_norm(training=True).numpy()
        peer = peer_torch.SNConv(3, 5, kernel_size, stride, 8, "pico", 1.0)
        peer.x.copy_(torch.from_numpy(x.transpose(0, 3, 1, 2)))
        got = peer.sigma(torch.from_numpy(kernel.transpose(3, 2, 0, 1))).item()
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_accelerator_benchmark_creates_the_tpu_strategy_of_the_vm_or_of_tpu(fake_tpu_system):
    """On a TPU VM without ``TPU_NAME`` the benchmark resolves the VM's own TPU; ``--tpu``
    names another; elsewhere it keeps the default strategy."""
    from benchmarks import accelerator

    assert accelerator.strategy_for("TPU") == ("TPUStrategy", "local")
    assert accelerator.strategy_for("TPU", "my-tpu") == ("TPUStrategy", "my-tpu")
    assert [c[:2] for c in fake_tpu_system if c[0] == "resolver"] == [
        ("resolver", "local"), ("resolver", "my-tpu")]
    assert accelerator.strategy_for("GPU") is tf.distribute.get_strategy()


@pytest.mark.slow
def test_accelerator_benchmark_reduced_form_on_cpu(tmp_path):
    import json

    from benchmarks import accelerator

    path = tmp_path / "acc.json"
    accelerator.main(["--reduced", "--output", str(path)])
    record = json.loads(path.read_text())
    assert record["device_kind"] == "CPU" and record["replicas"] == 1
    assert [c["name"] for c in record["cases"]] == [
        "s1_joint/float32/graph", "s1_joint/float32/xla", "s1_joint/mixed_bfloat16/graph",
        "s1_joint/mixed_bfloat16/xla"]  # float16 only on a GPU
    gflops = {c["gflop_per_step"] for c in record["cases"]}
    assert len(gflops) == 1 and gflops.pop() > 0  # the same graph FLOPs under every policy
    for case in record["cases"]:
        rate = record["matmul_tflops"][case["policy"]] * 1e12
        assert case["images_per_s"] == pytest.approx(case["batch"] / case["median_s"])
        assert case["pct_of_measured_matmul"] == pytest.approx(
            100 * case["gflop_per_step"] * 1e9 / case["median_s"] / rate)
    assert accelerator.nominal_peak("NVIDIA A100-SXM4-40GB", "bfloat16") == 312.0
    assert accelerator.nominal_peak("AMD EPYC", "float32") is None


def test_conv_ops_record_counts_the_transposed_convs_flops():
    from benchmarks import conv_ops
    from mmd_keras.layers import conv

    name = "p1 critic16 conv3 grad (4→2, 64→128, 5×5)"
    record = conv_ops.run([name], batch=2, repeats=1, log=lambda _: None)
    (row,) = record["cases"]
    # y [2, 2, 2, 128] → x [2, 4, 4, 64] with a 5×5 kernel: 2·(2·2·2·128)·(5·5·64).
    assert row["gflop"] * 1e9 == pytest.approx(2 * (2 * 2 * 2 * 128) * (5 * 5 * 64))
    assert row["library_op"] == ("native" if conv.default_implementation() == "native" else "split")
    assert row["library_vs_forward"] == pytest.approx(row[f"{row['library_op']}_gflops"] / row["forward_gflops"])
    assert row["met"] == (row["library_vs_forward"] >= conv_ops.TARGET)


def test_profile_categories_and_shares():
    from benchmarks import profile_step

    rows = [{"type": "_MklNativeConv2DBackpropInput", "name": "gradient_tape/critic/conv1/x", "self_us": 300.0},
            {"type": "Conv2DBackpropInput", "name": "generator/deconv0/conv_transpose", "self_us": 100.0},
            {"type": "_MklNativeFusedConv2D", "name": "critic/conv0/convolution", "self_us": 200.0},
            {"type": "ResourceApplyAdam", "name": "adam/update", "self_us": 50.0},
            {"type": "LeakyReluGrad", "name": "gradient_tape/critic/leaky", "self_us": 250.0},
            {"type": "IDLE", "name": "IDLE", "self_us": 100.0}]
    out = profile_step.breakdown(rows)
    assert out["conv input gradient"]["ms"] == pytest.approx(0.3)
    assert out["transposed conv (forward)"]["share"] == pytest.approx(0.1)
    assert out["conv forward"]["share"] == pytest.approx(0.2)
    assert set(out) == {"conv input gradient", "transposed conv (forward)", "conv forward", "optimizer (Adam)",
                        "activation gradients", "idle"}
    assert sum(v["share"] for v in out.values()) == pytest.approx(1.0)


# --- the PyTorch peer of paper 1's MNIST MMD-GP step (benchmarks/peer_torch_mmdgp.py) ------------

def _paper1_library(image_size=32):
    """(config, generator, critic, loss) as ``configs/mnist_mmd_rqstar.cfg`` builds them for the peer."""
    from benchmarks import peer
    from mmd_keras.app import launch
    from mmd_keras.app.runner import parts

    # Keras's Glorot weights rather than the config's N(0, 0.02²): the peer copies the weights
    # either way, and with the larger ones every loss term is large enough to compare.
    config, _ = launch.parse(["peer", *peer.PAPER1_FLAGS, f"--image_size={image_size}",
                              "--initialization=keras"])
    keras.utils.set_random_seed(config.seed)  # the initial weights, as a run sets them
    generator, critic = parts.build_networks(config)
    return config, generator, critic, parts.build_loss(config)


def _nchw(array):
    torch = pytest.importorskip("torch")
    return torch.from_numpy(np.ascontiguousarray(np.asarray(array).transpose(0, 3, 1, 2)))


@pytest.mark.parametrize("image_size", [32, 28])  # 28: the cropped transposed convs, odd-size padding
def test_paper1_peer_networks_equal_the_librarys(image_size):
    torch = pytest.importorskip("torch")
    from benchmarks import peer_torch_mmdgp as mmdgp

    _, generator, critic, _ = _paper1_library(image_size)
    rng = np.random.default_rng(0)
    for variable in generator.weights:  # BN γ, β and moving statistics away from 1, 0 (orders matter)
        if "_bn/" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype(np.float32))
    peer_generator, peer_critic = mmdgp.Generator(image_size), mmdgp.Critic(image_size)
    for keras_net, torch_net in ((generator, peer_generator), (critic, peer_critic)):
        assert sum(int(np.prod(v.shape)) for v in keras_net.trainable_weights) == \
            sum(p.numel() for p in torch_net.parameters())
        mmdgp.load_keras_weights(torch_net, keras_net)
    latents = rng.uniform(-1, 1, (4, mmdgp.LATENT_DIM)).astype(np.float32)
    # The moving statistics first: a training call moves them, and PyTorch keeps the unbiased
    # batch variance where Keras keeps the biased one (the step never reads them).
    for training in (False, True):
        peer_generator.train(training)
        with torch.no_grad():
            got = peer_generator(torch.from_numpy(latents)).numpy().transpose(0, 2, 3, 1)
        np.testing.assert_allclose(got, generator(latents, training=training).numpy(), rtol=1e-4, atol=5e-5)
    images = rng.uniform(-1, 1, (4, image_size, image_size, 1)).astype(np.float32)
    with torch.no_grad():
        got = peer_critic(_nchw(images)).numpy()
    np.testing.assert_allclose(got, critic(images).numpy(), rtol=1e-5, atol=1e-6)


def test_paper1_peer_critic_loss_and_gradients_equal_the_librarys():
    torch = pytest.importorskip("torch")
    from benchmarks import peer_torch_mmdgp as mmdgp
    from mmd_keras import rng as rng_lib

    _, generator, critic, loss = _paper1_library()
    peer_critic = mmdgp.Critic()
    mmdgp.load_keras_weights(peer_critic, critic)
    rng = np.random.default_rng(1)
    real = rng.uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32)
    fake = generator(rng.uniform(-1, 1, (4, 100)).astype(np.float32), training=True).numpy()
    seed = tf.constant([3, 4], tf.int32)
    alpha = rng_lib.uniform01([4], seed).numpy()  # the interpolation weights the loss draws
    with tf.GradientTape() as tape:
        out = loss(critic, tf.constant(real), tf.constant(fake), seed=seed, mode="critic")
    expected_grads = tape.gradient(out.critic_loss, critic.trainable_variables)
    value, parts = mmdgp.critic_loss(peer_critic, _nchw(real), _nchw(fake), torch.from_numpy(alpha))
    assert all(abs(float(out.metrics[k])) > 1e-3 for k in parts)  # each term matters
    np.testing.assert_allclose(value.item(), out.critic_loss.numpy(), rtol=1e-4)
    for name, term in parts.items():
        np.testing.assert_allclose(term.item(), out.metrics[name].numpy(), rtol=1e-4, err_msg=name)
    # The gradient includes the penalty's second-order term (create_graph), as the library's.
    expected = mmdgp.keras_state(peer_critic, {v.path: g.numpy() for v, g in zip(critic.trainable_variables,
                                                                                  expected_grads)})
    names, params = zip(*peer_critic.named_parameters())
    assert sorted(names) == sorted(expected)
    for name, got in zip(names, torch.autograd.grad(value, list(params))):
        np.testing.assert_allclose(got.numpy(), expected[name].numpy(), rtol=1e-3, atol=2e-6, err_msg=name)


def _keras_epsilon(optimizer, epsilon=1e-7):
    """Makes ``torch.optim.Adam`` divide by √v̂ + ε·… exactly as Keras (ε added to √v, not √v̂)."""
    step = optimizer.step

    def keras_step():
        for group in optimizer.param_groups:
            t = 1 + int(optimizer.state[group["params"][0]].get("step", 0))
            group["eps"] = epsilon / (1 - group["betas"][1] ** t) ** 0.5
        return step()

    optimizer.step = keras_step


def test_paper1_peer_step_replays_the_librarys_train_step():
    """One whole step (5 critic steps on fresh fakes, the generator step, clipping, Adam, BN
    statistics) from the same weights and the library's own random draws."""
    torch = pytest.importorskip("torch")
    from benchmarks import peer_torch_mmdgp as mmdgp
    from mmd_keras import rng as rng_lib
    from mmd_keras.app.runner import build, parts

    config, generator, critic, loss = _paper1_library()
    model = build.build_model(config, parts.Parts(generator, critic, loss))

    def uniform(shape, index, purpose):  # what MMDGAN draws at generator step 0
        index = rng_lib.GENERATOR_INDEX if index == "generator" else index
        purpose = rng_lib.PURPOSE_LATENTS if purpose == "latents" else rng_lib.PURPOSE_LOSS
        return torch.from_numpy(rng_lib.uniform01(list(shape), rng_lib.step_seed(config.seed, 0, index, purpose)).numpy())

    peer = mmdgp.MMDGPStep(batch=4, uniform=uniform)
    mmdgp.load_keras_weights(peer.generator, generator)
    mmdgp.load_keras_weights(peer.critic, critic)
    for optimizer in (peer.g_opt, peer.c_opt):  # Keras's ε: outside √(bias correction)
        _keras_epsilon(optimizer)
    real = np.random.default_rng(2).uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32)
    logs = model.train_step(tf.constant(real))
    peer.step(_nchw(real))
    for torch_net, keras_net in ((peer.generator, generator), (peer.critic, critic)):
        expected = mmdgp.keras_state(torch_net, {v.path: v.numpy() for v in keras_net.weights})
        for name, value in torch_net.state_dict().items():
            if name.endswith(("running_var", "num_batches_tracked")):  # PyTorch's unbiased running variance
                continue
            # Adam's first steps move each weight by ≈ lr·sign(g): where a gradient is at
            # round-off level (a bias right before batch norm has gradient 0; a few entries of
            # other tensors, depending on the threads' summation order) the sign is either, so
            # such entries may differ by up to 2·lr (lr = 1e-4). Everything else agrees to 2e-5:
            # at most 0.1 % of a tensor's entries may be off (the break-checks — no clipping,
            # 4 critic steps — put 1.7 % and 5.3 % of them off).
            actual, desired = value.numpy(), expected[name].numpy()
            off = np.abs(actual - desired) > 2e-5 + 1e-7 * np.abs(desired)
            bias_before_bn = name.startswith("ups.deconv") and name.endswith(".bias")
            assert bias_before_bn or off.mean() <= 1e-3, (name, off.mean())
            np.testing.assert_allclose(actual, desired, atol=2.5e-4, err_msg=name)
    np.testing.assert_allclose([peer.losses[-2].item(), peer.losses[-1].item()],
                               [float(logs["critic_loss"]), float(logs["generator_loss"])], rtol=5e-4)


@pytest.mark.slow
def test_paper1_peer_counts_the_librarys_flops():
    """Per step, PyTorch's FlopCounterMode and our graph count give the same convolution FLOPs
    (TF's own kernels: forward, input and filter gradients, to second order); the matmuls
    differ only by the rq* kernel's ⟨x, y⟩, which the library multiplies twice."""
    pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks import peer
    from benchmarks import peer_torch_mmdgp as mmdgp

    step, _ = peer.paper1_step("native")
    library = flops.function_flops(step, tf.TensorSpec([4, 32, 32, 1], tf.float32))["by_op"]
    peer_step = mmdgp.MMDGPStep(batch=4)
    with FlopCounterMode(display=False) as counter:
        peer_step.step(mmdgp.real_batch(4))
    torch_counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    conv = sum(n for op, n in library.items() if op.startswith("Conv2D"))
    assert conv == torch_counts["aten.convolution"] + torch_counts["aten.convolution_backward"]
    torch_matmul = torch_counts["aten.mm"] + torch_counts["aten.addmm"]
    assert torch_matmul < library["MatMul"] < 1.01 * torch_matmul


@pytest.mark.slow
def test_fresh_batches_benchmark_times_both_layouts_with_the_machine(tmp_path):
    """`benchmarks.fresh_batches` (digits stand-in, 1 step per call): both layouts timed in one
    process, the fresh stream's elements hold 6 batches, the CPU flags and kernel set recorded."""
    import json

    from benchmarks import fresh_batches

    out = tmp_path / "fresh.json"
    assert fresh_batches.main(["--quick", "--steps=1", "--repeats=1", "--width=4", f"--output={out}"]) == 0
    record = json.loads(out.read_text())
    assert set(record["seconds_per_step"]) == {"one batch per step", "fresh batches"}
    assert all(v > 0 for v in record["seconds_per_step"].values())
    assert record["ratio_fresh_over_one_batch"] > 0
    assert record["machine"]["kernel_set"] in ("oneDNN", "Eigen") and "cpu_simd_flags" in record["machine"]
    stream = fresh_batches._stream(None, 6)
    assert next(iter(stream)).shape == (64, 6, 28, 28, 1)


@pytest.mark.slow
def test_main_job_benchmark_splits_the_launchers_wall_time(tmp_path):
    """`benchmarks.main_job` on the smoke config: the launcher runs as a subprocess, its own
    training time is parsed, and the phases add up to the wall time it measured."""
    import json

    from benchmarks import main_job

    out = tmp_path / "main_job.json"
    assert main_job.main(["--config=configs/smoke.cfg", "--steps=6", f"--output={out}"]) == 0
    record = json.loads(out.read_text())
    run, = record["runs"]
    assert run["steps"] == 6 and 0 < run["training_s"] < run["wall_s"]
    assert run["startup_s"] + run["training_s"] <= run["wall_s"] + 0.5
    assert run["ratio_wall_to_training"] == pytest.approx(run["wall_s"] / run["training_s"])
    assert record["targets"]["wall_within_1_3x_training"]["target"] == 1.3
    assert record["machine"]["kernel_set"] in ("oneDNN", "Eigen")


def test_xla_compile_counts_hlo_instructions_and_the_launchers_two_replica_answer():
    """`benchmarks.xla_compile`: instruction lines of an HLO text counted by hand; the smoke
    config lowers under XLA with its convolutions; on 2 mirrored replicas the launcher refuses
    `--jit_compile` (XLA cannot reach the other devices' variable copies)."""
    from benchmarks import xla_compile

    hlo = ("HloModule m\n\nENTRY %main (p: f32[2]) -> f32[2] {\n  %p = f32[2] parameter(0)\n"
           "  %c = f32[2] convolution(%p, %p)\n  ROOT %add.1 = f32[2] add(%c, %p)\n}\n")
    assert xla_compile.hlo_instructions(hlo) == 3
    result = xla_compile.measure("smoke", ["--mixed_precision=mixed_bfloat16"], batch_size=2)
    assert result["hlo_instructions"] > 1000 and result["hlo_convolutions"] >= 4
    answer = xla_compile.two_replica_answer("smoke")
    assert answer.startswith("refused:") and "--jit_compile" in answer and "mirrored" in answer


def test_while_loop_body_counts_its_static_trip_count():
    """A `tf.while_loop` with a static `maximum_iterations` (the model's critic-step loop)
    counts its body's matmul that many times; without a static count the counter refuses."""
    import tensorflow as tf

    from benchmarks import flops

    def looped(x, trips):
        return tf.while_loop(lambda i, _: i < trips, lambda i, y: (i + 1, tf.matmul(y, x)),
                             (tf.constant(0), x), maximum_iterations=trips)[1]

    spec = tf.TensorSpec([4, 4])
    counted = flops.function_flops(tf.function(lambda x: looped(x, 3)), spec)
    assert counted["total"] == 3 * flops.matmul_flops(4, 4, 4) == counted["by_op"]["MatMul"]
    unbounded = tf.function(lambda x, n: tf.while_loop(lambda i, _: i < n, lambda i, y: (i + 1, y @ y),
                                                       (tf.constant(0), x))[1])
    with pytest.raises(ValueError, match="While"):
        flops.function_flops(unbounded, spec, tf.TensorSpec([], tf.int32))
