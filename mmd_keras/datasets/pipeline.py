"""Shared tf.data plumbing: image pre-processing and the training pipeline tail.

Every image source in :mod:`mmd_keras.datasets` yields single ``uint8`` images
``[H, W, C]`` of the requested size; :func:`finalize` turns such a dataset into the
training stream (cache → shuffle → repeat → float [-1, 1] → batch with
``drop_remainder`` → prefetch).
"""

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE

#: In-memory caching is used (``cache="auto"``) when the uint8 images of a split are
#: estimated to take at most this many bytes.
DEFAULT_CACHE_LIMIT_BYTES = 1 << 30


def validate_common(image_size, batch_size, shuffle_buffer, start_batch):
    """Raises the documented ValueErrors for the arguments every source shares."""
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise ValueError(
            "Expected `image_size` to be a positive int (or None for the dataset's "
            f"native size). Received: `image_size={image_size!r}`"
        )
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(
            f"Expected `batch_size` to be a positive int. Received: `batch_size={batch_size!r}`"
        )
    if not isinstance(shuffle_buffer, int) or shuffle_buffer < 1:
        raise ValueError(
            "Expected `shuffle_buffer` to be a positive int. Received: "
            f"`shuffle_buffer={shuffle_buffer!r}`"
        )
    if not isinstance(start_batch, int) or isinstance(start_batch, bool) or start_batch < 0:
        raise ValueError(
            "Expected `start_batch` to be an int >= 0. Received: "
            f"`start_batch={start_batch!r}`"
        )


