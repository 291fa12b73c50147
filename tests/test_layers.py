"""Spectral normalization layers: exact operator norms, gains, gradients, state, serialization."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import layers


def operator_matrix(linear, input_shape):
    """Explicit matrix [n_in, n_out] of a linear map by applying it to every basis vector."""
    n = int(np.prod(input_shape))
    basis = np.eye(n, dtype=np.float32).reshape((n,) + tuple(input_shape))
    return np.asarray(linear(tf.constant(basis))).reshape(n, -1).astype(np.float64)


def top_singular_value(matrix):
    return np.linalg.svd(np.asarray(matrix, np.float64), compute_uv=False)[0]


def built_layer(layer, input_shape, seed=0):
    keras.utils.set_random_seed(seed)
    layer.build((None,) + tuple(input_shape))
    return layer


# The layer's linear part (no bias), with the *unnormalized* kernel: its exact operator norm.
CONV_CASES = [
    ("conv3x3_s1_same", lambda m, n: layers.SNConv2D(3, 3, padding="same", sn_mode=m,
                                                     power_iterations=n), (6, 6, 2)),
    ("conv4x4_s2_same", lambda m, n: layers.SNConv2D(3, 4, strides=2, padding="same", sn_mode=m,
                                                     power_iterations=n), (7, 7, 2)),
    ("conv3x3_d2_valid", lambda m, n: layers.SNConv2D(2, 3, dilation_rate=2, sn_mode=m,
                                                      power_iterations=n), (7, 7, 2)),
    ("deconv4x4_s2_same", lambda m, n: layers.SNConv2DTranspose(
        2, 4, strides=2, padding="same", sn_mode=m, power_iterations=n), (3, 3, 3)),
    ("dense", lambda m, n: layers.SNDense(12, sn_mode=m, power_iterations=n), (40,)),
]


def unnormalized_linear(layer, shape):
    """x -> the layer's forward with the raw kernel and no bias (the operator PICO estimates)."""
    twin = layer.__class__.from_config({**layer.get_config(), "sn_mode": "none",
                                        "use_bias": False, "learned_gain": False})
    twin.build((None,) + tuple(shape))
    twin.kernel.assign(layer.kernel)
    return lambda x: twin(x)


def power_iteration_sigma(matrix, start, iterations, side):
    """The float64 power-iteration estimate of σ after ``iterations`` rounds from ``start``.

    ``matrix`` ``[n_in, n_out]`` maps inputs ``x`` to ``x @ matrix``. On the input side the
    iterate after ``k`` rounds is ∝ Σ cᵢ sᵢ^(2k) vᵢ (vᵢ the input singular vectors, cᵢ the
    start's coefficients), and σ̂ = ‖A x‖ = √(Σ cᵢ² sᵢ^(4k+2) / Σ cᵢ² sᵢ^(4k)); the output side
    is the same with the roles of the two singular bases exchanged.
    """
    u, s, vt = np.linalg.svd(matrix, full_matrices=True)
    basis = u if side == "input" else vt.T
    values = np.zeros(basis.shape[0])
    values[: len(s)] = s
    c2 = (basis.T @ np.ravel(start).astype(np.float64)) ** 2
    scaled = values / values[0]  # no overflow at 4k + 2 = 1,202
    return values[0] * np.sqrt(np.sum(c2 * scaled ** (4 * iterations + 2)) / np.sum(c2 * scaled ** (4 * iterations)))


