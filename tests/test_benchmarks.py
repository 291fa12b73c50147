"""The benchmarks' FLOP counter against hand arithmetic, and their CLI contract."""

import importlib

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import flops
from mmd_keras import metrics


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
