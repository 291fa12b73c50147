"""mmd_keras.datasets.idx: MNIST / Fashion-MNIST from IDX files or mnist.npz (issue 15).

The readers are checked on tiny files each test writes itself (IDX headers written by hand
with ``struct``), and once on the real MNIST files when ``<repo>/../shared/data/mnist`` exists.
"""

import gzip
import os
import struct

import numpy as np
import pytest

from mmd_keras import datasets
from mmd_keras.datasets import idx

# CI keeps the real files beside the repository; MMD_KERAS_TEST_MNIST points elsewhere (a git
# worktree of the repository sits in another folder).
REAL_MNIST = os.environ.get("MMD_KERAS_TEST_MNIST") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "mnist")
TINY = {"train": 70, "test": 20}


def idx_bytes(array, magic_type=0x08):
    """An IDX file's bytes written by hand: 2 zero bytes, type, rank, big-endian dims, data."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, magic_type, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write(path, payload, gz=False):
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as handle:
            handle.write(payload)
        return str(path) + ".gz"
    path.write_bytes(payload)
    return str(path)


def tiny_arrays(split, seed=0):
    rng = np.random.default_rng(seed + (split == "test"))
    n = TINY[split]
    return (rng.integers(0, 256, (n, 28, 28)).astype(np.uint8),
            rng.integers(0, 10, n).astype(np.uint8))


def write_idx_folder(folder, gz=False, seed=0):
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = tiny_arrays(split, seed)
        write(folder / f"{prefix}-images-idx3-ubyte", idx_bytes(images), gz)
        write(folder / f"{prefix}-labels-idx1-ubyte", idx_bytes(labels), gz)


@pytest.fixture
def tiny_counts(monkeypatch):
    """The standard-count check expects the tiny files' counts."""
    for split, n in TINY.items():
        monkeypatch.setitem(idx.SPLIT_SIZES, split, n)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_read_back_exactly(tmp_path, tiny_counts, gz):
    write_idx_folder(tmp_path, gz=gz)
    for split in ("train", "test"):
        images, labels, source = idx.load_files("mnist", split, tmp_path)
        expected_images, expected_labels = tiny_arrays(split)
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(labels, expected_labels)
        assert source["format"] == "idx" and source["images"].endswith(".gz") == gz


def test_npz_layout_reads_back_exactly(tmp_path, tiny_counts):
    (x_train, y_train), (x_test, y_test) = tiny_arrays("train"), tiny_arrays("test")
    np.savez(tmp_path / "fashion_mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test,
             y_test=y_test)
    images, labels, source = idx.load_files("fashion_mnist", "test", tmp_path)
    np.testing.assert_array_equal(images, x_test)
    np.testing.assert_array_equal(labels, y_test)
    assert source == {"format": "npz", "path": str(tmp_path / "fashion_mnist.npz")}