@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_pico_follows_the_exact_power_iteration_and_converges(case):
    """PICO's σ after 1, 10 and 300 rounds equals the float64 power iteration from the same
    start vector, computed from the SVD of the explicit operator (so the convergence rate,
    (σ₂/σ₁)² a round, is the test's own, not a tolerance's). conv3x3_s1_same has σ₂/σ₁ =
    0.99936: a random start converges slowly there, on every CPU differently; the trajectory
    comparison does not depend on that.

    Tolerance from float32 arithmetic: each round renormalizes, so round-off does not grow
    with the rounds along the top direction; the estimate ‖A x‖ carries the round-off of a
    reduction of length n ≤ 108 (the operator's output size): 32·ε₃₂·√n relative (≤ 4e-5),
    well below the distance between the estimates at 1 and 300 rounds.
    """
    _, make, shape = case
    layer = built_layer(make("pico", 1), shape)
    matrix = operator_matrix(unnormalized_linear(layer, shape), shape)
    exact = top_singular_value(matrix)
    start = layer.sn_vector.numpy()
    tolerance = 32 * np.finfo(np.float32).eps * np.sqrt(max(matrix.shape))
    update = tf.function(lambda: layer.spectral_norm(training=True))
    done = 0
    for rounds in (1, 10, 300):
        for _ in range(rounds - done):
            sigma = float(update())
        done = rounds
        expected = power_iteration_sigma(matrix, start, rounds, layer.pico_side)
        assert abs(sigma - expected) <= tolerance * exact, (rounds, sigma, expected)
    first = power_iteration_sigma(matrix, start, 1, layer.pico_side)
    assert exact - first > 100 * tolerance * exact  # the start is far from converged
    assert abs(sigma - exact) < 1e-3 * exact  # and 300 rounds converge, on this operator


def test_pim_converges_to_svd_of_reshaped_kernel():
    layer = built_layer(layers.SNConv2D(4, 3, padding="same", sn_mode="pim"), (5, 5, 3))
    exact = top_singular_value(layer.kernel.numpy().reshape(-1, 4))
    errors = []
    update = tf.function(lambda: layer.spectral_norm(training=True))
    for rounds in (1, 9, 290):
        for _ in range(rounds):
            sigma = float(update())
        errors.append(abs(sigma - exact) / exact)
    assert errors[0] >= errors[1] >= errors[2] and errors[2] < 1e-3 and errors[0] > errors[2]
    dense = built_layer(layers.SNDense(4, sn_mode="pim", power_iterations=300), (6,))
    sigma = float(dense.spectral_norm(training=True))
    np.testing.assert_allclose(sigma, top_singular_value(dense.kernel.numpy()), rtol=1e-3)


@pytest.mark.parametrize("kernel_size,stride", [(3, 1), (4, 2)])
def test_pim_pico_bound_of_paper3_appendix_c(rng, kernel_size, stride):
    """σ_PIM ≤ σ_conv ≤ √(kh·kw)/stride · σ_PIM on random kernels (exact SVDs)."""
    shape = (8, 8, 2)
    for _ in range(4):
        kernel = rng.normal(size=(kernel_size, kernel_size, 2, 3)).astype(np.float32)
        conv = lambda x, k=kernel: tf.nn.conv2d(x, k, stride, "SAME")  # noqa: E731
        sigma_conv = top_singular_value(operator_matrix(conv, shape))
        sigma_pim = top_singular_value(kernel.reshape(-1, 3))
        assert sigma_pim <= sigma_conv * (1 + 1e-5)
        assert sigma_conv <= kernel_size / stride * sigma_pim * (1 + 1e-5)


@pytest.mark.parametrize("mode,multiplier,gain", [("pico", 1.7, 1.3), ("pim", 1.0, 0.8)])
def test_effective_operator_norm_equals_gain_after_a_normalized_step(mode, multiplier, gain):
    shape = (6, 6, 2)
    layer = built_layer(layers.SNConv2D(3, 4, strides=2, padding="same", use_bias=False,
                                        sn_mode=mode, learned_gain=True, power_iterations=300,
                                        pico_multiplier=multiplier), shape)
    layer.gain.assign(gain)
    layer(tf.zeros((1,) + shape), training=True)  # one normalized step (converges the vector)
    kernel = layer.normalized_kernel().numpy()
    if mode == "pico":  # the layer's own forward pass is the operator: norm C·γ
        norm = top_singular_value(operator_matrix(lambda x: layer(x), shape))
        np.testing.assert_allclose(norm, multiplier * gain, rtol=1e-3)
    else:  # PIM normalizes the reshaped kernel to γ
        np.testing.assert_allclose(top_singular_value(kernel.reshape(-1, 3)), gain, rtol=1e-3)


