"""MNIST and Fashion-MNIST without TFDS: the four IDX files or Keras's ``mnist.npz``.

``build_dataset("mnist", ...)`` (and ``fashion_mnist``) reads the files below when
``data_dir`` holds them, else TFDS when the dataset is prepared there (or in TFDS's default
folder), else the files in Keras's download cache ``~/.keras/datasets``:

* the four IDX files as distributed (gzipped or not; ``-idx3-ubyte`` or ``.idx3-ubyte``)::

      train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
      t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]

* a Keras-layout ``mnist.npz`` (``fashion_mnist.npz``) with ``x_train [60000, 28, 28]``,
  ``y_train``, ``x_test [10000, 28, 28]``, ``y_test`` (uint8).

Every file is validated (IDX magic number 0x0803 / 0x0801, dimensions, exact byte
length, image/label counts, labels 0..9, the standard 60,000 / 10,000 counts); a bad
file raises :class:`BadDatasetFileError` naming it. Split ``"train"`` is the 60,000
training images, ``"test"`` the 10,000 test images (paper 1, §5: the held-out reference
of the scores).
"""

import gzip
import os
import struct

import numpy as np

from mmd_keras.datasets import pipeline, tfds_sources
from mmd_keras.datasets.tfds_sources import DatasetNotAvailableError

IDX_DATASETS = ("mnist", "fashion_mnist")
SPLITS = ("train", "test")
#: Images per split of both datasets (the files are checked against it).
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
IMAGE_SHAPE = (28, 28)
#: IDX magic numbers: 0x08 = unsigned byte, then the number of dimensions.
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
_PREFIX = {"train": "train", "test": "t10k"}


class BadDatasetFileError(ValueError):
    """A dataset file is truncated, of the wrong kind or inconsistent; names the file."""


def idx_file_names(split, kind):
    """Accepted names of one IDX file, in lookup order (``kind``: images or labels)."""
    stem = f"{_PREFIX[split]}-{kind}"
    rank = 3 if kind == "images" else 1
    names = [f"{stem}-idx{rank}-ubyte", f"{stem}.idx{rank}-ubyte"]
    return [name + suffix for name in names for suffix in ("", ".gz")]


