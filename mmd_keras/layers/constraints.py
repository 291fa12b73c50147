"""Projection ("constraint-based") spectral normalization as a Keras kernel constraint."""

import keras
import tensorflow as tf

from mmd_keras.layers import power_iteration


@keras.saving.register_keras_serializable(package="mmd_keras")
class SpectralNormConstraint(keras.constraints.Constraint):
    """Rescales a kernel after each optimizer update so that ``σ(W) ≤ target``.

    ``W ← W · min(1, target/σ̂(W))`` where ``σ̂`` is the top singular value of the kernel reshaped
    to ``[kh·kw·c_in, c_out]`` (``[d_in, d_out]`` for dense kernels), estimated by ``iterations``
    rounds of power iteration from a fixed pseudo-random start (stateless, so it is identical on
    every replica and inside XLA, where ``tf.linalg.svd`` is unusable). Power iteration
    approaches σ from below, so ``target`` is divided by ``1 + margin`` to keep ``σ ≤ target``
    when the estimate has not fully converged. Pass it as ``kernel_constraint=`` to any
    Conv/Dense layer; Keras applies it inside ``optimizer.apply()``.

    Args:
        target: the bound on the spectral norm (> 0).
        iterations: power-iteration rounds per application (≥ 1).
        margin: relative safety margin (≥ 0), default 1e-3.
    """

    def __init__(self, target=1.0, iterations=30, margin=1e-3):
        if not target > 0:
            raise ValueError(f"Expected `target` > 0. Received: `target={target!r}`")
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(
                f"Expected `iterations` to be an int >= 1. Received: `iterations={iterations!r}`"
            )
        if not margin >= 0:
            raise ValueError(f"Expected `margin` >= 0. Received: `margin={margin!r}`")
        self.target = float(target)
        self.iterations = iterations
        self.margin = float(margin)

    def __call__(self, w):
        w = tf.convert_to_tensor(w)
        matrix = tf.reshape(tf.cast(w, tf.float32), [-1, w.shape[-1]])
        u0 = tf.random.stateless_normal([1, w.shape[-1]], seed=[0, 1], dtype=tf.float32)
        u, v = power_iteration.matrix_power_iteration(matrix, u0, self.iterations)
        sigma = power_iteration.matrix_sigma(matrix, u, v)
        bound = self.target / (1.0 + self.margin)
        scale = tf.minimum(1.0, bound / tf.maximum(sigma, power_iteration.EPSILON))
        return tf.cast(tf.cast(w, tf.float32) * scale, w.dtype)

    def get_config(self):
        return {"target": self.target, "iterations": self.iterations, "margin": self.margin}