def test_projection_constraint_bounds_sigma_after_optimizer_apply(rng):
    constraint = layers.SpectralNormConstraint(target=0.5)
    conv = keras.layers.Conv2D(3, 3, kernel_constraint=constraint)
    dense = keras.layers.Dense(4, kernel_constraint=constraint)
    conv.build((None, 5, 5, 2))
    dense.build((None, 6))
    conv.kernel.assign(rng.normal(size=(3, 3, 2, 3)).astype(np.float32))
    small = 0.01 * rng.normal(size=(6, 4)).astype(np.float32)
    dense.kernel.assign(small)
    optimizer = keras.optimizers.SGD(0.1)
    variables = [conv.kernel, dense.kernel]
    optimizer.apply([tf.ones_like(v) for v in variables], variables)
    sigma_conv = top_singular_value(conv.kernel.numpy().reshape(-1, 3))
    assert 0.5 * (1 - 3e-3) <= sigma_conv <= 0.5
    # a kernel already inside the ball is only moved by the SGD step itself
    np.testing.assert_allclose(dense.kernel.numpy(), small - 0.1, rtol=1e-6)


def test_gradient_includes_the_sigma_term():
    """Layer gradient w.r.t. W = finite differences of x·(W/σ_exact(W))·r (float64 NumPy)."""
    rs = np.random.default_rng(7)
    shape = (4, 4, 1)
    layer = built_layer(layers.SNConv2D(2, 3, padding="same", use_bias=False, sn_mode="pico",
                                        power_iterations=400), shape)
    layer.spectral_norm(training=True)  # converge the stored vector
    x = rs.normal(size=(2,) + shape).astype(np.float32)
    r = rs.normal(size=(2, 4, 4, 2)).astype(np.float32)
    with tf.GradientTape() as tape:
        objective = tf.reduce_sum(layer(x) * r)
    grad = tape.gradient(objective, layer.kernel).numpy()

    def exact_objective(kernel):
        conv = lambda v: tf.nn.conv2d(v, kernel.astype(np.float32), 1, "SAME")  # noqa: E731
        sigma = top_singular_value(operator_matrix(conv, shape))
        return float(np.sum(np.asarray(conv(x), np.float64) * r)) / sigma

    kernel = layer.kernel.numpy().astype(np.float64)
    numeric = np.zeros_like(kernel)
    eps = 1e-3
    for index in np.ndindex(kernel.shape):
        step = np.zeros_like(kernel)
        step[index] = eps
        numeric[index] = (exact_objective(kernel + step) - exact_objective(kernel - step)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=2e-3, atol=2e-3 * np.abs(numeric).max())
    # without the σ term the gradient would be r-weighted x over σ only: clearly different
    sigma = float(layer.spectral_norm())
    with tf.GradientTape() as tape:
        k = tf.identity(layer.kernel)
        tape.watch(k)
        plain = tf.reduce_sum(tf.nn.conv2d(x, k / sigma, 1, "SAME") * r)
    assert np.abs(tape.gradient(plain, k).numpy() - numeric).max() > 0.05 * np.abs(numeric).max()