def _read_bytes(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                return handle.read()
        with open(path, "rb") as handle:
            return handle.read()
    except (EOFError, OSError, gzip.BadGzipFile) as error:  # truncated or not gzip
        raise BadDatasetFileError(
            f"Cannot read dataset file `{path}`: {type(error).__name__}: {error} "
            "(truncated download or not a gzip file; download it again).") from error


def read_idx(path, magic):
    """Reads one IDX file of unsigned bytes and checks its header and length.

    Args:
        path: the file (``.gz`` is decompressed).
        magic: the expected magic number (:data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`).

    Returns:
        uint8 array of the shape the header declares.

    Raises:
        BadDatasetFileError: wrong magic number, or a byte length that does not match the
            header (truncated or padded); the message names ``path``.
    """
    data = _read_bytes(path)
    rank = magic & 0xFF
    header = 4 + 4 * rank
    if len(data) < header:
        raise BadDatasetFileError(
            f"Expected an IDX file with a {header}-byte header in `{path}`. "
            f"Received: {len(data)} bytes (truncated).")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise BadDatasetFileError(
            f"Expected IDX magic number {magic:#010x} in `{path}`. Received: {found:#010x} "
            "(not this kind of IDX file; images and labels swapped?).")
    dims = struct.unpack(f">{rank}I", data[4:header])
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise BadDatasetFileError(
            f"Expected {expected} bytes in `{path}` (header dims {list(dims)}). Received: "
            f"{len(data)} bytes ({'truncated' if len(data) < expected else 'trailing data'}).")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _check_split(images, labels, where, split, expected_count):
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise BadDatasetFileError(
            f"Expected {split} images of shape [N, 28, 28] in `{where}`. Received: "
            f"{list(images.shape)}")
    if labels.shape != (len(images),):
        raise BadDatasetFileError(
            f"Expected {len(images)} {split} labels (one per image) in `{where}`. Received: "
            f"shape {list(labels.shape)}")
    if expected_count is not None and len(images) != expected_count:
        raise BadDatasetFileError(
            f"Expected {expected_count} {split} images in `{where}`. Received: {len(images)}")
    if len(labels) and int(labels.max()) > 9:
        raise BadDatasetFileError(
            f"Expected {split} labels in 0..9 in `{where}`. Received: max {int(labels.max())}")


def _find_idx(folder, split):
    paths = {}
    for kind in ("images", "labels"):
        found = [os.path.join(folder, n) for n in idx_file_names(split, kind)
                 if os.path.isfile(os.path.join(folder, n))]
        if not found:
            return None
        paths[kind] = found[0]
    return paths


def _search_folders(name, data_dir):
    if data_dir is not None:
        return [os.fspath(data_dir)]
    keras_dir = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
    return [keras_dir, os.path.join(keras_dir, name.replace("_", "-"))]


def _not_found(name, data_dir, tfds_error=None):
    folders = _search_folders(name, data_dir)
    tfds_note = f" TFDS said: {tfds_error}" if tfds_error else ""
    return DatasetNotAvailableError(
        f"Dataset `{name}` not found (looked for TFDS data and for files in {folders}). "
        "Provide it in one of three ways: (1) TFDS: on a machine with network access run "
        f"`tfds build {name} --data_dir DIR` and pass `data_dir=DIR` (flag `--data_dir`); "
        "(2) the four IDX files as distributed, gzipped or not (train-images-idx3-ubyte, "
        "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte[.gz]) in "
        f"`data_dir`; (3) Keras's `{name}.npz` (arrays x_train, y_train, x_test, y_test) in "
        f"`data_dir`.{tfds_note}")


def load_files(name, split, data_dir=None, expected_count="standard"):
    """``(images uint8 [N, 28, 28], labels uint8 [N], source)`` from IDX or npz files.

    Args:
        name: ``"mnist"`` or ``"fashion_mnist"`` (names the npz file and the error).
        split: ``"train"`` or ``"test"``.
        data_dir: folder of the files; None looks in Keras's ``~/.keras/datasets``.
        expected_count: ``"standard"`` (60,000 / 10,000), an int, or None (any count).

    Returns:
        The arrays and a JSON-able description of the files read, or None when no file
        of either layout is in the searched folders.

    Raises:
        BadDatasetFileError: a file exists but is invalid (named in the message).
    """
    if split not in SPLITS:
        raise ValueError(f"Expected `split` in {SPLITS} for {name}. Received: `split={split!r}`")
    if expected_count == "standard":
        expected_count = SPLIT_SIZES[split]
    for folder in _search_folders(name, data_dir):
        paths = _find_idx(folder, split)
        if paths is not None:
            images = read_idx(paths["images"], IMAGES_MAGIC)
            labels = read_idx(paths["labels"], LABELS_MAGIC)
            where = f"{paths['images']}` and `{paths['labels']}"
            _check_split(images, labels, where, split, expected_count)
            return images, labels, {"format": "idx", **paths}
        npz = os.path.join(folder, f"{name}.npz")
        if os.path.isfile(npz):
            images, labels = _read_npz(npz, split)
            _check_split(images, labels, npz, split, expected_count)
            return images, labels, {"format": "npz", "path": npz}
    return None


def _read_npz(path, split):
    keys = (f"x_{split}", f"y_{split}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise BadDatasetFileError(
                    f"Expected arrays x_train, y_train, x_test, y_test in `{path}`. "
                    f"Received: {sorted(data.files)}")
            images, labels = data[keys[0]], data[keys[1]]
    except (OSError, ValueError, EOFError) as error:
        if isinstance(error, BadDatasetFileError):
            raise
        raise BadDatasetFileError(f"Cannot read `{path}` as an npz archive: {error}") from error
    if images.dtype != np.uint8 or not np.issubdtype(labels.dtype, np.integer):
        raise BadDatasetFileError(
            f"Expected uint8 `{keys[0]}` and integer `{keys[1]}` in `{path}`. Received: "
            f"{images.dtype}, {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise BadDatasetFileError(f"Expected {split} labels in 0..9 in `{path}`.")
    return images, labels.astype(np.uint8)


def files_present(name, data_dir):
    """Whether an explicit ``data_dir`` holds this dataset's IDX files or npz (not read).

    Such a folder is not a TFDS folder: it is read directly, without asking TFDS, which
    would leave an empty version folder in it.
    """
    if data_dir is None:
        return False
    folder = os.fspath(data_dir)
    return (_find_idx(folder, "train") is not None or _find_idx(folder, "test") is not None
            or os.path.isfile(os.path.join(folder, f"{name}.npz")))


def _load_tfds_arrays(name, split, data_dir):
    """``(images, labels, source)`` from prepared TFDS data, or ``(None, error_text)``."""
    if files_present(name, data_dir):
        return None, "data_dir holds the files"
    try:
        import tensorflow_datasets as tfds

        data = tfds.as_numpy(tfds_sources.load_prepared(name, split, data_dir, batch_size=-1))
    except (ImportError, AssertionError, OSError) as error:
        return None, (str(error).splitlines() or [type(error).__name__])[0]
    return (data["image"][..., 0].astype(np.uint8), data["label"].astype(np.uint8),
            {"format": "tfds", "data_dir": data_dir}), None


def load_arrays(name="mnist", split="train", data_dir=None):
    """The whole split as arrays, from TFDS when prepared, else from the files.

    Returns:
        ``(images uint8 [N, 28, 28], labels uint8 [N], source dict)``.

    Raises:
        DatasetNotAvailableError: neither TFDS data nor files; the message lists the three
            ways to provide the dataset.
        BadDatasetFileError: a file exists but is invalid.
    """
    if name not in IDX_DATASETS:
        raise ValueError(f"Expected `name` in {IDX_DATASETS}. Received: `name={name!r}`")
    if split not in SPLITS:
        raise ValueError(f"Expected `split` in {SPLITS} for {name}. Received: `split={split!r}`")
    loaded, tfds_error = _load_tfds_arrays(name, split, data_dir)
    if loaded is not None:
        return loaded
    loaded = load_files(name, split, data_dir)
    if loaded is None:
        raise _not_found(name, data_dir, tfds_error)
    return loaded


def mnist_images(split="test", data_dir=None, name="mnist"):
    """Images as float32 ``[N, 28, 28, 1]`` in ``[-1, 1]`` (ink +1) and int64 labels ``[N]``."""
    images, labels, _ = load_arrays(name, split, data_dir)
    return pipeline_to_unit(images), labels.astype(np.int64)


def pipeline_to_unit(images):
    """uint8 ``[N, 28, 28]`` → float32 ``[N, 28, 28, 1]`` in ``[-1, 1]`` (``x / 127.5 - 1``)."""
    return (images.astype(np.float32) / 127.5 - 1.0)[..., None]


def file_images(name, split, image_size, data_dir, tfds_error=None):
    """The files' split as a ``tf.data`` stream of uint8 ``[S, S, 1]`` images.

    Returns:
        ``(images_dataset, estimated_bytes, image_size)`` like
        :func:`mmd_keras.datasets.tfds_sources.load_tfds_images`.
    """
    import tensorflow as tf

    split = "train" if split is None else split
    loaded = load_files(name, split, data_dir)
    if loaded is None:
        raise _not_found(name, data_dir, tfds_error)
    images = loaded[0][..., None]
    size = 28 if image_size is None else image_size
    dataset = tf.data.Dataset.from_tensor_slices(images)
    if size != 28:
        dataset = dataset.map(lambda image: pipeline.resize_uint8(image, size),
                              num_parallel_calls=pipeline.AUTOTUNE)
    return dataset, len(images) * size * size, size
