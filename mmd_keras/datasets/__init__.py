"""Training data for MMD GANs: ``build_dataset(name, split, image_size, batch_size, ...)``.

=============================  ========  ======  ==========================================
name                           default   chan.   source
                               size
=============================  ========  ======  ==========================================
cifar10                        32        3       TFDS ``cifar10``
stl10                          48        3       TFDS ``stl10`` split ``unlabelled``, 96→48
celeb_a                        64        3       TFDS ``celeb_a``, centre crop 160, resize
downsampled_imagenet/64x64     64        3       TFDS ``downsampled_imagenet/64x64``
lsun/bedroom                   64        3       TFDS ``lsun/bedroom``, centre square, resize
mnist, fashion_mnist           28        1       TFDS, else IDX files / ``mnist.npz`` in
                                                 ``data_dir`` (:mod:`.idx`)
image_folder                   64        3       JPEG/PNG tree at ``data_dir``
digits                         32        1       scikit-learn digits (offline), 16/32 px
photo_patches                  32        3       crops of scikit-learn's photos (offline)
ring8, grid25, moons           —         —       2-D toys ``[B, 2]`` (offline)
=============================  ========  ======  ==========================================

Images come as float32 ``[B, H, W, C]`` in [-1, 1]; labels are dropped.
"""

from mmd_keras import catalog
from mmd_keras.datasets import folder, idx, offline, pipeline, tfds_sources, toys
from mmd_keras.datasets.idx import BadDatasetFileError, mnist_images
from mmd_keras.datasets.offline import digits_images, digits_split
from mmd_keras.datasets.pipeline import to_uint8, to_unit_range
from mmd_keras.datasets.tfds_sources import DatasetNotAvailableError
from mmd_keras.datasets.toys import (
    count_modes,
    grid25_modes,
    moons_distance,
    ring8_modes,
    toy_modes,
)

#: Every accepted dataset name (aliases excluded; see ``tfds_sources.ALIASES``), from
#: :data:`mmd_keras.catalog.DATASETS` (with each one's channels).
DATASETS = tuple(catalog.DATASETS)

__all__ = [
    "DATASETS",
    "BadDatasetFileError",
    "DatasetNotAvailableError",
    "build_dataset",
    "count_modes",
    "dataset_shape",
    "digits_images",
    "digits_split",
    "grid25_modes",
    "mnist_images",
    "moons_distance",
    "ring8_modes",
    "to_uint8",
    "to_unit_range",
    "toy_modes",
]


def canonical_name(name):
    """The registry name for ``name`` (resolving aliases); ValueError if unknown."""
    name = tfds_sources.ALIASES.get(name, name)
    if name not in DATASETS:
        raise ValueError(
            f"Expected `name` to be one of {sorted(DATASETS)} (aliases: "
            f"{sorted(tfds_sources.ALIASES)}). Received: `name={name!r}`"
        )
    return name


def dataset_shape(name, image_size=None):
    """Shape of one example, without reading any data: ``(H, W, C)`` or ``(2,)``.

    ``image_folder`` assumes 3 channels (the default of ``channels=``).
    """
    name = canonical_name(name)
    if name in toys.TOYS:
        return (2,)
    if name in tfds_sources.TFDS_SOURCES:
        source = tfds_sources.TFDS_SOURCES[name]
        size = source.native_size if image_size is None else image_size
        return (size, size, catalog.DATASETS[name].channels)
    size = {"digits": 32, "photo_patches": 32, "image_folder": 64}[name]
    size = size if image_size is None else image_size
    return (size, size, catalog.DATASETS[name].channels)


