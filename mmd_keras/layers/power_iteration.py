"""Power iteration on linear operators: PIM (reshaped kernel) and PICO (the operator itself).

Pure functions of tensors. The spectral-norm layers of :mod:`mmd_keras.layers.spectral_norm`
call them; tests call them directly against exact singular values.

* **PIM** (Miyato et al., 2018): the kernel ``[kh, kw, c_in, c_out]`` is reshaped to the matrix
  ``[kh·kw·c_in, c_out]`` and its top singular value is estimated by power iteration with a
  persistent vector ``u`` of shape ``[1, c_out]``.
* **PICO** (Wang et al., 2019, paper 3 App. C): the power iteration runs on the linear map
  ``x ↦ conv(x)`` itself, with a persistent input-shaped vector ``x`` ``[1, H, W, c_in]``:
  ``u = conv(x)/‖conv(x)‖``, ``x ← convᵀ(u)/‖convᵀ(u)‖`` where ``convᵀ`` is the transposed
  convolution with the layer's own stride, padding and dilation; ``σ = ‖conv(x)‖``. This is the
  spectral norm of the convolution *operator* (its Lipschitz constant), which can exceed the
  reshaped-matrix norm by up to ``√(kh·kw)/stride`` (paper 3 App. C.2). Run on the adjoint pair
  swapped (``operator = convᵀ``), the same functions keep an output-shaped vector instead and
  estimate the same ``σ(convᵀ) = σ(conv)``; the layers keep whichever side is smaller.
"""

import tensorflow as tf

EPSILON = 1e-12


def l2_normalize(x, epsilon=EPSILON):
    """Scales ``x`` (any shape) to unit Euclidean norm over all its entries.

    Args:
        x: float tensor of any shape.
        epsilon: floor of the squared norm (avoids 0/0 for a zero kernel).

    Returns:
        ``x / max(‖x‖, √epsilon)``, same shape.
    """
    return x * tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(x)), epsilon))


def matrix_power_iteration(matrix, u, iterations):
    """PIM: power iteration on ``matrix`` ``[m, n]`` with a right vector ``u`` ``[1, n]``.

    Args:
        matrix: float32 ``[m, n]`` (the reshaped kernel ``[kh·kw·c_in, c_out]``).
        u: float32 ``[1, n]``, the persistent vector (any norm).
        iterations: Python int ≥ 0, number of ``v ← Wu, u ← Wᵀv`` rounds.

    Returns:
        ``(u, v)``: the updated unit vectors ``[1, n]`` and ``[1, m]``, gradient-stopped.
        ``σ = v W uᵀ`` (see :func:`matrix_sigma`) is then differentiable w.r.t. ``W`` only.
    """
    matrix = tf.stop_gradient(matrix)
    u = l2_normalize(u)
    v = l2_normalize(tf.matmul(u, matrix, transpose_b=True))
    for _ in range(iterations):
        u = l2_normalize(tf.matmul(v, matrix))
        v = l2_normalize(tf.matmul(u, matrix, transpose_b=True))
    return tf.stop_gradient(u), tf.stop_gradient(v)


def matrix_sigma(matrix, u, v):
    """``σ(W) = v W uᵀ`` (scalar), differentiable w.r.t. ``matrix`` ``[m, n]``."""
    return tf.reduce_sum(tf.matmul(v, matrix) * u)


def operator_power_iteration(operator, adjoint, x, iterations):
    """PICO: power iteration on a linear ``operator`` with its ``adjoint``.

    Args:
        operator: callable ``x -> A x`` (e.g. a convolution without bias), linear.
        adjoint: callable ``u -> Aᵀ u`` (e.g. the matching transposed convolution).
        x: float32 tensor with the operator's input shape (batch 1), the persistent vector.
        iterations: Python int ≥ 0, number of ``u ← Ax/‖Ax‖, x ← Aᵀu/‖Aᵀu‖`` rounds.

    Returns:
        The updated unit-norm ``x`` (same shape), gradient-stopped. ``σ = ‖A x‖``
        (see :func:`operator_sigma`) then carries the gradient w.r.t. the kernel.
    """
    x = l2_normalize(tf.stop_gradient(x))
    for _ in range(iterations):
        u = l2_normalize(operator(x))
        x = l2_normalize(adjoint(u))
    return tf.stop_gradient(x)


def operator_sigma(operator, x):
    """``σ = ‖A x‖₂`` over all entries, for a unit ``x``; differentiable w.r.t. the kernel."""
    return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(operator(x))), EPSILON))


def conv2d_operator(kernel, input_shape, strides, padding, dilation_rate):
    """The ``(operator, adjoint)`` pair of a 2-D convolution (channels_last, no bias).

    Args:
        kernel: ``[kh, kw, c_in, c_out]``.
        input_shape: ``(1, H, W, c_in)`` static shape of the persistent vector.
        strides, dilation_rate: pairs of ints (the layer's own).
        padding: ``"valid"`` or ``"same"``.

    Returns:
        ``operator(x[1,H,W,c_in]) -> [1,H',W',c_out]`` and its exact transpose
        ``adjoint(u[1,H',W',c_out]) -> [1,H,W,c_in]`` (``conv2d_transpose`` with the
        same stride/padding, which is TF's gradient of ``conv2d`` w.r.t. its input; the
        vector-Jacobian product when dilated).
    """
    strides, dilations, padding = list(strides), list(dilation_rate), padding.upper()
    input_shape = [int(d) for d in input_shape]

    def operator(x):
        return tf.nn.convolution(x, kernel, strides=strides, padding=padding, dilations=dilations)

    def adjoint(u):
        if dilations == [1, 1]:
            return tf.nn.conv2d_transpose(
                u, kernel, output_shape=input_shape, strides=strides, padding=padding)
        # TF's CPU conv2d_transpose has no dilation: use the vector-Jacobian product instead
        # (the same linear map, since the operator is linear).
        zeros = tf.zeros(input_shape, u.dtype)
        with tf.GradientTape() as tape:
            tape.watch(zeros)
            y = operator(zeros)
        return tape.gradient(y, zeros, output_gradients=u)

    return operator, adjoint


def conv2d_transpose_operator(kernel, output_shape, strides, padding, dilation_rate):
    """The ``(operator, adjoint)`` pair of a 2-D transposed convolution (channels_last).

    Args:
        kernel: ``[kh, kw, c_out, c_in]`` (Keras ``Conv2DTranspose`` layout).
        output_shape: ``(1, H', W', c_out)``, the layer's output shape for one sample.
        strides, dilation_rate, padding: the layer's own.

    Returns:
        ``operator(x[1,H,W,c_in]) -> [1,H',W',c_out]`` and ``adjoint`` = ``conv2d`` back.
    """
    adjoint, operator = conv2d_operator(kernel, output_shape, strides, padding, dilation_rate)
    return operator, adjoint


def dense_operator(kernel):
    """The ``(operator, adjoint)`` pair of ``x ↦ x W`` for a ``[d_in, d_out]`` kernel."""

    def operator(x):
        return tf.matmul(x, kernel)

    def adjoint(u):
        return tf.matmul(u, kernel, transpose_b=True)

    return operator, adjoint
