"""The papers' datasets through TensorFlow Datasets (TFDS).

Pre-processing per dataset (all end as ``uint8`` squares, then float [-1, 1]):

* cifar10 32 px, mnist / fashion_mnist 28 px (1 channel): as stored.
* stl10: the ``unlabelled`` split (100k images, paper 3), 96 → 48 px resize.
* celeb_a: the aligned 218×178 images, centre crop 160×160 (offset (29, 9); the
  "resized and cropped to 160×160" of papers 1–2), then resize to ``image_size``
  (160 for the paper-1/2 ResNet setting, 64 for paper 3's Table S2 setting).
  ``celeba_crop=`` changes the crop (e.g. 108 or 140, other GAN papers' choices).
* downsampled_imagenet/64x64, lsun/bedroom: largest centred square, resize to
  ``image_size`` (64). TFDS's mock data gives random sizes; the resize handles it.

Availability is checked with ``download=False`` (≈0.2 s): an absent dataset raises
:class:`DatasetNotAvailableError` naming the dataset, the folder searched and how
to provide it, instead of TFDS's ~200 s of retries offline.
"""

import collections
import os
import re


from mmd_keras import catalog
from mmd_keras.datasets import pipeline

TfdsSource = collections.namedtuple(
    "TfdsSource", ["tfds_name", "train_split", "native_size", "crop", "examples", "how"]
)

_STANDARD = (
    "on a machine with network access run `tfds build {tfds} --data_dir DIR` (or "
    "`tfds.builder('{tfds}', data_dir='DIR').download_and_prepare()`), copy DIR here "
    "and pass `data_dir=DIR` (flag `--data_dir`); or pass `download=True` when this "
    "machine has network access."
)
_MANUAL = (
    " The automatic download of {tfds} is often unavailable ({why}); alternatively use "
    "`name='image_folder'` with `data_dir=` a folder of its JPEG/PNG files "
    "(centre-cropped and resized the same way)."
)

#: Every TFDS-backed name, its TFDS builder, default training split, default size,
#: crop (None: largest centred square), known split sizes (for the cache
#: decision) and how to obtain it.
TFDS_SOURCES = {
    "cifar10": TfdsSource("cifar10", "train", 32, None, {"train": 50_000, "test": 10_000}, ""),
    "stl10": TfdsSource(
        "stl10", "unlabelled", 48, None,
        {"unlabelled": 100_000, "train": 5_000, "test": 8_000}, "",
    ),
    "celeb_a": TfdsSource(
        "celeb_a", "train", 64, 160,
        {"train": 162_770, "validation": 19_867, "test": 19_962},
        _MANUAL.format(tfds="celeb_a", why="Google Drive quota"),
    ),
    "downsampled_imagenet/64x64": TfdsSource(
        "downsampled_imagenet/64x64", "train", 64, None,
        {"train": 1_281_149, "validation": 49_999},
        _MANUAL.format(tfds="downsampled_imagenet/64x64", why="image-net.org moved the files"),
    ),
    "lsun/bedroom": TfdsSource(
        "lsun/bedroom", "train", 64, None, {"train": 3_033_042, "validation": 300},
        _MANUAL.format(tfds="lsun/bedroom", why="42 GB from the LSUN server"),
    ),
    "mnist": TfdsSource("mnist", "train", 28, None, {"train": 60_000, "test": 10_000}, ""),
    "fashion_mnist": TfdsSource(
        "fashion_mnist", "train", 28, None, {"train": 60_000, "test": 10_000}, ""
    ),
}

#: Accepted alternative spellings.
ALIASES = {
    "celeba": "celeb_a",
    "imagenet64": "downsampled_imagenet/64x64",
    "downsampled_imagenet": "downsampled_imagenet/64x64",
    "lsun": "lsun/bedroom",
    "lsun_bedroom": "lsun/bedroom",
}


