"""Critic regularizers: gradient penalties, activation penalty, Jacobian norms, clipping.

Conventions: ``real_images`` / ``fake_images`` are batches [b, ...] of data and
generator samples (any rank ≥ 2, usually [b, H, W, C]); a *critic* is a callable
``images -> features [b, s]``; ``alpha`` [b] are interpolation weights in [0, 1]
(drawn by the caller, e.g. from a stateless RNG) so every function here is pure.
All results are float32 scalars even when the critic computes in float16/bfloat16.

* Witness gradient penalty (paper 1, Bińkowski et al. 2018, §3): the MMD witness
  w(x̂) = mean_j k(h(x̂), h(x_j)) − mean_j k(h(x̂), h(y_j)) at interpolates
  x̂ = x + α(y − x), penalty E(‖∇_x̂ w(x̂)‖₂ − 1)² with the norm per sample over
  **all** input entries. ``legacy_gp_axis=True`` reproduces paper 1's code, which
  took the norm over axis 1 (image height) only and averaged the rest.
* WGAN-GP penalty (Gulrajani et al. 2017): the same on a 1-d critic output.
* L2 activation penalty (paper 1, footnote 19).
* Squared Frobenius norm of the critic Jacobian at real inputs (paper 2's SMMD /
  SWGAN scale, paper 3's MMD-rep-gp), for any output dimension.
* Per-tensor gradient-norm clipping (papers 1–2 code).
"""

import tensorflow as tf


def _images(t, name):
    t = tf.convert_to_tensor(t)
    if t.shape.rank is None or t.shape.rank < 2:
        raise ValueError(
            f"Expected `{name}` of rank ≥ 2 with shape [batch, ...]. Received: `{name}.shape={t.shape}`"
        )
    return t


def check_image_pair(real_images, fake_images):
    """Validates two image batches of one sample shape; returns them, fake cast to the real dtype."""
    real = _images(real_images, "real_images")
    fake = _images(fake_images, "fake_images")
    if real.shape[1:] != fake.shape[1:] and real.shape[1:].is_fully_defined() and fake.shape[1:].is_fully_defined():
        raise ValueError(
            "Expected `real_images` and `fake_images` with the same sample shape. "
            f"Received: `real_images.shape={real.shape}`, `fake_images.shape={fake.shape}`"
        )
    return real, tf.cast(fake, real.dtype)