def center_crop(image, crop_size=None):
    """Crops the central ``crop_size`` × ``crop_size`` square of one image.

    Args:
        image: ``[H, W, C]`` tensor (any dtype).
        crop_size: side of the square; ``None`` takes the largest centred square
            ``min(H, W)``. Clipped to ``min(H, W)`` when larger than the image.

    Returns:
        ``[S, S, C]`` tensor, ``S = min(crop_size, H, W)``; the offset is
        ``((H - S) // 2, (W - S) // 2)``.
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.minimum(height, width)
    if crop_size is not None:
        side = tf.minimum(side, crop_size)
    top = (height - side) // 2
    left = (width - side) // 2
    return image[top : top + side, left : left + side, :]


def resize_uint8(image, image_size):
    """Resizes one image to ``image_size`` × ``image_size`` and returns ``uint8``.

    Uses area-style anti-aliased bilinear resizing when shrinking (no aliasing on
    the 218×178 → 64 CelebA reduction) and bilinear when enlarging; values are
    rounded and clipped to ``[0, 255]``. A no-op copy (cast only) when the size
    already matches.
    """
    resized = tf.image.resize(
        tf.cast(image, tf.float32), [image_size, image_size], method="bilinear", antialias=True
    )
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def crop_and_resize(image, image_size, crop_size=None):
    """Centre square crop (see :func:`center_crop`) then resize to ``image_size``.

    With ``image_size=None`` the crop is returned unresized (its size may vary).
    """
    static = image.shape[:2]
    if (
        image.dtype == tf.uint8
        and static[0] == static[1] == image_size
        and (crop_size is None or crop_size >= image_size)
    ):
        return image  # already the right square: nothing to do (cifar10, mnist, ...)
    image = center_crop(image, crop_size)
    if image_size is None:
        return image
    return resize_uint8(image, image_size)


def to_unit_range(images):
    """Maps ``uint8`` pixels ``{0, …, 255}`` to float32 ``[-1, 1]`` (``x / 127.5 - 1``)."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8(images):
    """Inverse of :func:`to_unit_range`: float ``[-1, 1]`` → ``uint8`` (rounded, clipped)."""
    images = tf.cast(images, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def resolve_cache(cache, estimated_bytes, cache_limit_bytes=DEFAULT_CACHE_LIMIT_BYTES):
    """Turns the ``cache`` option into ``False``, ``""`` (memory) or a file prefix.

    Args:
        cache: ``"auto"`` (memory when ``estimated_bytes`` is known and at most
            ``cache_limit_bytes``), ``True`` (memory), ``False`` (none) or a string
            path prefix (``tf.data`` file cache).
        estimated_bytes: size of the decoded uint8 split, or ``None`` if unknown.
        cache_limit_bytes: the ``"auto"`` threshold.
    """
    if cache == "auto":
        if estimated_bytes is not None and estimated_bytes <= cache_limit_bytes:
            return ""
        return False
    if cache is True:
        return ""
    if cache is False or cache is None:
        return False
    if isinstance(cache, str):
        return cache
    raise ValueError(
        'Expected `cache` to be "auto", True, False or a file path prefix. '
        f"Received: `cache={cache!r}`"
    )


def finalize(
    images,
    batch_size,
    *,
    shuffle=True,
    repeat=True,
    seed=0,
    deterministic=True,
    cache=False,
    shuffle_buffer=10_000,
    start_batch=0,
    to_float=True,
):
    """The common tail of every image pipeline.

    Order: ``cache`` (of the pre-processed uint8 images) → ``shuffle`` (seeded,
    reshuffled every epoch) → ``repeat`` → map to float32 ``[-1, 1]`` →
    ``batch(drop_remainder=True)`` → ``skip(start_batch)`` → ``prefetch``.

    Args:
        images: dataset of single elements (``uint8`` images ``[H, W, C]``, or
            float vectors when ``to_float=False``).
        batch_size: examples per batch; partial batches are dropped.
        shuffle: shuffle with a buffer of ``shuffle_buffer`` elements and ``seed``.
        repeat: repeat forever.
        seed: shuffle seed; the element order is a function of ``seed`` alone when
            ``deterministic=True``.
        deterministic: force ``tf.data`` to keep element order in parallel stages.
        cache: result of :func:`resolve_cache` (``False``, ``""`` or a path).
        shuffle_buffer: shuffle buffer size.
        start_batch: batches to skip (resume a run at its generator step).
        to_float: apply :func:`to_unit_range`.

    Returns:
        ``tf.data.Dataset`` of ``[batch_size, ...]`` batches.
    """
    if cache is not False:
        images = images.cache(cache)
    if shuffle:
        images = images.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        images = images.repeat()
    if to_float:
        images = images.map(to_unit_range, num_parallel_calls=AUTOTUNE)
    images = images.batch(batch_size, drop_remainder=True)
    if start_batch:
        images = images.skip(start_batch)
    images = images.prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return images.with_options(options)


def validate_batches_per_step(batches_per_step):
    """Raises the documented ValueError unless ``batches_per_step`` is an int >= 1."""
    if not isinstance(batches_per_step, int) or isinstance(batches_per_step, bool) or batches_per_step < 1:
        raise ValueError("Expected `batches_per_step` to be a positive int. Received: "
                         f"`batches_per_step={batches_per_step!r}`")


def stack_batches(batches, batches_per_step):
    """Groups consecutive batches into one element per generator step (fresh real batches).

    ``batches_per_step`` consecutive ``[B, ...]`` batches become one ``[B, n, ...]`` element:
    critic step ``i`` of a step trains on ``element[:, i]`` and the generator step on the next
    (`mmd_keras.models.MMDGAN`). The batch axis stays first so that `tf.distribute` gives each
    replica its share of every one of the step's batches. Element ``s`` holds batches
    ``s * n, ..., s * n + n - 1`` of the un-stacked stream, so ``n = 1`` changes nothing but
    the shape and the stream is the same function of the seed.

    Args:
        batches: dataset of ``[B, ...]`` batches (full: ``drop_remainder``).
        batches_per_step: int >= 1, the ``n`` above.

    Returns:
        Dataset of ``[B, n, ...]`` elements.
    """
    validate_batches_per_step(batches_per_step)

    def batch_major(element):
        perm = [1, 0] + list(range(2, element.shape.rank))
        return tf.transpose(element, perm)

    options = batches.options()
    stacked = batches.batch(batches_per_step, drop_remainder=True).map(batch_major, num_parallel_calls=AUTOTUNE)
    return stacked.prefetch(AUTOTUNE).with_options(options)