def test_build_dataset_streams_the_files_in_unit_range(tmp_path, tiny_counts):
    write_idx_folder(tmp_path, gz=True)
    batch = next(iter(datasets.build_dataset("mnist", "test", batch_size=8, data_dir=str(tmp_path),
                                             shuffle=False, repeat=False)))
    expected = tiny_arrays("test")[0][:8, :, :, None].astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(batch.numpy(), expected, atol=1e-6)
    resized = next(iter(datasets.build_dataset("mnist", batch_size=4, data_dir=str(tmp_path),
                                               image_size=32, shuffle=False)))
    assert resized.shape == (4, 32, 32, 1)
    images, labels = datasets.mnist_images("train", str(tmp_path))
    assert images.shape == (TINY["train"], 28, 28, 1) and images.min() >= -1 and images.max() <= 1
    np.testing.assert_array_equal(labels, tiny_arrays("train")[1])
    # Read directly: TFDS was not asked, so it left no version folder among the files.
    assert all(name.endswith("ubyte.gz") for name in os.listdir(tmp_path))


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_idx_file_is_an_error_naming_it(tmp_path, tiny_counts, gz):
    write_idx_folder(tmp_path)
    images, _ = tiny_arrays("train")
    (tmp_path / "train-images-idx3-ubyte").unlink()
    payload = idx_bytes(images)
    if gz:  # a gzip stream cut short
        compressed = gzip.compress(payload)
        (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(compressed[: len(compressed) // 2])
        name = "train-images-idx3-ubyte.gz"
    else:
        (tmp_path / "train-images-idx3-ubyte").write_bytes(payload[:-100])
        name = "train-images-idx3-ubyte"
    with pytest.raises(idx.BadDatasetFileError, match=name) as error:
        idx.load_files("mnist", "train", tmp_path)
    assert "truncated" in str(error.value)


def test_wrong_magic_number_is_an_error_naming_the_file(tmp_path, tiny_counts):
    write_idx_folder(tmp_path)
    # Labels where the images should be: magic 0x0801 instead of 0x0803.
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(tiny_arrays("test")[1]))
    with pytest.raises(idx.BadDatasetFileError, match="t10k-images-idx3-ubyte.*0x00000801"):
        idx.load_files("mnist", "test", tmp_path)
    # Signed-int type byte (0x0C) is not MNIST's unsigned bytes.
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(tiny_arrays("test")[0], magic_type=0x0C))
    with pytest.raises(idx.BadDatasetFileError, match="magic"):
        idx.load_files("mnist", "test", tmp_path)


def test_inconsistent_counts_shapes_and_labels_are_errors(tmp_path, monkeypatch):
    write_idx_folder(tmp_path)
    with pytest.raises(idx.BadDatasetFileError, match="Expected 60000 train images"):
        idx.load_files("mnist", "train", tmp_path)  # the standard count
    monkeypatch.setitem(idx.SPLIT_SIZES, "train", TINY["train"])
    images, labels = tiny_arrays("train")
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(labels[:-1]))
    with pytest.raises(idx.BadDatasetFileError, match="one per image"):
        idx.load_files("mnist", "train", tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.full_like(labels, 11)))
    with pytest.raises(idx.BadDatasetFileError, match="0..9"):
        idx.load_files("mnist", "train", tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(images[:, :27, :27]))
    with pytest.raises(idx.BadDatasetFileError, match=r"\[N, 28, 28\]"):
        idx.load_files("mnist", "train", tmp_path)


def test_npz_with_wrong_keys_is_an_error_naming_it(tmp_path):
    np.savez(tmp_path / "mnist.npz", images=np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(idx.BadDatasetFileError, match="mnist.npz"):
        idx.load_files("mnist", "train", tmp_path)


def test_nothing_found_lists_the_three_ways(tmp_path):
    with pytest.raises(datasets.DatasetNotAvailableError) as error:
        datasets.build_dataset("fashion_mnist", data_dir=str(tmp_path))
    message = str(error.value)
    for way in ("tfds build fashion_mnist", "train-images-idx3-ubyte", "fashion_mnist.npz",
                str(tmp_path)):
        assert way in message
    with pytest.raises(ValueError, match="split"):
        idx.load_files("mnist", "validation", tmp_path)


@pytest.mark.skipif(not os.path.isdir(REAL_MNIST), reason="no <repo>/../shared/data/mnist")
def test_real_mnist_counts_labels_and_pixels():
    train_images, train_labels, source = idx.load_arrays("mnist", "train", REAL_MNIST)
    test_images, test_labels, _ = idx.load_arrays("mnist", "test", REAL_MNIST)
    assert source["format"] == "idx"
    assert train_images.shape == (60_000, 28, 28) and test_images.shape == (10_000, 28, 28)
    np.testing.assert_array_equal(train_labels[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    np.testing.assert_array_equal(np.bincount(test_labels, minlength=10),
                                  [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert np.bincount(train_labels).sum() == 60_000
    assert train_images.dtype == np.uint8 and train_images.max() == 255 and train_images.min() == 0
    batch = next(iter(datasets.build_dataset("mnist", batch_size=64, data_dir=REAL_MNIST)))
    assert batch.shape == (64, 28, 28, 1)