def build_dataset(
    name,
    split=None,
    image_size=None,
    batch_size=64,
    data_dir=None,
    shuffle=True,
    repeat=True,
    seed=0,
    *,
    deterministic=True,
    cache="auto",
    shuffle_buffer=10_000,
    start_batch=0,
    download=False,
    batches_per_step=1,
    **options,
):
    """A ``tf.data.Dataset`` of training batches for one dataset.

    Args:
        name: one of :data:`DATASETS` (table above) or an alias (``celeba``,
            ``imagenet64``, ``lsun``).
        split: dataset split; ``None`` = training split. TFDS datasets accept any
            TFDS split string; digits ``"train"``/``"test"``/``"all"`` (see
            :func:`digits_split`); photo_patches ``"train"``/``"test"``; ignored by
            image_folder and the toys.
        image_size: output side in pixels; ``None`` = the dataset's default size.
        batch_size: examples per batch (every batch is full: ``drop_remainder``).
        data_dir: TFDS data folder, or the image folder for ``image_folder``; for
            mnist / fashion_mnist also the folder of the four IDX files or ``mnist.npz``
            (used when TFDS has no prepared copy; see :mod:`mmd_keras.datasets.idx`).
        shuffle: shuffle examples (and TFDS files) with ``seed``.
        repeat: repeat forever (``model.fit(..., steps_per_epoch=...)``).
        seed: seed of shuffling and of the offline generators' stateless RNG.
        deterministic: keep element order in parallel stages (default): the stream
            is a function of ``seed`` (given the same files). False lets tf.data
            reorder parallel map outputs for a little more speed.
        cache: ``"auto"`` (in memory when the uint8 split fits in 1 GiB), True,
            False or a file prefix.
        shuffle_buffer: shuffle buffer size.
        start_batch: skip this many batches (resume at a generator step).
        download: let TFDS download an absent dataset (default False: fail fast
            with :class:`DatasetNotAvailableError`).
        batches_per_step: 1 (default) gives ``[batch_size, ...]`` batches; ``n > 1`` gives
            one element per generator step holding its ``n`` fresh real batches
            ``[batch_size, n, ...]`` (:func:`pipeline.stack_batches`; ``n`` =
            `mmd_keras.models.real_batches_per_step` feeds every critic step and the
            generator step a new batch, as the papers' codes do).
        **options: per-source options — ``celeba_crop`` (celeb_a); ``channels``,
            ``crop_size``, ``validate``, ``on_error`` (image_folder); ``patch_size``,
            ``num_patches`` (photo_patches); ``std``, ``num_samples`` (toys).

    Returns:
        Dataset of float32 ``[batch_size, H, W, C]`` images in [-1, 1], or
        ``[batch_size, 2]`` for the toys (``[batch_size, n, ...]`` with
        ``batches_per_step=n > 1``).

    Raises:
        ValueError: unknown name, bad argument, empty/unreadable image folder.
        DatasetNotAvailableError: a TFDS dataset is not on disk (a ValueError and a
            FileNotFoundError).
    """
    name = canonical_name(name)
    pipeline.validate_common(image_size, batch_size, shuffle_buffer, start_batch)
    pipeline.validate_batches_per_step(batches_per_step)
    # A resumed run skips whole steps: ``batches_per_step`` batches per element.
    batches = _batches(name, split, image_size, batch_size, data_dir, shuffle, repeat, seed,
                       deterministic, cache, shuffle_buffer, start_batch * batches_per_step, download,
                       options)
    return batches if batches_per_step == 1 else pipeline.stack_batches(batches, batches_per_step)


def _batches(name, split, image_size, batch_size, data_dir, shuffle, repeat, seed, deterministic,
             cache, shuffle_buffer, start_batch, download, options):
    """The ``[batch_size, ...]`` batches of :func:`build_dataset` (arguments as there)."""
    common = dict(
        shuffle=shuffle,
        seed=seed,
        deterministic=deterministic,
        shuffle_buffer=shuffle_buffer,
        start_batch=start_batch,
    )
    allowed = {
        "celeb_a": {"celeba_crop"},
        "image_folder": {"channels", "crop_size", "validate", "on_error"},
        "photo_patches": {"patch_size", "num_patches"},
    }.get(name, {"std", "num_samples"} if name in toys.TOYS else set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"Expected options for dataset `{name}` among {sorted(allowed)}. "
            f"Received: unknown options {unknown}"
        )
    if name in toys.TOYS:
        return toys.toy_dataset(
            name, batch_size, seed=seed, repeat=repeat, deterministic=deterministic,
            start_batch=start_batch, **options,
        )
    if name == "digits":
        if image_size not in (None, 16, 32):
            raise ValueError(
                "Expected `image_size` to be 16 or 32 for the digits dataset. "
                f"Received: `image_size={image_size!r}`"
            )
        return offline.digits_dataset(
            "train" if split is None else split, image_size, batch_size, repeat=repeat, **common
        )
    if name == "photo_patches":
        return offline.photo_patches_dataset(
            "train" if split is None else split, image_size, batch_size, repeat=repeat,
            **common, **options,
        )
    if name == "image_folder":
        images, count, size = folder.image_folder_images(data_dir, image_size, **options)
        channels = options.get("channels", 3)
        estimated = count * size * size * channels
    elif name in idx.IDX_DATASETS:
        images, estimated, size = _idx_dataset_images(
            name, split, image_size, data_dir, download=download, seed=seed, shuffle=shuffle)
    else:
        images, estimated, size = tfds_sources.load_tfds_images(
            name, split, image_size, data_dir, download=download, seed=seed,
            shuffle_files=shuffle, **options,
        )
    return pipeline.finalize(
        images, batch_size, repeat=repeat, cache=pipeline.resolve_cache(cache, estimated), **common
    )


def _idx_dataset_images(name, split, image_size, data_dir, *, download, seed, shuffle):
    """MNIST-like data: TFDS when prepared, else the IDX / npz files in ``data_dir``."""
    if idx.files_present(name, data_dir):
        return idx.file_images(name, split, image_size, data_dir)
    try:
        return tfds_sources.load_tfds_images(
            name, split, image_size, data_dir, download=download, seed=seed,
            shuffle_files=shuffle)
    except (DatasetNotAvailableError, ModuleNotFoundError) as error:
        tfds_error = str(error).rsplit("TFDS said: ", 1)[-1]
    return idx.file_images(name, split, image_size, data_dir, tfds_error)
