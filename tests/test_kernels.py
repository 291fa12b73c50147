"""Kernels vs float64 NumPy references written here (docs/numerics.md, Kernels)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import kernels
from references import np_distance, np_poly, np_rbf, np_rq

SHAPES = [(1, 1, 1), (3, 5, 2), (7, 4, 16)]


CASES = [
    ("rbf", {}, lambda x, y: np_rbf(x, y, (2, 5, 10, 20, 40, 80), [1] * 6)),
    ("rbf", {"sigmas": [0.5, 3.0], "weights": [2.0, 0.25]},
     lambda x, y: np_rbf(x, y, (0.5, 3.0), (2.0, 0.25))),
    ("rq", {}, lambda x, y: np_rq(x, y, (0.2, 0.5, 1, 2, 5), [1] * 5)),
    ("rq", {"alphas": [0.1, 1, 10], "weights": [1, 2, 3]},
     lambda x, y: np_rq(x, y, (0.1, 1, 10), (1, 2, 3))),
    ("rq_dot", {"linear_coefficient": 0.5},
     lambda x, y: np_rq(x, y, (0.2, 0.5, 1, 2, 5), [1] * 5) + 0.5 * x @ y.T),
    ("dot", {}, lambda x, y: x @ y.T),
    ("distance", {}, lambda x, y: np_distance(x, y, 1.0, 0.0)),
    ("distance", {"beta": 1.5, "eps": 1e-5}, lambda x, y: np_distance(x, y, 1.5, 1e-5)),
    ("distance", {"scale": 2.0, "eps": 1e-5}, lambda x, y: np_distance(x, y, 1.0, 1e-5, scale=2.0)),
    ("polynomial", {}, lambda x, y: np_poly(x, y, 3, None, 1.0)),
    ("polynomial", {"degree": 2, "gamma": 0.3, "coef0": 0.5},
     lambda x, y: np_poly(x, y, 2, 0.3, 0.5)),
]


@pytest.mark.parametrize("name,params,reference", CASES)
@pytest.mark.parametrize("n,m,d", SHAPES)
def test_kernel_matches_numpy(name, params, reference, n, m, d, rng):
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) * 1.5
    kernel = kernels.get(name, **params)
    got = kernel(x.astype(np.float32), y.astype(np.float32)).numpy()
    assert got.dtype == np.float32 and got.shape == (n, m)
    np.testing.assert_allclose(got, reference(x, y), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        kernel.diagonal(x.astype(np.float32)).numpy(), np.diag(reference(x, x)), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name,params,reference", CASES)
def test_kernel_matrix_symmetric_and_psd(name, params, reference, rng):
    x = rng.normal(size=(12, 3)).astype(np.float32)
    k = kernels.get(name, **params)(x, x).numpy().astype(np.float64)
    np.testing.assert_allclose(k, k.T, rtol=1e-6, atol=1e-6)
    # Every kernel here is positive semi-definite (the distance kernel is for
    # β ∈ (0, 2]): the smallest eigenvalue is ≥ 0 up to float32 round-off.
    eigenvalues = np.linalg.eigvalsh(k)
    assert eigenvalues.min() > -1e-4 * max(1.0, abs(eigenvalues).max())


def test_squared_distances_clamped_nonnegative():
    # Large, nearly equal vectors make ‖x‖² + ‖y‖² − 2xᵀy cancel to a tiny negative.
    x = np.full((4, 64), 1000.0, np.float32) + np.linspace(0, 1e-4, 4, dtype=np.float32)[:, None]
    d2 = kernels.squared_distances(x, x).numpy()
    assert (d2 >= 0).all()


def test_distance_kernel_gradient_finite_at_zero_distance():
    x = tf.constant([[0.0, 0.0], [1.0, 2.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = tf.reduce_sum(kernels.get("distance")(x, x))
    grad = tape.gradient(value, x).numpy()
    assert np.isfinite(grad).all()
    # d/dx of Σ_ij ½(‖x_i‖+‖x_j‖−‖x_i−x_j‖): row 1 gets 2·½·2·x/‖x‖ from the norms and
    # −½·2·(x_1 − x_0)/‖x_1 − x_0‖ from the off-diagonal distances (x_0 = 0 has zero
    # gradient from its norm by the safe power's convention).
    u = np.array([1.0, 2.0]) / math.sqrt(5.0)
    np.testing.assert_allclose(grad[1], 2 * u - u, rtol=1e-6)
    np.testing.assert_allclose(grad[0], u, rtol=1e-6)


def test_energy_distance_of_point_masses():
    # MMD² with the distance kernel (β=1) between δ_a and δ_b is ‖a − b‖ (biased/plug-in
    # value of the energy distance 2E‖X−Y‖ − E‖X−X′‖ − E‖Y−Y′‖ halved).
    from mmd_keras.losses.estimators import mmd2

    a = np.array([[1.0, 2.0]] * 3, np.float32)
    b = np.array([[4.0, 6.0]] * 3, np.float32)
    np.testing.assert_allclose(mmd2(a, b, "distance", estimator="biased").numpy(), 5.0, rtol=1e-6)
    np.testing.assert_allclose(mmd2(a, b, "distance", estimator="unbiased").numpy(), 5.0, rtol=1e-6)


def test_official_distance_scale_gives_the_energy_distance(rng):
    # Paper 1, Eq. 7: D_E = 2E‖X−Y‖ − E‖X−X′‖ − E‖Y−Y′‖; Eq. 8's kernel (scale 1) gives MMD² = D_E/2,
    # the official code's kernel (scale 2) D_E itself (plug-in estimates over all pairs).
    from mmd_keras.losses.estimators import mmd2

    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)) + 0.7
    dist = lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))  # noqa: E731
    energy = 2 * dist(x, y).mean() - dist(x, x).mean() - dist(y, y).mean()
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    np.testing.assert_allclose(mmd2(x32, y32, kernels.get("distance"), "biased").numpy(), energy / 2, rtol=2e-5)
    np.testing.assert_allclose(mmd2(x32, y32, kernels.get("distance", scale=2.0), "biased").numpy(), energy,
                               rtol=2e-5)


def test_distance_kernel_diagonal_is_exact_when_x_is_y(rng):
    # ‖x‖² + ‖x‖² − 2xᵀx cancels to ≈1e-6, not 0, for features of norm ≈ 30; the square root
    # would turn it into ≈1e-3 on k(x_i, x_i) = ‖x_i‖ (Eq. 8 with ρ(x_i, x_i) = 0).
    x = (rng.normal(size=(16, 64)) * 4 + 1).astype(np.float32)
    d2 = kernels.squared_distances(x, x).numpy()
    assert (np.diag(d2) == 0).all() and (d2 >= 0).all()
    k = kernels.get("distance")(x, x).numpy()
    np.testing.assert_allclose(np.diag(k), np.linalg.norm(x.astype(np.float64), axis=1), rtol=1e-6)
    np.testing.assert_allclose(np.diag(k), kernels.get("distance").diagonal(x).numpy(), rtol=1e-6)
    # Two equal but distinct tensors keep the computed (clamped) value: only identity is exact.
    assert (kernels.squared_distances(x, x.copy()).numpy() >= 0).all()


def test_exact_diagonal_is_differentiable_under_xla_with_an_unknown_batch_size(rng):
    # Keras compiles train steps with an unknown batch dimension; the zeroed diagonal must not
    # build a shape XLA cannot infer (tf.linalg.set_diag's gradient does).
    x = rng.normal(size=(5, 3)).astype(np.float32)

    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = tf.reduce_sum(kernels.get("distance")(x, x))
        return tape.gradient(value, x)

    spec = [tf.TensorSpec([None, 3], tf.float32)]
    xla = tf.function(grad, jit_compile=True, input_signature=spec)(x).numpy()
    np.testing.assert_allclose(xla, grad(tf.constant(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_kid_kernel_by_hand():
    # d = 2: k(x, y) = (xᵀy/2 + 1)³.
    x = np.array([[1.0, 2.0]], np.float32)
    y = np.array([[3.0, -1.0], [0.0, 0.0]], np.float32)
    got = kernels.get("polynomial")(x, y).numpy()
    np.testing.assert_allclose(got, [[(1 + 0.5) ** 3, 1.0]], rtol=1e-7)


def test_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    x = tf.constant(np.random.default_rng(0).normal(size=(5, 3)), tf.bfloat16)
    for name in kernels.KERNELS:
        assert kernels.get(name)(x, x).dtype == tf.float32


@pytest.mark.parametrize("name", kernels.KERNELS)
def test_config_round_trip(name):
    kernel = kernels.get(name)
    restored = kernels.get(kernels.serialize(kernel))
    assert restored == kernel and restored is not kernel
    assert type(kernel).from_config(kernel.get_config()) == kernel
    short = {"class_name": type(kernel).__name__, "config": kernel.get_config()}
    assert kernels.get(short) == kernel
    assert kernels.get({"class_name": name, "config": {}}) == kernels.get(name)


def test_tf_function_and_jit_compile(rng):
    x = rng.normal(size=(6, 4)).astype(np.float32)
    y = rng.normal(size=(5, 4)).astype(np.float32)
    for name in kernels.KERNELS:
        kernel = kernels.get(name)
        eager = kernel(x, y).numpy()
        graph = tf.function(kernel.__call__)(x, y).numpy()
        xla = tf.function(kernel.__call__, jit_compile=True)(x, y).numpy()
        np.testing.assert_allclose(graph, eager, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(xla, eager, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: kernels.get("gaussian"), "kernel"),
        (lambda: kernels.get("rbf", bandwidth=2), "params"),
        (lambda: kernels.get("rbf", sigmas=[1.0, -2.0]), "sigmas"),
        (lambda: kernels.get("rq", alphas=[1.0, 2.0], weights=[1.0]), "weights"),
        (lambda: kernels.get("distance", beta=3.0), "beta"),
        (lambda: kernels.get("polynomial", degree=2.5), "degree"),
        (lambda: kernels.get("dot")(np.zeros((2, 3)), np.zeros((2, 4))), "x.shape"),
        (lambda: kernels.get("dot")(np.zeros((2, 3, 1)), np.zeros((2, 3))), "x"),
        # A dict that is not a kernel config fails here, not later inside a train step.
        (lambda: kernels.get({"name": "rbf", "sigmas": [1.0]}), "class_name"),
        (lambda: kernels.get({"class_name": "Gaussian", "config": {}}), "class_name"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
