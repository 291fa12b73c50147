"""Offline datasets (digits, photo_patches, toys), image_folder and argument checks."""

import os

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from mmd_keras import datasets


def _take(dataset, count):
    return [batch.numpy() for batch in dataset.take(count)]


# --- digits ------------------------------------------------------------------------------


def test_digits_split_is_deterministic_stratified_and_disjoint():
    labels = load_digits().target
    train, test = datasets.digits_split(seed=0, test_fraction=0.2)
    again_train, again_test = datasets.digits_split(seed=0, test_fraction=0.2)
    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(test, again_test)
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    expected = {d: int(round(0.2 * np.sum(labels == d))) for d in range(10)}
    assert {d: int(np.sum(labels[test] == d)) for d in range(10)} == expected
    assert len(test) == 359  # hand value: sum of round(0.2 * class size)
    other = datasets.digits_split(seed=1)[1]
    assert len(other) == 359 and not np.array_equal(other, test)
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.digits_split(test_fraction=1.0)


def test_digits_images_match_sklearn():
    bunch = load_digits()
    _, test = datasets.digits_split()
    native, labels = datasets.digits_images("test", image_size=8)
    np.testing.assert_array_equal(labels, bunch.target[test])
    np.testing.assert_allclose(native[..., 0], bunch.images[test] / 8.0 - 1.0, atol=1e-6)
    up, _ = datasets.digits_images("test", image_size=32)
    assert up.shape == (359, 32, 32, 1) and up.min() >= -1.0 and up.max() <= 1.0
    # NumPy reference: separable linear interpolation at half-pixel centres, edges clamped.
    coords = np.clip((np.arange(32) + 0.5) / 4.0 - 0.5, 0.0, 7.0)
    low = np.floor(coords).astype(int)
    high = np.minimum(low + 1, 7)
    weight = coords - low
    unit = bunch.images[test] / 16.0
    rows = unit[:, low] * (1 - weight)[None, :, None] + unit[:, high] * weight[None, :, None]
    both = rows[:, :, low] * (1 - weight) + rows[:, :, high] * weight
    np.testing.assert_allclose(up[..., 0], both * 2.0 - 1.0, atol=1e-5)


def test_digits_pipeline_order_batches_and_drops_labels():
    expected, _ = datasets.digits_images("test", image_size=16)
    dataset = datasets.build_dataset(
        "digits", split="test", image_size=16, batch_size=50, shuffle=False, repeat=False
    )
    batches = _take(dataset, 100)
    assert len(batches) == 359 // 50  # drop_remainder
    np.testing.assert_array_equal(np.concatenate(batches), expected[:350])


