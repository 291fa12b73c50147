"""Image datasets that ship inside installed packages (no download, no network).

* ``digits``: scikit-learn's 1,797 handwritten digits (8×8, values 0..16),
  bilinearly upsampled to 16 or 32 px, one channel, with a deterministic,
  class-stratified held-out split (:func:`digits_split`) shared with the digits
  classifier used for evaluation.
* ``photo_patches``: random square crops of scikit-learn's two sample photos
  (``china.jpg``, ``flower.jpg``, 427×640 RGB), resized to ``image_size``; the
  ``train`` split crops from the left 75 % of each photo, ``test`` from the right
  25 %, so the two never share a pixel.
"""

import os

import numpy as np
import tensorflow as tf

from mmd_keras.datasets import pipeline

DIGITS_SIZES = (8, 16, 32)
DIGITS_SPLITS = ("train", "test", "all")
PHOTO_SPLITS = ("train", "test")
#: Fraction of each photo's width (from the left) used by the ``train`` split.
PHOTO_TRAIN_FRACTION = 0.75


def digits_split(seed=0, test_fraction=0.2):
    """The held-out split of scikit-learn's digits, deterministic in ``seed``.

    Class-stratified: within each class (0..9) the indices are permuted by
    ``np.random.default_rng(seed)`` (classes visited in order 0..9) and the first
    ``round(test_fraction * n_class)`` go to the test part. The default
    ``(seed=0, test_fraction=0.2)`` is the split used for training the offline
    default and for the digits classifier that scores it; both must call this
    function.

    Args:
        seed: int seed of the permutation.
        test_fraction: float in (0, 1), fraction of every class held out.

    Returns:
        ``(train_indices, test_indices)``: sorted int64 NumPy arrays into
        ``sklearn.datasets.load_digits()`` rows; disjoint, covering all 1,797.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            "Expected `test_fraction` in the open interval (0, 1). Received: "
            f"`test_fraction={test_fraction!r}`"
        )
    labels = _digits_raw()[1]
    rng = np.random.default_rng(seed)
    test = []
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        members = rng.permutation(members)
        test.append(members[: int(round(test_fraction * len(members)))])
    test = np.sort(np.concatenate(test)).astype(np.int64)
    train = np.setdiff1d(np.arange(len(labels), dtype=np.int64), test)
    return train, test


def _digits_raw():
    """``(images [1797, 8, 8] float32 in [0, 1], labels [1797] int64)``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    return images, bunch.target.astype(np.int64)


def digits_images(split="train", image_size=32, seed=0, test_fraction=0.2):
    """Digits as arrays, for evaluation code (classifier, metrics).

    Args:
        split: ``"train"``, ``"test"`` (the :func:`digits_split` parts) or ``"all"``.
        image_size: 8 (native), 16 or 32; upsampling is bilinear (half-pixel
            centres) on the [0, 1] intensities.
        seed, test_fraction: forwarded to :func:`digits_split`.

    Returns:
        ``(images [N, S, S, 1] float32 in [-1, 1], labels [N] int64)``: ink is +1,
        background -1.
    """
    if split not in DIGITS_SPLITS:
        raise ValueError(
            f"Expected `split` to be one of {DIGITS_SPLITS} for the digits dataset. "
            f"Received: `split={split!r}`"
        )
    if image_size not in DIGITS_SIZES:
        raise ValueError(
            f"Expected `image_size` to be one of {DIGITS_SIZES} for the digits dataset. "
            f"Received: `image_size={image_size!r}`"
        )
    images, labels = _digits_raw()
    if split != "all":
        train, test = digits_split(seed=seed, test_fraction=test_fraction)
        rows = train if split == "train" else test
        images, labels = images[rows], labels[rows]
    images = images[..., None]
    if image_size != 8:
        images = tf.image.resize(images, [image_size, image_size], method="bilinear").numpy()
    images = np.clip(images, 0.0, 1.0) * 2.0 - 1.0
    return images.astype(np.float32), labels


