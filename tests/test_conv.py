"""mmd_keras.layers.conv: the phase decomposition against TF's own kernels and finite differences."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras.layers import conv

# (input size, kernel, stride, padding, output size) of transposed convolutions: the library's
# 5×5 and 4×4 stride-2 SAME layers (even and odd inputs, as dcgan_p1 at 48 px: 3 → 6), VALID
# with an output that is not a multiple of the stride, and stride 1 (a 3×3 conv's input gradient).
SHAPES = [(2, 5, 2, "SAME", 4), (3, 5, 2, "SAME", 6), (4, 4, 2, "SAME", 8), (7, 4, 2, "SAME", 14),
          (5, 4, 2, "SAME", 9), (5, 5, 2, "SAME", 9), (4, 5, 2, "VALID", 11), (4, 3, 1, "SAME", 4),
          (6, 3, 1, "VALID", 8)]


def _pair(rng, i, k, o, dtype=np.float32, batch=2, c_in=3, c_out=4):
    x = tf.constant(rng.standard_normal((batch, i, i, c_in)).astype(dtype))
    w = tf.constant(rng.standard_normal((k, k, c_out, c_in)).astype(dtype))
    return x, w, [batch, o, o, c_out]


@pytest.mark.parametrize("fused", [True, False, None])
@pytest.mark.parametrize("i,k,s,padding,o", SHAPES)
def test_transposed_conv_equals_tf_kernel(rng, i, k, s, padding, o, fused):
    x, w, out_shape = _pair(rng, i, k, o)
    expected = tf.nn.conv2d_transpose(x, w, out_shape, s, padding)
    got = conv.conv2d_transpose(x, w, out_shape, s, padding, fused=fused)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("i,k,s,padding,o", [(2, 5, 2, "SAME", 4), (3, 4, 2, "SAME", 6),
                                             (2, 5, 2, "VALID", 7), (3, 3, 1, "SAME", 3)])
def test_transposed_conv_gradients_match_finite_differences(i, k, s, padding, o):
    rng = np.random.default_rng(7)
    x, w, out_shape = _pair(rng, i, k, o, np.float64, batch=1, c_in=2, c_out=2)
    theoretical, numerical = tf.test.compute_gradient(
        tf.function(lambda a, b: conv.conv2d_transpose(a, b, out_shape, s, padding)), [x, w])
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-6)


def _penalty_grads(forward, x, w):
    """Gradients w.r.t. (x, w) of a gradient penalty ``Σ (∂ Σ c·tanh f(x, w) / ∂x)²``: second order."""
    c = tf.cos(tf.range(tf.size(forward(x, w)), dtype=x.dtype))
    with tf.GradientTape() as outer:
        outer.watch([x, w])
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = tf.reduce_sum(tf.tanh(tf.reshape(forward(x, w), [-1])) * c)
        penalty = tf.reduce_sum(tf.square(inner.gradient(y, x)))
    return [penalty] + outer.gradient(penalty, [x, w])


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("i,k,s", [(8, 5, 2), (7, 4, 2), (8, 4, 2), (5, 3, 1)])
def test_conv2d_first_and_second_order_gradients_equal_tf(rng, i, k, s, jit):
    x = tf.constant(rng.standard_normal((2, i, i, 3)), tf.float32)
    w = tf.constant(rng.standard_normal((k, k, 3, 4)), tf.float32)
    fast = tf.function(lambda a, b: _penalty_grads(lambda p, q: conv.conv2d(p, q, s, "SAME"), a, b),
                       jit_compile=jit)
    native = tf.function(lambda a, b: _penalty_grads(
        lambda p, q: tf.nn.conv2d(p, q, s, "SAME"), a, b))
    for got, expected in zip(fast(x, w), native(x, w)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=2e-5,
                                   atol=2e-5 * float(tf.reduce_max(tf.abs(expected))))


@pytest.mark.parametrize("jit", [False, True])
def test_transposed_conv_second_order_gradients_equal_tf(rng, jit):
    x, w, out_shape = _pair(rng, 3, 5, 6)
    fast = tf.function(lambda a, b: _penalty_grads(
        lambda p, q: conv.conv2d_transpose(p, q, out_shape, 2, "SAME"), a, b), jit_compile=jit)
    native = tf.function(lambda a, b: _penalty_grads(
        lambda p, q: tf.nn.conv2d_transpose(p, q, out_shape, 2, "SAME"), a, b))
    for got, expected in zip(fast(x, w), native(x, w)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=2e-5,
                                   atol=2e-5 * float(tf.reduce_max(tf.abs(expected))))


def test_conv2d_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    x = tf.constant(rng.standard_normal((1, 5, 5, 2)))
    w = tf.constant(rng.standard_normal((4, 4, 2, 2)))
    theoretical, numerical = tf.test.compute_gradient(
        tf.function(lambda a, b: conv.conv2d(a, b, 2, "SAME")), [x, w])
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-6)


def _twin_models(implementation, transpose_kwargs, seed=0):
    """A generator-like model (dense → deconvs → conv) built from ``conv`` layers."""
    keras.utils.set_random_seed(seed)
    z = keras.Input((6,))
    h = keras.layers.Reshape((3, 3, 2))(keras.layers.Dense(18)(z))
    h = conv.Conv2DTranspose(4, 5, strides=2, padding="same", implementation=implementation,
                             activation="relu", **transpose_kwargs)(h)
    h = conv.Conv2DTranspose(3, 4, strides=2, padding="same", implementation=implementation)(h)
    out = conv.Conv2D(2, 4, strides=2, padding="same", implementation=implementation,
                      dtype=keras.mixed_precision.global_policy())(h)
    return keras.Model(z, keras.layers.Activation("linear", dtype="float32")(out))


@pytest.mark.parametrize("policy,tol", [("float32", 1e-5), ("mixed_bfloat16", 3e-2)])
def test_layers_match_keras_layers_under_policies(rng, policy, tol):
    keras.mixed_precision.set_global_policy(policy)
    fast, native = _twin_models("phases", {}), _twin_models("native", {})
    native.set_weights(fast.get_weights())
    assert [layer.resolved_implementation for layer in fast.layers[3:6]] == ["phases"] * 3
    z = tf.constant(rng.standard_normal((4, 6)), tf.float32)

    def grads(model):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(z)))
        return [model(z)] + tape.gradient(loss, model.trainable_variables)

    for got, expected in zip(grads(fast), grads(native)):
        scale = float(tf.reduce_max(tf.abs(tf.cast(expected, tf.float32))))
        np.testing.assert_allclose(tf.cast(got, tf.float32).numpy(), tf.cast(expected, tf.float32).numpy(),
                                   rtol=tol, atol=tol * scale)


def test_layers_have_keras_weights_config_and_file_names(tmp_path):
    fast = _twin_models("phases", {})
    plain = keras.Sequential([keras.Input((6,)), keras.layers.Dense(18), keras.layers.Reshape((3, 3, 2)),
                              keras.layers.Conv2DTranspose(4, 5, strides=2, padding="same", activation="relu"),
                              keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same"),
                              keras.layers.Conv2D(2, 4, strides=2, padding="same"),
                              keras.layers.Activation("linear")])
    assert [(v.path.split("/")[-1], v.shape) for v in fast.weights] == \
        [(v.path.split("/")[-1], v.shape) for v in plain.weights]
    layer = fast.layers[3]
    keras_config = keras.layers.Conv2DTranspose.from_config(
        {k: v for k, v in layer.get_config().items() if k != "implementation"}).get_config()
    assert {k: v for k, v in layer.get_config().items() if k != "implementation"} == keras_config
    assert layer.get_config()["implementation"] == "phases"
    # A .weights.h5 of plain Keras layers loads into the fast ones (same class names in the file).
    plain.set_weights([np.full(w.shape, i + 0.5, np.float32) for i, w in enumerate(plain.weights)])
    plain_path = str(tmp_path / "plain.weights.h5")
    plain.save_weights(plain_path)
    seq = keras.Sequential([keras.Input((6,)), keras.layers.Dense(18), keras.layers.Reshape((3, 3, 2)),
                            conv.Conv2DTranspose(4, 5, strides=2, padding="same", activation="relu"),
                            conv.Conv2DTranspose(3, 4, strides=2, padding="same"),
                            conv.Conv2D(2, 4, strides=2, padding="same"), keras.layers.Activation("linear")])
    seq.load_weights(plain_path)
    for a, b in zip(seq.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    path = str(tmp_path / "m.keras")
    fast.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.layers[3]) is conv.Conv2DTranspose
    assert loaded.layers[3].implementation == "phases"
    z = np.ones((2, 6), np.float32)
    np.testing.assert_allclose(loaded(z).numpy(), fast(z).numpy(), rtol=1e-6)


def test_auto_resolves_per_device_kind_and_switch():
    expected = "native" if (tf.config.list_logical_devices("GPU") or conv.onednn_enabled()) else "phases"
    assert conv.default_implementation() == expected
    # >= PHASES_MIN_CHANNELS on both sides: the kernel-set default applies (fewer: TF's kernel).
    layer = conv.Conv2DTranspose(64, 4, strides=2, padding="same")
    layer.build((None, 3, 3, 64))
    assert layer.resolved_implementation == expected and "implementation" not in layer.get_config()
    try:
        conv.set_default_implementation("phases")
        layer = conv.Conv2D(64, 4, strides=2, padding="same")
        layer.build((None, 6, 6, 64))
        assert layer.resolved_implementation == "phases"
        # Fewer than PHASES_MIN_CHANNELS (64) on either side: TF's kernel (measured faster).
        for c_in, filters in ((4, 2), (32, 64), (64, 32)):
            small = conv.Conv2DTranspose(filters, 4, strides=2, padding="same")
            small.build((None, 6, 6, c_in))
            assert small.resolved_implementation == "native", (c_in, filters)
        dilated = conv.Conv2D(2, 3, dilation_rate=2, padding="same")  # not covered: native
        dilated.build((None, 6, 6, 4))
        assert dilated.resolved_implementation == "native"
        image_side = [conv.Conv2D(8, 4, strides=2, padding="same"),  # a critic's first layer
                      conv.Conv2DTranspose(3, 4, strides=2, padding="same")]  # to RGB
        for image_layer, channels in zip(image_side, (3, 8)):
            image_layer.build((None, 6, 6, channels))
            assert image_layer.resolved_implementation == "native"
        forced = conv.Conv2D(8, 4, strides=2, padding="same", implementation="phases")
        forced.build((None, 6, 6, 1))
        assert forced.resolved_implementation == "phases"
    finally:
        conv.set_default_implementation("auto")


def test_bad_implementation_names_the_argument():
    with pytest.raises(ValueError, match="`implementation=.fast.`"):
        conv.Conv2D(2, 3, implementation="fast")
    with pytest.raises(ValueError, match="`implementation"):
        conv.set_default_implementation("cudnn")
    with pytest.raises(ValueError, match="implementation='phases'"):
        conv.Conv2DTranspose(2, 3, dilation_rate=2, implementation="phases").build((None, 4, 4, 1))


MIRRORED_SCRIPT = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from mmd_keras.layers import conv

    def make():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((3, 3, 2)),
            conv.Conv2DTranspose(4, 5, strides=2, padding="same", implementation="phases"),
            conv.Conv2D(2, 4, strides=2, padding="same", implementation="phases"),
            keras.layers.Flatten(), keras.layers.Dense(1)])
        return model, keras.optimizers.SGD(0.1)

    def step(model, opt, x):
        with tf.GradientTape() as tape:
            with tf.GradientTape() as inner:  # a gradient penalty: second order through both
                inner.watch(x)
                out = tf.reduce_sum(model(x))
            loss = tf.reduce_sum(inner.gradient(out, x) ** 2) + out
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    x = np.random.default_rng(0).normal(size=(4, 3, 3, 2)).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model, opt = make()
        opt.build(model.trainable_variables)
    data = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(4))
    for batch in data:
        for _ in range(2):
            strategy.run(tf.function(lambda b: step(model, opt, b)), args=(batch,))
    single, opt1 = make()
    for _ in range(2):
        step(single, opt1, tf.constant(x))
    for a, b in zip(model.get_weights(), single.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    print("OK")
""")


@pytest.mark.slow
def test_two_replica_mirrored_step_with_penalty_equals_one_device():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("OK")