def test_state_updates_only_in_training_and_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    layer = built_layer(layers.SNConv2D(3, 3, padding="same", sn_mode="pico"), (5, 5, 2))
    dense = built_layer(layers.SNDense(3, sn_mode="pim", learned_gain=True), (4,))
    assert layer.sn_x.dtype == "float32" and dense.sn_u.dtype == "float32"
    assert dense.gain.dtype == "float32"
    x = tf.ones((1, 5, 5, 2))
    before = layer.sn_x.numpy().copy()
    out = layer(x, training=False)
    assert out.dtype == tf.float16
    np.testing.assert_array_equal(layer.sn_x.numpy(), before)
    layer(x, training=True)
    x1 = layer.sn_x.numpy().copy()
    assert not np.allclose(x1, before)
    # exactly one power iteration per training call: compare with the pure function
    kernel = tf.cast(tf.cast(layer.kernel, tf.float16), tf.float32)  # the autocast kernel
    op, adj = layers.conv2d_operator(kernel, (1, 5, 5, 2), (1, 1), "same", (1, 1))
    expected = layers.operator_power_iteration(op, adj, x1, 1)
    layer(x, training=True)
    np.testing.assert_allclose(layer.sn_x.numpy(), expected.numpy(), rtol=1e-4, atol=1e-6)
    u0 = dense.sn_u.numpy().copy()
    dense(tf.ones((2, 4)), training=True)
    u_expected, _ = layers.matrix_power_iteration(
        tf.cast(tf.cast(dense.kernel, tf.float16), tf.float32), u0, 1)
    np.testing.assert_allclose(dense.sn_u.numpy(), u_expected.numpy(), rtol=1e-4, atol=1e-6)