class DatasetNotAvailableError(ValueError, FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says how to fix it."""


def default_data_dir():
    """Where TFDS looks without ``data_dir``: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``."""
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def load_prepared(tfds_name, split, data_dir=None, download=False, **as_dataset_kwargs):
    """``tfds.load(tfds_name, split=split, data_dir=data_dir, download=download, ...)``.

    Without ``download``, the builder's ``as_dataset`` is called directly: ``tfds.load`` first
    asks ``builder.is_prepared()`` and ignores the answer, and for a dataset that is not on
    disk that probe logs ``Variant folder <a folder that does not exist> has no
    dataset_info.json``. ``as_dataset`` raises the same ``AssertionError`` for absent data.
    """
    import tensorflow_datasets as tfds

    if download:
        return tfds.load(tfds_name, split=split, data_dir=data_dir, download=True,
                         **as_dataset_kwargs)
    return tfds.builder(tfds_name, data_dir=data_dir).as_dataset(split=split,
                                                                 **as_dataset_kwargs)


def _estimated_bytes(name, split, image_size):
    """Bytes of the decoded uint8 split, from the known split sizes; None if unknown."""
    source = TFDS_SOURCES[name]
    match = re.fullmatch(r"([a-z]+)(\[(\d*):(\d*)\])?", split.replace(" ", ""))
    if match is None or match.group(1) not in source.examples:
        return None
    count = source.examples[match.group(1)]
    if match.group(2):
        start = int(match.group(3) or 0)
        stop = int(match.group(4) or count)
        count = max(0, min(stop, count) - start)
    return count * image_size * image_size * catalog.DATASETS[name].channels


def load_tfds_images(name, split, image_size, data_dir=None, *, download=False, seed=0,
                     shuffle_files=True, celeba_crop=None):
    """Reads a TFDS dataset as single uint8 images ``[image_size, image_size, C]``.

    Args:
        name: a key of :data:`TFDS_SOURCES` (or an alias).
        split: TFDS split string (``"train"``, ``"test"``, ``"train[:10%]"``, …);
            ``None`` takes the dataset's training split (``unlabelled`` for stl10).
        image_size: output side; ``None`` takes the native size of the table.
        data_dir: TFDS data folder; default :func:`default_data_dir`.
        download: let TFDS download when absent (blocks for minutes offline).
        seed: file-shuffle seed.
        shuffle_files: shuffle the order of the TFRecord shards.
        celeba_crop: centre-crop side for celeb_a (default 160).

    Returns:
        ``(images_dataset, estimated_bytes_or_None, image_size)``.

    Raises:
        DatasetNotAvailableError: the dataset is not prepared in ``data_dir`` and
            ``download`` is False (or the download failed).
    """
    import tensorflow_datasets as tfds

    name = ALIASES.get(name, name)
    source = TFDS_SOURCES[name]
    split = source.train_split if split is None else split
    image_size = source.native_size if image_size is None else image_size
    crop = source.crop
    if name == "celeb_a" and celeba_crop is not None:
        if not isinstance(celeba_crop, int) or not 1 <= celeba_crop <= 178:
            raise ValueError(
                "Expected `celeba_crop` to be an int in [1, 178] (CelebA images are "
                f"218×178). Received: `celeba_crop={celeba_crop!r}`"
            )
        crop = celeba_crop
    try:
        dataset = load_prepared(source.tfds_name, split, data_dir, download,
                                shuffle_files=shuffle_files,
                                read_config=tfds.ReadConfig(shuffle_seed=seed))
    except ModuleNotFoundError as error:  # tfds imports importlib_resources undeclared
        raise ModuleNotFoundError(
            f"Loading `{name}` through TFDS needs the module `{error.name}`: "
            f"`pip install {error.name}` (mmd_keras declares it; reinstall mmd_keras)."
        ) from error
    except (AssertionError, OSError, ConnectionError) as error:
        where = data_dir or default_data_dir()
        raise DatasetNotAvailableError(
            f"Dataset `{name}` (TFDS `{source.tfds_name}`, split `{split}`) is not "
            f"available: looked in `{where}` (download={download}). To provide it, "
            + _STANDARD.format(tfds=source.tfds_name)
            + source.how
            + f" TFDS said: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from error

    def preprocess(example):
        image = example["image"]
        if image.shape.rank == 2:
            image = image[..., None]
        return pipeline.crop_and_resize(image, image_size, crop)

    images = dataset.map(preprocess, num_parallel_calls=pipeline.AUTOTUNE)
    return images, _estimated_bytes(name, split, image_size), image_size
