"""``image_folder``: any directory tree of JPEG/PNG images.

Files are found recursively (``.jpg``, ``.jpeg``, ``.png``, any case), sorted by
path, and checked *before* training: by default every file is decoded once
(``validate="full"``; ``"header"`` only checks the file signature, for huge
folders). Unreadable files are reported with their count and first paths and, by
default, stop the build (``on_error="raise"``); ``on_error="skip"`` leaves them
out and logs the same report. They are never silently trained on. Each image is
centre-cropped to its largest square (or ``crop_size``) and resized.
"""

import logging

import numpy as np
import tensorflow as tf

from mmd_keras import fileio
from mmd_keras.datasets import pipeline

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
VALIDATE_MODES = ("full", "header", "none")
ON_ERROR_MODES = ("raise", "skip")
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
_MAX_LISTED = 5


def list_image_files(directory):
    """Sorted paths of the JPEG/PNG files under ``directory`` (recursive).

    Raises:
        ValueError: ``directory`` is None, not a folder, or holds no image file.
    """
    # tf.io.gfile: the folder may be in a bucket (gs://, as on a Cloud TPU VM) as well as local.
    if directory is None or not tf.io.gfile.isdir(directory):
        raise ValueError(
            "Expected `data_dir` to be an existing folder of JPEG/PNG images for "
            f"`name='image_folder'`. Received: `data_dir={directory!r}`"
        )
    paths = []
    for root, dirs, files in tf.io.gfile.walk(directory):
        dirs.sort()  # (gfile's walk, like os.walk, descends into this list after the yield)
        paths.extend(
            fileio.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)
        )
    if not paths:
        raise ValueError(
            f"The image folder `{directory}` holds no image file (looked recursively for "
            f"{', '.join(IMAGE_EXTENSIONS)}). Expected `data_dir` to be a folder of "
            "JPEG/PNG images."
        )
    return paths


def _header_ok(path):
    try:
        with tf.io.gfile.GFile(path, "rb") as handle:
            head = handle.read(8)
    except (OSError, tf.errors.OpError):
        return False
    return any(head.startswith(signature) for signature in _SIGNATURES)


def _decode(path, channels):
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    image.set_shape([None, None, channels])
    return image


def find_unreadable(paths, channels=3, validate="full"):
    """Paths that cannot be used, in order: bad signature, or (``full``) failed decode.

    A decode check runs as a parallel ``tf.data`` pass that records which indices
    survive ``ignore_errors``; a zero-sized image also counts as unreadable.
    """
    if validate == "none":
        return []
    bad = [p for p in paths if not _header_ok(p)]
    if validate == "header":
        return bad
    bad_set = set(bad)
    candidates = [p for p in paths if p not in bad_set]
    if not candidates:
        return bad
    indexed = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(candidates), dtype=np.int64), candidates)
    )

    def check(index, path):
        shape = tf.shape(_decode(path, channels))
        return index, tf.reduce_prod(shape[:2])

    survivors = indexed.map(check, num_parallel_calls=pipeline.AUTOTUNE).ignore_errors(
        log_warning=False
    )
    readable = {int(i) for i, pixels in survivors.as_numpy_iterator() if pixels > 0}
    decode_failures = [p for i, p in enumerate(candidates) if i not in readable]
    failed = bad_set | set(decode_failures)
    return [p for p in paths if p in failed]


def image_folder_images(directory, image_size, *, channels=3, crop_size=None, validate="full",
                        on_error="raise"):
    """Reads a folder as single uint8 images ``[image_size, image_size, channels]``.

    Args:
        directory: root folder (searched recursively).
        image_size: output side (default 64).
        channels: 1 (grey) or 3 (RGB); images are converted on decode.
        crop_size: centre-crop side before resizing (default: largest square).
        validate: ``"full"`` decode every file once now, ``"header"`` check file
            signatures only, ``"none"`` skip the check (a bad file then stops training
            with TensorFlow's decode error).
        on_error: ``"raise"`` (ValueError listing the unreadable files) or ``"skip"``.

    Returns:
        ``(images_dataset, num_files, image_size)`` where ``num_files`` counts the
        files actually used.
    """
    if validate not in VALIDATE_MODES:
        raise ValueError(
            f"Expected `validate` to be one of {VALIDATE_MODES}. Received: `validate={validate!r}`"
        )
    if on_error not in ON_ERROR_MODES:
        raise ValueError(
            f"Expected `on_error` to be one of {ON_ERROR_MODES}. Received: `on_error={on_error!r}`"
        )
    if channels not in (1, 3):
        raise ValueError(f"Expected `channels` to be 1 or 3. Received: `channels={channels!r}`")
    image_size = 64 if image_size is None else image_size
    paths = list_image_files(directory)
    unreadable = find_unreadable(paths, channels, validate)
    if unreadable:
        report = (
            f"{len(unreadable)} of {len(paths)} files in `{directory}` are unreadable "
            f"(not a decodable JPEG/PNG), e.g. {unreadable[:_MAX_LISTED]}"
        )
        if on_error == "raise":
            raise ValueError(
                report + ". Remove or fix them, or pass `on_error='skip'` to leave them out."
            )
        logging.warning("%s; they are left out (on_error='skip').", report)
        dropped = set(unreadable)
        paths = [p for p in paths if p not in dropped]
        if not paths:
            raise ValueError(f"No readable image is left in `{directory}`.")

    def load(path):
        return pipeline.crop_and_resize(_decode(path, channels), image_size, crop_size)

    files = tf.data.Dataset.from_tensor_slices(paths)
    return files.map(load, num_parallel_calls=pipeline.AUTOTUNE), len(paths), image_size