def test_tf_function_and_xla_match_eager():
    shape = (6, 6, 2)
    x = tf.random.stateless_normal((2,) + shape, seed=[1, 2])
    results = []
    for mode in ("eager", "function", "xla"):
        keras.utils.set_random_seed(3)  # before construction: initializers draw their seeds then
        layer = built_layer(layers.SNConv2D(3, 4, strides=2, padding="same", sn_mode="pico",
                                            power_iterations=2), shape, seed=3)
        call = lambda v: layer(v, training=True)  # noqa: E731
        if mode != "eager":
            call = tf.function(call, jit_compile=mode == "xla")
        out = call(x)
        out = call(x)
        results.append((out.numpy(), layer.sn_vector.numpy()))
    for out, state in results[1:]:
        np.testing.assert_allclose(out, results[0][0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(state, results[0][1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cls,args,shape", [
    (layers.SNConv2D, (3, 3), (5, 5, 2)),
    (layers.SNConv2DTranspose, (3, 4), (3, 3, 2)),
    (layers.SNDense, (3,), (4,)),
])
@pytest.mark.parametrize("mode", ["none", "pim", "pico"])
def test_get_config_round_trip(cls, args, shape, mode):
    kwargs = dict(sn_mode=mode, learned_gain=mode != "none", power_iterations=2,
                  pico_multiplier=1.5, pico_vector="input")
    if cls is not layers.SNDense:
        kwargs.update(strides=2, padding="same")
    layer = built_layer(cls(*args, **kwargs), shape)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert clone.get_config() == layer.get_config()
    assert clone.sn_mode == mode and clone.power_iterations == 2 and clone.pico_multiplier == 1.5
    assert clone.pico_vector == "input"
    if not clone.built:
        clone.build((None,) + shape)
    clone.set_weights(layer.get_weights())
    x = tf.random.stateless_normal((2,) + shape, seed=[0, 5])
    np.testing.assert_allclose(clone(x).numpy(), layer(x).numpy(), rtol=1e-6)


def test_constraint_config_round_trip():
    c = layers.SpectralNormConstraint(target=2.0, iterations=5, margin=0.0)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(c))
    assert isinstance(clone, layers.SpectralNormConstraint)
    assert clone.get_config() == {"target": 2.0, "iterations": 5, "margin": 0.0}


@pytest.mark.parametrize("make,arg", [
    (lambda: layers.SNConv2D(3, 3, sn_mode="fft"), "sn_mode"),
    (lambda: layers.SNDense(3, power_iterations=0), "power_iterations"),
    (lambda: layers.SNDense(3, sn_mode="pico", pico_multiplier=0.0), "pico_multiplier"),
    (lambda: layers.SNDense(3, sn_mode="none", learned_gain=True), "sn_mode"),
    (lambda: layers.SNConv2D(3, 3, sn_mode="pico").build((None, None, None, 2)), "input_shape"),
    (lambda: layers.SpectralNormConstraint(target=0.0), "target"),
    (lambda: layers.SpectralNormConstraint(iterations=0), "iterations"),
    (lambda: layers.SNConv2D(3, 3, sn_mode="pico", pico_vector="both"), "pico_vector"),
    (lambda: layers.GlobalSumPooling2D(keepdims=1), "keepdims"),
])
def test_bad_arguments_raise_value_error_naming_them(make, arg):
    with pytest.raises(ValueError, match=f"`{arg}"):
        make()


MIRRORED_SCRIPT = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from mmd_keras import layers

    def make():
        keras.utils.set_random_seed(0)
        conv = layers.SNConv2D(2, 3, strides=2, padding="same", sn_mode="pico")
        dense = layers.SNDense(2, sn_mode="pim", learned_gain=True)
        conv.build((None, 4, 4, 1)); dense.build((None, 8))
        return conv, dense, keras.optimizers.SGD(0.1)

    def step(conv, dense, opt, x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(dense(tf.reshape(conv(x, training=True), [-1, 8]),
                                       training=True) ** 2)
        variables = conv.trainable_variables + dense.trainable_variables
        opt.apply(tape.gradient(loss, variables), variables)

    x = np.random.default_rng(0).normal(size=(4, 4, 4, 1)).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        conv, dense, opt = make()
        opt.build(conv.trainable_variables + dense.trainable_variables)
    data = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(x).batch(4))
    for batch in data:
        strategy.run(tf.function(lambda b: step(conv, dense, opt, b)), args=(batch,))
        strategy.run(tf.function(lambda b: step(conv, dense, opt, b)), args=(batch,))
    for var in (conv.sn_vector, dense.sn_u, conv.kernel):
        a, b = [v.numpy() for v in strategy.experimental_local_results(var.value)]
        assert np.array_equal(a, b), var.name
    c1, d1, o1 = make()  # one device, whole batch: the same two steps (gradients summed)
    for _ in range(2):
        step(c1, d1, o1, tf.constant(x))
    for mirrored, single in ((conv.sn_vector, c1.sn_vector), (dense.sn_u, d1.sn_u), (conv.kernel, c1.kernel),
                             (dense.gain, d1.gain)):
        np.testing.assert_allclose(mirrored.numpy(), single.numpy(), rtol=1e-5, atol=1e-6)
    print("OK")
""")


@pytest.mark.slow
def test_mirrored_strategy_replicas_end_with_same_state():
    """2 logical CPU devices must be configured before any TF op: run in a fresh process."""
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


def conv2d_matrix(kernel, height, width, stride, padding):
    """NumPy matrix ``A`` ``[H·W·c_in, H'·W'·c_out]`` of a 2-D convolution (TF's padding rule):
    ``y.ravel() = x.ravel() @ A`` for channels-last ``x`` ``[H, W, c_in]``."""
    kh, kw, c_in, c_out = kernel.shape
    if padding == "same":
        out_h, out_w = -(-height // stride), -(-width // stride)
        top = max((out_h - 1) * stride + kh - height, 0) // 2
        left = max((out_w - 1) * stride + kw - width, 0) // 2
    else:
        out_h, out_w, top, left = (height - kh) // stride + 1, (width - kw) // stride + 1, 0, 0
    matrix = np.zeros((height * width * c_in, out_h * out_w * c_out))
    for i in range(out_h):
        for j in range(out_w):
            col = (i * out_w + j) * c_out
            for di in range(kh):
                for dj in range(kw):
                    r, c = i * stride + di - top, j * stride + dj - left
                    if 0 <= r < height and 0 <= c < width:
                        row = (r * width + c) * c_in
                        matrix[row:row + c_in, col:col + c_out] += kernel[di, dj]
    return matrix


# (layer maker, input shape, output shape, exact operator matrix from the kernel)
SIDE_CASES = {
    # stride-2 conv: 6·6·2 = 72 inputs, 3·3·3 = 27 outputs -> "smaller" keeps the output side
    "conv4x4_s2": (lambda side: layers.SNConv2D(3, 4, strides=2, padding="same", sn_mode="pico",
                                                pico_vector=side),
                   (6, 6, 2), (3, 3, 3), lambda k: conv2d_matrix(k, 6, 6, 2, "same")),
    # stride-1 conv widening 1 -> 3 channels: 16 inputs < 48 outputs -> the input side
    "conv3x3_s1": (lambda side: layers.SNConv2D(3, 3, padding="same", sn_mode="pico",
                                                pico_vector=side),
                   (4, 4, 1), (4, 4, 3), lambda k: conv2d_matrix(k, 4, 4, 1, "same")),
    # deconv 2·2·4 = 16 -> 4·4·1 = 16 (a tie: the input side); its matrix is a conv's transpose
    "deconv4x4_s2": (lambda side: layers.SNConv2DTranspose(1, 4, strides=2, padding="same",
                                                           sn_mode="pico", pico_vector=side),
                     (2, 2, 4), (4, 4, 1), lambda k: conv2d_matrix(k, 4, 4, 2, "same").T),
    "dense": (lambda side: layers.SNDense(3, sn_mode="pico", pico_vector=side), (10,), (3,),
              lambda k: k),
}


@pytest.mark.parametrize("side", ["input", "output", "smaller"])
@pytest.mark.parametrize("name", list(SIDE_CASES))
def test_pico_vector_on_either_side_estimates_the_exact_operator_norm(name, side):
    make, in_shape, out_shape, exact_matrix = SIDE_CASES[name]
    layer = built_layer(make(side), in_shape, seed=5)
    kept = side
    if side == "smaller":
        kept = "input" if np.prod(in_shape) <= np.prod(out_shape) else "output"
    assert layer.pico_side == kept
    assert layer.sn_vector.shape == (1,) + (in_shape if kept == "input" else out_shape)
    assert layer.sn_vector.name == ("sn_x" if kept == "input" else "sn_y")
    exact = top_singular_value(exact_matrix(layer.kernel.numpy().astype(np.float64)))
    update = tf.function(lambda: layer.spectral_norm(training=True))
    for _ in range(300):
        sigma = float(update())
    assert abs(sigma - exact) / exact < 1e-3
    # the forward pass uses it: ‖W/σ‖ has operator norm C = 1 (pico_multiplier default)
    normalized = layer.normalized_kernel().numpy().astype(np.float64)
    assert abs(top_singular_value(exact_matrix(normalized)) - 1.0) < 1e-3


def test_pico_state_of_the_paper3_cifar_critic_is_on_the_smaller_sides():
    """Table S1 critic at 32 px: per layer the smaller of input / output (hand-computed)."""
    from mmd_keras import networks

    critic = networks.build_critic("dcgan_s1", image_size=32)  # pico by default
    sizes = [int(np.prod(l.sn_vector.shape)) for l in critic.layers if hasattr(l, "sn_mode")]
    # conv0 3x3 s1 3->64 at 32: in 3072 < out 65536; conv1 4x4 s2 64->128: in 65536 > out
    # 16·16·128 = 32768; conv2 s1 128->128: tie 32768 (input); conv3 s2: 16·16·128 -> 8·8·256
    # = 16384; conv4 tie 16384; conv5 s2: -> 4·4·512 = 8192; conv6 tie 8192; dense 8192 -> 16.
    assert sizes == [3072, 32768, 32768, 16384, 16384, 8192, 8192, 16]
    assert sum(sizes) == 117_776  # input side everywhere: 183,296