def test_shuffle_is_seeded_and_start_batch_resumes():
    def stream(seed, start_batch=0):
        return _take(datasets.build_dataset(
            "digits", batch_size=64, seed=seed, deterministic=True, start_batch=start_batch
        ), 30)

    first, again, other = stream(1), stream(1), stream(2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    # 30 batches of 64 > 1438 images: the repeat reshuffles and keeps going.
    assert not np.array_equal(first[0], first[23])  # batch 23 lies in the second epoch
    resumed = stream(1, start_batch=25)
    np.testing.assert_array_equal(resumed[0], first[25])
    np.testing.assert_array_equal(resumed[4], first[29])


# --- photo patches -----------------------------------------------------------------------


def _locate(patch, photo):
    """(row, col) where `patch` occurs verbatim in `photo`, or None."""
    side = patch.shape[0]
    rows, cols = np.nonzero(np.all(photo[: -side + 1, : -side + 1] == patch[0, 0], axis=-1))
    for row, col in zip(rows, cols):
        if np.array_equal(photo[row : row + side, col : col + side], patch):
            return row, col
    return None


@pytest.mark.parametrize("split", ["train", "test"])
def test_photo_patches_are_real_crops_from_their_split(split):
    photos = [
        tf.io.decode_jpeg(tf.io.read_file(p), channels=3).numpy()
        for p in datasets.offline.sample_photo_paths()
    ]
    batch = _take(datasets.build_dataset(
        "photo_patches", split=split, image_size=16, batch_size=4, seed=3, shuffle=False,
        patch_size=16,
    ), 1)[0]
    again = _take(datasets.build_dataset(
        "photo_patches", split=split, image_size=16, batch_size=4, seed=3, shuffle=False,
        patch_size=16,
    ), 1)[0]
    np.testing.assert_array_equal(batch, again)
    pixels = np.round((batch + 1.0) * 127.5).astype(np.uint8)
    for index, patch in enumerate(pixels):
        photo = photos[index % 2]
        cut = int(round(0.75 * photo.shape[1]))
        region = photo[:, :cut] if split == "train" else photo[:, cut:]
        assert _locate(patch, region) is not None


def test_photo_patches_default_shape():
    (batch,) = _take(datasets.build_dataset("photo_patches", batch_size=3), 1)
    assert batch.shape == (3, 32, 32, 3) and batch.min() >= -1 and batch.max() <= 1


# --- 2-D toys ----------------------------------------------------------------------------


def test_mode_helpers_hand_values():
    ring = datasets.ring8_modes()
    np.testing.assert_allclose(ring[0], [2.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(ring[2], [0.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 2.0, atol=1e-6)
    grid = datasets.grid25_modes()
    assert grid.shape == (25, 2) and set(grid[:, 0]) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    samples = np.array([[2.0, 0.0], [2.05, 0.0], [0.0, 2.0], [1.0, 1.0]])
    counts, fraction = datasets.count_modes(samples, ring, std=0.02)
    # [2.05, 0] is 0.05 <= 3σ = 0.06 from mode 0; [1, 1] is 0.59 from mode 1: off-mode.
    np.testing.assert_array_equal(counts, [2, 0, 1, 0, 0, 0, 0, 0])
    assert fraction == 0.75


@pytest.mark.parametrize("name, num_modes", [("ring8", 8), ("grid25", 25)])
def test_toy_samples_sit_on_their_modes(name, num_modes):
    centres, std = datasets.toy_modes(name)
    (samples,) = _take(datasets.build_dataset(name, batch_size=5000, seed=4), 1)
    assert samples.shape == (5000, 2) and samples.dtype == np.float32
    counts, fraction = datasets.count_modes(samples, centres, std)
    assert fraction > 0.98  # a 2-D Gaussian holds 1 - exp(-9/2) = 98.9 % within 3σ
    assert counts.min() > 0.5 * 5000 / num_modes  # equal weights, all modes present
    nearest = np.argmin(np.linalg.norm(samples[:, None] - centres[None], axis=-1), axis=1)
    residual = samples - centres[nearest]
    np.testing.assert_allclose(residual.std(axis=0), std, rtol=0.1)
    np.testing.assert_allclose(residual.mean(axis=0), 0.0, atol=0.1 * std)


def test_moons_lie_on_the_two_arcs():
    (samples,) = _take(datasets.build_dataset("moons", batch_size=2000, seed=0), 1)
    distance = datasets.moons_distance(samples)
    assert np.median(distance) < 0.06 and np.mean(distance < 0.2) > 0.99
    upper = samples[:, 1] > 0.25  # the upper arc has y >= 0, the lower y <= 0.5
    # moons_distance against a brute-force reference on densely sampled arcs.
    t = np.linspace(0.0, np.pi, 4001)
    arcs = np.concatenate([np.stack([np.cos(t), np.sin(t)], 1),
                           np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)])
    points = np.random.default_rng(0).uniform(-2, 3, size=(300, 2))
    brute = np.min(np.linalg.norm(points[:, None] - arcs[None], axis=-1), axis=1)
    np.testing.assert_allclose(datasets.moons_distance(points), brute, atol=1e-5)
    assert 0.4 < upper.mean() < 0.6


def test_toy_stream_is_seeded_and_resumable():
    first = _take(datasets.build_dataset("ring8", batch_size=8, seed=5), 4)
    resumed = _take(datasets.build_dataset("ring8", batch_size=8, seed=5, start_batch=3), 1)
    np.testing.assert_array_equal(resumed[0], first[3])
    other = _take(datasets.build_dataset("ring8", batch_size=8, seed=6), 1)
    assert not np.array_equal(other[0], first[0])
    assert len(_take(datasets.build_dataset(
        "grid25", batch_size=10, repeat=False, num_samples=35), 10)) == 3


# --- image_folder ------------------------------------------------------------------------


def _write(path, image, kind="png"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    encode = tf.io.encode_png if kind == "png" else tf.io.encode_jpeg
    tf.io.write_file(path, encode(tf.constant(image, tf.uint8)))


@pytest.fixture
def folder(tmp_path, rng):
    images = [rng.integers(0, 256, size=(12, 20, 3), dtype=np.uint8) for _ in range(3)]
    _write(str(tmp_path / "a" / "0.png"), images[0])
    _write(str(tmp_path / "a" / "b" / "1.PNG"), images[1])
    _write(str(tmp_path / "c" / "2.png"), images[2])
    ramp = np.linspace(0, 255, 20)[None, :, None] * np.ones((12, 1, 3)) * [1.0, 0.5, 0.25]
    images.append(np.round(ramp).astype(np.uint8))  # smooth, so JPEG keeps it closely
    _write(str(tmp_path / "c" / "3.jpg"), images[3], kind="jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path, images


def test_image_folder_center_crops_exactly(folder):
    root, images = folder
    batches = _take(datasets.build_dataset(
        "image_folder", data_dir=str(root), image_size=12, batch_size=1, shuffle=False,
        repeat=False,
    ), 10)
    assert len(batches) == 4  # three PNGs (one upper-case) and a JPEG; the .txt is ignored
    for batch, image in zip(batches[:3], images[:3]):
        # Hand offsets: 12x20 → centred 12x12 square at columns 4..16.
        np.testing.assert_array_equal(batch[0], image[:, 4:16].astype(np.float32) / 127.5 - 1.0)
    assert np.abs(batches[3][0] - (images[3][:, 4:16] / 127.5 - 1.0)).max() < 0.1  # lossy JPEG


def test_image_folder_reports_unreadable_files(folder):
    root, _ = folder
    (root / "c" / "broken.jpg").write_bytes(b"not a jpeg at all")
    good = open(root / "a" / "0.png", "rb").read()
    (root / "c" / "truncated.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError) as info:
        datasets.build_dataset("image_folder", data_dir=str(root), image_size=8)
    message = str(info.value)
    assert "2 of 6 files" in message
    assert "broken.jpg" in message and "truncated.png" in message
    skipped = datasets.build_dataset(
        "image_folder", data_dir=str(root), image_size=8, batch_size=1, repeat=False,
        on_error="skip",
    )
    assert len(_take(skipped, 10)) == 4
    # A header-only check finds the bad signature but not the truncated PNG.
    header = datasets.folder.find_unreadable(
        datasets.folder.list_image_files(str(root)), validate="header"
    )
    assert [os.path.basename(p) for p in header] == ["broken.jpg"]


def test_image_folder_reads_a_bucket_like_a_local_folder(folder):
    """A folder on a ``tf.io.gfile`` filesystem (``ram://``, the stand-in for ``gs://`` where a
    Cloud TPU reads its data) gives the same files in the same order, the same images and the
    same report of unreadable files as the local copy."""
    import uuid

    root, _ = folder
    (root / "c" / "broken.jpg").write_bytes(b"not a jpeg at all")
    bucket = f"ram://folder-{uuid.uuid4().hex[:8]}/images"
    for path in datasets.folder.list_image_files(str(root)):
        target = bucket + path[len(str(root)):]
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.copy(path, target, overwrite=True)
    listed = datasets.folder.list_image_files(bucket)
    assert [p[len(bucket):] for p in listed] == [
        p[len(str(root)):] for p in datasets.folder.list_image_files(str(root))]
    assert listed[0] == f"{bucket}/a/0.png" and listed[1] == f"{bucket}/a/b/1.PNG"
    assert [os.path.basename(p) for p in datasets.folder.find_unreadable(
        listed, validate="header")] == ["broken.jpg"]
    read = {name: _take(datasets.build_dataset(
        "image_folder", data_dir=name, image_size=12, batch_size=1, shuffle=False, repeat=False,
        on_error="skip"), 10) for name in (str(root), bucket)}
    assert len(read[bucket]) == 4
    np.testing.assert_array_equal(np.stack(read[bucket]), np.stack(read[str(root)]))


def test_image_folder_empty_or_missing_is_an_error(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no image"):
        datasets.build_dataset("image_folder", data_dir=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="data_dir"):
        datasets.build_dataset("image_folder", data_dir=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="data_dir"):
        datasets.build_dataset("image_folder")


# --- arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "cifar100"}, "name"),
        ({"name": "digits", "batch_size": 0}, "batch_size"),
        ({"name": "digits", "image_size": -1}, "image_size"),
        ({"name": "digits", "image_size": 64}, "image_size"),
        ({"name": "digits", "split": "validation"}, "split"),
        ({"name": "photo_patches", "split": "all"}, "split"),
        ({"name": "photo_patches", "patch_size": 1000}, "patch_size"),
        ({"name": "ring8", "std": 0.0}, "std"),
        ({"name": "digits", "celeba_crop": 100}, "options"),
        ({"name": "digits", "start_batch": -1}, "start_batch"),
        ({"name": "celeb_a", "celeba_crop": 500}, "celeba_crop"),
        ({"name": "image_folder", "data_dir": ".", "validate": "some"}, "validate"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.build_dataset(**kwargs)


def test_registry_and_shapes():
    assert {"cifar10", "stl10", "celeb_a", "image_folder", "digits", "ring8"} <= set(
        datasets.DATASETS
    )
    assert datasets.dataset_shape("digits", 16) == (16, 16, 1)
    assert datasets.dataset_shape("imagenet64") == (64, 64, 3)
    assert datasets.dataset_shape("moons") == (2,)
