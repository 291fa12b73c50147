"""TFDS-backed datasets on tfds.testing.mock_data, and the fast offline error."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mmd_keras import datasets

EXPECTED = {
    "cifar10": (32, 3),
    "stl10": (48, 3),
    "celeb_a": (64, 3),
    "downsampled_imagenet/64x64": (64, 3),
    "lsun/bedroom": (64, 3),
    "mnist": (28, 1),
    "fashion_mnist": (28, 1),
}


def _is_pixel_grid(values):
    """True when every value is k / 127.5 - 1 for an integer k in [0, 255]."""
    k = (values.astype(np.float64) + 1.0) * 127.5
    return bool(np.all(np.abs(k - np.round(k)) < 1e-3) and k.min() >= -1e-3 and k.max() <= 255.001)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tfds_shapes_and_range(name):
    size, channels = EXPECTED[name]
    with tfds.testing.mock_data(num_examples=4):
        batches = datasets.build_dataset(name, batch_size=3, seed=1).take(2)
        batches = [b.numpy() for b in batches]  # the second batch wraps around (repeat)
    for batch in batches:
        assert batch.shape == (3, size, size, channels)
        assert batch.dtype == np.float32
        assert batch.min() >= -1.0 and batch.max() <= 1.0
        assert _is_pixel_grid(batch)  # uint8 pixels mapped by x/127.5 - 1
    assert datasets.dataset_shape(name) == (size, size, channels)


def test_cifar10_passes_pixels_through_unchanged():
    with tfds.testing.mock_data(num_examples=8):
        raw = tfds.load("cifar10", split="train", shuffle_files=False)
        expected = np.stack([ex["image"] for ex in raw.take(8).as_numpy_iterator()])
        batch = next(iter(datasets.build_dataset(
            "cifar10", split="train", batch_size=8, shuffle=False, repeat=False
        ))).numpy()
    np.testing.assert_array_equal(batch, expected.astype(np.float32) / 127.5 - 1.0)


def test_celeb_a_center_crop_160():
    with tfds.testing.mock_data(num_examples=3):
        raw = tfds.load("celeb_a", split="train", shuffle_files=False)
        faces = np.stack([ex["image"] for ex in raw.take(2).as_numpy_iterator()])
        batch = next(iter(datasets.build_dataset(
            "celeb_a", image_size=160, batch_size=2, shuffle=False, repeat=False
        ))).numpy()
        crop64 = next(iter(datasets.build_dataset(
            "celeba", batch_size=2, shuffle=False, repeat=False
        ))).numpy()
    assert faces.shape[1:] == (218, 178, 3)
    # Hand offsets: ((218 - 160) // 2, (178 - 160) // 2) = (29, 9).
    crop = faces[:, 29:189, 9:169]
    np.testing.assert_array_equal(batch, crop.astype(np.float32) / 127.5 - 1.0)
    # 64 px = the same crop shrunk 2.5x: its mean colour is preserved.
    np.testing.assert_allclose(
        crop64.mean(axis=(1, 2)), (crop / 127.5 - 1.0).mean(axis=(1, 2)), atol=0.02
    )


def test_stl10_defaults_to_unlabelled_and_resizes_96_to_48():
    with tfds.testing.mock_data(num_examples=4):
        raw = tfds.load("stl10", split="unlabelled", shuffle_files=False)
        image = next(raw.as_numpy_iterator())["image"]
        batch = next(iter(datasets.build_dataset(
            "stl10", batch_size=1, shuffle=False, repeat=False
        ))).numpy()
    assert image.shape == (96, 96, 3)
    # The whole 96x96 frame is kept (no crop): the mean colour per channel is preserved.
    np.testing.assert_allclose(
        batch[0].mean(axis=(0, 1)), image.mean(axis=(0, 1)) / 127.5 - 1.0, atol=0.01
    )


def test_absent_dataset_fails_fast_with_instructions(tmp_path):
    with pytest.raises(datasets.DatasetNotAvailableError) as info:
        datasets.build_dataset("cifar10", data_dir=str(tmp_path))
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, FileNotFoundError)
    message = str(error)
    assert "`cifar10`" in message and str(tmp_path) in message
    assert "data_dir" in message and "download=True" in message and "tfds build" in message


@pytest.mark.parametrize("name", ["cifar10", "mnist"])  # mnist: TFDS first, then the files
def test_absent_dataset_logs_nothing_about_folders_that_do_not_exist(tmp_path, name):
    """TFDS's `load(download=False)` probed `<data_dir>/<name>/<version>` and logged "Variant
    folder … has no dataset_info.json" about a folder that does not exist."""
    import logging

    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("absl")
    logger.addHandler(handler)
    try:
        with pytest.raises(datasets.DatasetNotAvailableError):
            datasets.build_dataset(name, data_dir=str(tmp_path))
    finally:
        logger.removeHandler(handler)
    assert not [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert os.listdir(tmp_path) == []  # nothing created either


def test_absent_manual_dataset_suggests_image_folder(tmp_path):
    with pytest.raises(datasets.DatasetNotAvailableError, match="image_folder"):
        datasets.build_dataset("lsun", data_dir=str(tmp_path))


def test_estimated_cache_size_decides_caching():
    source = "cifar10"
    estimate = datasets.tfds_sources._estimated_bytes
    assert estimate(source, "train", 32) == 50_000 * 32 * 32 * 3
    assert estimate(source, "train[:1000]", 32) == 1000 * 32 * 32 * 3
    assert estimate(source, "train[49000:]", 32) == 1000 * 32 * 32 * 3
    assert estimate(source, "train+test", 32) is None
    lsun = "lsun/bedroom"
    resolve = datasets.pipeline.resolve_cache
    assert resolve("auto", estimate(source, "train", 32)) == ""  # 147 MiB: memory
    assert resolve("auto", estimate(lsun, "train", 64)) is False  # 37 GB: no cache
    assert resolve("auto", None) is False
    with pytest.raises(ValueError, match="cache"):
        resolve(3, None)
