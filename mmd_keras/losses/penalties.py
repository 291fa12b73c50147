"""Critic regularizers as pure functions: gradient penalties, activation penalty, Jacobian norms.

Conventions: ``real_images`` / ``fake_images`` are batches [b, ...] of data and
generator samples (any rank ≥ 2, usually [b, H, W, C]); a *critic* is a callable
``images -> features [b, s]``; ``alpha`` [b] are interpolation weights in [0, 1]
drawn by the caller (the losses draw them with :func:`mmd_keras.rng.uniform01`), so
every function here is pure. All results are float32 scalars even when the critic
computes in float16/bfloat16. Formulas and papers: docs/numerics.md, "Penalties".

* Witness gradient penalty (paper 1, §3 and §5): the MMD witness
  w(x̂) = mean_j k(h(x̂), h(x_j)) − mean_j k(h(x̂), h(y_j)) at interpolates
  x̂ = x + α(y − x), penalty E(‖∇_x̂ w(x̂)‖₂ − 1)² with the norm per sample over
  **all** input entries. ``legacy_gp_axis=True`` reproduces paper 1's code, which
  took sqrt(Σ g² + 1e-5) over axis 1 (image height) only and averaged the rest.
* WGAN-GP penalty (Gulrajani et al. 2017, Eq. 3): the same on a 1-d critic output.
* L2 activation penalty (paper 1, footnote 19).
* Squared Frobenius norm of the critic Jacobian at real inputs (paper 2's SMMD /
  SWGAN scale, paper 3's MMD-rep-gp), for any output dimension.
"""

import tensorflow as tf

from mmd_keras.losses import inputs
from mmd_keras.losses.inputs import check_image_pair, scalar_output

#: The constant paper 1's code adds under the square root of its legacy gradient norms
#: (its MMD and Cramér penalties; its WGAN-GP penalty uses a plain square root).
LEGACY_GP_EPSILON = 1e-5


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


def gradient_norms(gradients, legacy_gp_axis=False, legacy_epsilon=LEGACY_GP_EPSILON):
    """Per-sample Euclidean norms of input gradients, float32.

    Args:
      gradients: [b, ...] gradients with respect to the inputs.
      legacy_gp_axis: paper 1's code: sqrt(Σ g² + ``legacy_epsilon``) over axis 1 only
        (image height for NHWC).
      legacy_epsilon: the constant under that square root: 1e-5 in paper 1's MMD and
        Cramér penalties, 0 in its WGAN-GP penalty. Unused unless ``legacy_gp_axis``.

    Returns:
      [b] norms over all non-batch entries, or [b, ...] (axis 1 removed) when legacy.
    """
    g = tf.cast(inputs.images(gradients, "gradients"), tf.float32)
    if legacy_gp_axis:
        return _safe_sqrt(tf.reduce_sum(tf.square(g), axis=1) + float(legacy_epsilon))
    return _safe_sqrt(tf.reduce_sum(tf.square(tf.reshape(g, [tf.shape(g)[0], -1])), axis=1))


def _safe_sqrt(t):
    """sqrt with gradient 0 (not NaN) where t = 0.

    A sample whose input gradient is exactly zero (dead ReLUs, a saturated critic)
    would otherwise make the penalty's gradient 0·inf = NaN for every weight.
    """
    positive = t > 0.0
    return tf.where(positive, tf.sqrt(tf.where(positive, t, tf.ones_like(t))), tf.zeros_like(t))


def gradient_penalty_from_gradients(gradients, target=1.0, legacy_gp_axis=False,
                                    legacy_epsilon=LEGACY_GP_EPSILON):
    """E(‖g‖₂ − target)² over the batch (and the remaining axes when legacy)."""
    return tf.reduce_mean(tf.square(gradient_norms(gradients, legacy_gp_axis, legacy_epsilon) - target))


def gradient_penalty(fn, interpolates, target=1.0, legacy_gp_axis=False, legacy_epsilon=LEGACY_GP_EPSILON):
    """Two-sided gradient penalty of a per-sample scalar function.

    Args:
      fn: callable ``[b, ...] -> [b]`` or ``[b, 1]`` (summed over extra axes).
        Must not mix samples (no batch norm), so ∇Σfn gives per-sample gradients.
      interpolates: [b, ...] points where the gradient is taken.
      target: the gradient norm aimed at (1 for Lipschitz-1).
      legacy_gp_axis, legacy_epsilon: see :func:`gradient_norms`.

    Returns:
      Scalar float32 E(‖∇fn(x̂)‖ − target)².
    """
    interpolates = inputs.images(interpolates, "interpolates")
    with tf.GradientTape() as tape:
        tape.watch(interpolates)
        values = tf.reduce_sum(tf.cast(fn(interpolates), tf.float32))
    return gradient_penalty_from_gradients(tape.gradient(values, interpolates), target, legacy_gp_axis,
                                           legacy_epsilon)


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
      legacy_gp_axis: sqrt(Σg² + 1e-5) over image height only, as paper 1's code.

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


def wgan_gradient_penalty(critic, real_images, fake_images, alpha, legacy_gp_axis=False):
    """WGAN-GP penalty E(‖∇f(x̂)‖₂ − 1)² of a critic with 1-d output (unweighted).

    ``legacy_gp_axis`` takes a plain sqrt(Σg²) over image height, as the WGAN-GP code
    that paper 1 compared with (no 1e-5 there).
    """
    real, fake = check_image_pair(real_images, fake_images)
    return gradient_penalty(
        lambda z: scalar_output(critic(z)), interpolate(real, fake, alpha), legacy_gp_axis=legacy_gp_axis,
        legacy_epsilon=0.0,
    )


def l2_activation_penalty(activations):
    """Σ_layers mean over batch of the per-sample mean squared activation.

    Paper 1 (footnote 19) applies it to the activation of every critic layer (after its
    nonlinearity) and to the final representation, once each, for the real and the fake
    batch; call this once per batch and add (weight 1 for rq*, 1e-4 for the distance
    kernel). Which tensors a Keras critic contributes: :func:`mmd_keras.losses.base.activation_layers`.

    Args:
      activations: list of [b, ...] tensors (one per penalized tensor) of one batch.

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
    images = inputs.images(images, "images")
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