def digits_dataset(split, image_size, batch_size, **pipeline_kwargs):
    """``digits`` as a training stream of ``[B, S, S, 1]`` float32 in [-1, 1]."""
    image_size = 32 if image_size is None else image_size
    images, _ = digits_images(split, image_size)
    # Whole array in memory already: no cache stage needed.
    pipeline_kwargs.pop("cache", None)
    dataset = tf.data.Dataset.from_tensor_slices(images)
    return pipeline.finalize(dataset, batch_size, to_float=False, cache=False, **pipeline_kwargs)


def sample_photo_paths():
    """Paths of scikit-learn's bundled sample photos (``china.jpg``, ``flower.jpg``)."""
    import sklearn.datasets

    folder = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    paths = [os.path.join(folder, name) for name in ("china.jpg", "flower.jpg")]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(
            "The photo_patches dataset needs scikit-learn's sample photos, which were "
            f"not found at {missing}. Reinstall scikit-learn (`pip install --force-reinstall "
            "scikit-learn`)."
        )
    return paths


def _photos(split):
    """The two photos, restricted to the split's column range, as uint8 tensors."""
    photos = []
    for path in sample_photo_paths():
        photo = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        cut = int(round(PHOTO_TRAIN_FRACTION * int(photo.shape[1])))
        photos.append(photo[:, :cut] if split == "train" else photo[:, cut:])
    return photos


def photo_patches_dataset(
    split,
    image_size,
    batch_size,
    *,
    patch_size=None,
    num_patches=10_000,
    seed=0,
    repeat=True,
    **pipeline_kwargs,
):
    """Random square crops of the sample photos, ``[B, S, S, 3]`` float32 in [-1, 1].

    Crop ``i`` takes photo ``i % 2`` and a crop position drawn by
    ``tf.image.stateless_random_crop`` with seed ``[seed, i]``, so the stream is a
    function of ``seed`` alone. With ``repeat=True`` the stream is endless (fresh
    crops, never a replay); with ``repeat=False`` it holds ``num_patches`` crops.

    Args:
        split: ``"train"`` (left 75 % of each photo) or ``"test"`` (right 25 %).
        image_size: output side (default 32).
        patch_size: crop side before resizing (default ``2 * image_size``, at most
            the height of the test region's narrower side).
        num_patches: crops per pass when ``repeat=False``.
    """
    if split not in PHOTO_SPLITS:
        raise ValueError(
            f"Expected `split` to be one of {PHOTO_SPLITS} for photo_patches. "
            f"Received: `split={split!r}`"
        )
    image_size = 32 if image_size is None else image_size
    photos = _photos(split)
    max_side = min(min(int(p.shape[0]), int(p.shape[1])) for p in photos)
    patch_size = min(2 * image_size, max_side) if patch_size is None else patch_size
    if not isinstance(patch_size, int) or not 1 <= patch_size <= max_side:
        raise ValueError(
            f"Expected `patch_size` to be an int in [1, {max_side}] (the {split} region "
            f"of the photos is that small). Received: `patch_size={patch_size!r}`"
        )
    first, second = photos

    def crop(index):
        crop_seed = tf.stack([tf.cast(seed, tf.int64), index])
        size = [patch_size, patch_size, 3]
        patch = tf.cond(
            index % 2 == 0,
            lambda: tf.image.stateless_random_crop(first, size, seed=crop_seed),
            lambda: tf.image.stateless_random_crop(second, size, seed=crop_seed),
        )
        return pipeline.resize_uint8(patch, image_size)

    indices = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(num_patches)
    patches = indices.map(crop, num_parallel_calls=pipeline.AUTOTUNE)
    # Crops are already i.i.d.: no shuffle buffer (it would decode 10k crops up front).
    pipeline_kwargs.pop("cache", None)
    pipeline_kwargs.pop("shuffle", None)
    return pipeline.finalize(
        patches, batch_size, seed=seed, repeat=False, cache=False, shuffle=False,
        **pipeline_kwargs,
    )