def _mix32(x):
    """A 32-bit integer finalizer (lowbias32 hash) on uint32 tensors."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = x * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15))
    x = x * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def uniform_from_seed(seed, num):
    """Counter-based U(0, 1) numbers from an int32 [2] seed, identical with and without XLA.

    ``tf.random.stateless_uniform`` gives different numbers under ``jit_compile=True``
    than TF's CPU kernels (even with ``alg="philox"``), so a step's interpolation
    weights would depend on the compiler; this hash of (seed, index) does not.

    Args:
      seed: int32 tensor of shape [2].
      num: number of values (scalar int).

    Returns:
      [num] float32 values in (0, 1) with 24 random bits each.
    """
    seed = tf.bitcast(tf.cast(seed, tf.int32), tf.uint32)
    index = tf.bitcast(tf.range(num, dtype=tf.int32), tf.uint32)
    x = _mix32(index + _mix32(seed[0] + tf.constant(0x9E3779B9, tf.uint32)))
    x = _mix32(tf.bitwise.bitwise_xor(x, _mix32(seed[1] + tf.constant(0x85EBCA6B, tf.uint32))))
    return (tf.cast(tf.bitwise.right_shift(x, 8), tf.float32) + 0.5) * (1.0 / 16777216.0)


def interpolate(real_images, fake_images, alpha):
    """x̂ = x + α(y − x), one α per sample.

    Args:
      real_images: [b, ...]. fake_images: [b, ...] (cast to the real dtype).
      alpha: [b] weights in [0, 1].

    Returns:
      [b, ...] interpolates in the dtype of ``real_images``.
    """
    real, fake = check_image_pair(real_images, fake_images)
    alpha = tf.convert_to_tensor(alpha)
    if alpha.shape.rank != 1:
        raise ValueError(f"Expected `alpha` of rank 1 with shape [batch]. Received: `alpha.shape={alpha.shape}`")
    alpha = tf.reshape(tf.cast(alpha, real.dtype), [-1] + [1] * (real.shape.rank - 1))
    return real + alpha * (fake - real)


def gradient_norms(gradients, legacy_gp_axis=False):
    """Per-sample Euclidean norms of input gradients, float32.

    Args:
      gradients: [b, ...] gradients with respect to the inputs.
      legacy_gp_axis: paper 1's code: norm over axis 1 only (image height for NHWC).

    Returns:
      [b] norms over all non-batch entries, or [b, ...] (axis 1 removed) when legacy.
    """
    g = tf.cast(_images(gradients, "gradients"), tf.float32)
    if legacy_gp_axis:
        return _safe_sqrt(tf.reduce_sum(tf.square(g), axis=1))
    return _safe_sqrt(tf.reduce_sum(tf.square(tf.reshape(g, [tf.shape(g)[0], -1])), axis=1))


def _safe_sqrt(t):
    """sqrt with gradient 0 (not NaN) where t = 0.

    A sample whose input gradient is exactly zero (dead ReLUs, a saturated critic)
    would otherwise make the penalty's gradient 0·inf = NaN for every weight.
    """
    positive = t > 0.0
    return tf.where(positive, tf.sqrt(tf.where(positive, t, tf.ones_like(t))), tf.zeros_like(t))


def gradient_penalty_from_gradients(gradients, target=1.0, legacy_gp_axis=False):
    """E(‖g‖₂ − target)² over the batch (and the remaining axes when legacy)."""
    return tf.reduce_mean(tf.square(gradient_norms(gradients, legacy_gp_axis) - target))


def gradient_penalty(fn, interpolates, target=1.0, legacy_gp_axis=False):
    """Two-sided gradient penalty of a per-sample scalar function.

    Args:
      fn: callable ``[b, ...] -> [b]`` or ``[b, 1]`` (summed over extra axes).
        Must not mix samples (no batch norm), so ∇Σfn gives per-sample gradients.
      interpolates: [b, ...] points where the gradient is taken.
      target: the gradient norm aimed at (1 for Lipschitz-1).
      legacy_gp_axis: see :func:`gradient_norms`.

    Returns:
      Scalar float32 E(‖∇fn(x̂)‖ − target)².
    """
    interpolates = _images(interpolates, "interpolates")
    with tf.GradientTape() as tape:
        tape.watch(interpolates)
        values = tf.reduce_sum(tf.cast(fn(interpolates), tf.float32))
    return gradient_penalty_from_gradients(tape.gradient(values, interpolates), target, legacy_gp_axis)


def witness(hat_features, real_features, fake_features, kernel):
    """Empirical MMD witness w(ĥ) = mean_j k(ĥ, x_j) − mean_j k(ĥ, y_j).

    Args:
      hat_features: [b, s] features of the points where the witness is evaluated.
      real_features: [m, s]; fake_features: [n, s].
      kernel: a :class:`mmd_keras.kernels.Kernel` (or callable ``k(a, b) -> [na, nb]``).

    Returns:
      [b] float32 witness values.
    """
    return tf.reduce_mean(kernel(hat_features, real_features), axis=1) - tf.reduce_mean(
        kernel(hat_features, fake_features), axis=1
    )


def witness_gradient_penalty(critic, real_images, fake_images, kernel, alpha, legacy_gp_axis=False):
    """Paper 1's gradient penalty on the MMD witness function (unweighted).

    Args:
      critic: callable images [b, ...] -> features [b, s].
      real_images, fake_images: [b, ...] batches (the witness uses these batches).
      kernel: kernel object on features.
      alpha: [b] interpolation weights.
      legacy_gp_axis: norm over image height only, as paper 1's code.

    Returns:
      Scalar float32 E(‖∇_x̂ w(x̂)‖₂ − 1)².
    """
    real, fake = check_image_pair(real_images, fake_images)
    real_features = tf.cast(critic(real), tf.float32)
    fake_features = tf.cast(critic(fake), tf.float32)
    return gradient_penalty(
        lambda z: witness(tf.cast(critic(z), tf.float32), real_features, fake_features, kernel),
        interpolate(real, fake, alpha),
        legacy_gp_axis=legacy_gp_axis,
    )


def scalar_output(features, name="critic output"):
    """[b, 1] or [b] critic output -> [b] float32; anything wider is a ValueError."""
    features = tf.convert_to_tensor(features)
    if features.shape.rank == 2 and features.shape[1] == 1:
        features = features[:, 0]
    if features.shape.rank != 1:
        raise ValueError(
            f"Expected a 1-d critic output of shape [batch, 1] for this loss. Received: `{name}.shape={features.shape}`"
        )
    return tf.cast(features, tf.float32)


def wgan_gradient_penalty(critic, real_images, fake_images, alpha, legacy_gp_axis=False):
    """WGAN-GP penalty E(‖∇f(x̂)‖₂ − 1)² of a critic with 1-d output (unweighted)."""
    real, fake = check_image_pair(real_images, fake_images)
    return gradient_penalty(
        lambda z: scalar_output(critic(z)), interpolate(real, fake, alpha), legacy_gp_axis=legacy_gp_axis
    )


def l2_activation_penalty(activations):
    """Σ_layers mean over batch of the per-sample mean squared activation.

    Paper 1 (footnote 19) applies it to all critic layers, output included, for the
    real and the fake batch; call this once per batch and add (weight 1 for rq*,
    1e-4 for the distance kernel).

    Args:
      activations: list of [b, ...] tensors (one per layer) of one batch.

    Returns:
      Scalar float32.
    """
    if isinstance(activations, (tf.Tensor,)) or not activations:
        raise ValueError(
            "Expected `activations` to be a non-empty list of [batch, ...] tensors. "
            f"Received: `activations={activations!r}`"
        )
    total = tf.constant(0.0, tf.float32)
    for a in activations:
        a = tf.cast(a, tf.float32)
        a = tf.reshape(a, [tf.shape(a)[0], -1])
        total += tf.reduce_mean(tf.square(a))
    return total


def jacobian_squared_norms(critic, images):
    """Critic features and per-sample squared Frobenius norms of the input Jacobian.

    ‖J_h(x)‖²_F = Σ_k ‖∇_x h_k(x)‖² over output dims k and all input entries; one
    backward pass per output dimension (the critic must not mix samples).

    Args:
      critic: callable images [b, ...] -> features [b, s].
      images: [b, ...] inputs (real images for SMMD / SWGAN / rep-gp).

    Returns:
      (features [b, s] float32, squared norms [b] float32).
    """
    images = _images(images, "images")
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(images)
        features = tf.cast(critic(images), tf.float32)
        if features.shape.rank != 2 or features.shape[1] is None:
            raise ValueError(
                f"Expected critic features of shape [batch, s]. Received: `features.shape={features.shape}`"
            )
        columns = [tf.reduce_sum(features[:, k]) for k in range(features.shape[1])]
    norms = sum_squared_gradients(tape, columns, images)
    del tape
    return features, norms


def sum_squared_gradients(tape, columns, sources):
    """Σ_k per-sample ‖∂columns[k]/∂sources‖², float32 [b] (helper for Jacobian norms)."""
    total = None
    for column in columns:
        g = tf.cast(tape.gradient(column, sources), tf.float32)
        sq = tf.reduce_sum(tf.reshape(tf.square(g), [tf.shape(g)[0], -1]), axis=1)
        total = sq if total is None else total + sq
    return total


def clip_gradients_per_tensor(grads, clip_norm=1.0):
    """Clips every gradient tensor to Euclidean norm ≤ ``clip_norm`` (papers 1–2 code).

    Args:
      grads: list of tensors (``None`` entries are kept as ``None``).
      clip_norm: positive float.

    Returns:
      List of clipped tensors.
    """
    if not (isinstance(clip_norm, (int, float)) and clip_norm > 0):
        raise ValueError(f"Expected `clip_norm` to be a positive number. Received: `clip_norm={clip_norm!r}`")
    return [None if g is None else tf.clip_by_norm(g, clip_norm) for g in grads]
