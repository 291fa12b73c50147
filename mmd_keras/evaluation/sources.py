"""Image sources of ``python -m mmd_keras.evaluate``: generators, folders, arrays, digits.

A source is

* an exported generator (a SavedModel folder from :mod:`mmd_keras.export`, or its run folder
  ``<root>/<run>/`` whose highest numeric version is used); images come from its ``sample``
  signature, batch ``i`` drawn with seed ``np.random.SeedSequence([seed, i])``;
* a folder of PNG/JPEG/BMP/GIF images (sorted by name, all the same size);
* a ``.npz`` (array ``images``, or its only array) or ``.npy`` file ``[N, H, W, C]``: uint8 in
  ``[0, 255]`` or float in ``[-1, 1]``;
* ``digits`` / ``digits:test`` (the held-out split, default) / ``digits:train`` /
  ``digits:all`` — scikit-learn's digits at the samples' size (16 or 32 px, else 32).

:func:`load_images` returns images as float32 in ``[-1, 1]`` and a JSON-able description.
TensorFlow is imported only to run a generator or decode image files.
"""

import os

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
DIGITS_SOURCES = {"digits": "test", "digits:test": "test", "digits:train": "train",
                  "digits:all": "all"}


def _to_unit_range(images, source):
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise ValueError(f"Expected images [N, H, W, 1 or 3] in `{source}`. Received: shape "
                         f"{images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    images = images.astype(np.float32)
    if not np.all(np.isfinite(images)) or images.min() < -1.001 or images.max() > 1.001:
        raise ValueError(f"Expected uint8 or float images in [-1, 1] in `{source}`. Received: "
                         f"float values in [{np.nanmin(images):.4g}, {np.nanmax(images):.4g}]")
    return images


def _saved_model_dir(path):
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [d for d in os.listdir(path) if d.isdigit()
                and os.path.isfile(os.path.join(path, d, "saved_model.pb"))]
    return os.path.join(path, max(versions, key=int)) if versions else None


def _generate(model_dir, num_samples, seed, batch_size):
    import tensorflow as tf

    loaded = tf.saved_model.load(model_dir)
    if "sample" not in loaded.signatures:
        raise ValueError(f"Expected a generator exported by mmd_keras.export (a `sample` "
                         f"signature) in `{model_dir}`. Received: {list(loaded.signatures)}")
    sample = loaded.signatures["sample"]
    batches = []
    for i, start in enumerate(range(0, num_samples, batch_size)):
        batch_seed = int(np.random.SeedSequence([seed, i]).generate_state(1, np.uint64)[0] >> 1)
        out = sample(batch_size=tf.constant(min(batch_size, num_samples - start), tf.int32),
                     seed=tf.constant(batch_seed, tf.int64))
        batches.append(out["images"].numpy())
    return np.concatenate(batches)


def _read_folder(path):
    import tensorflow as tf

    names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise ValueError(f"Expected image files {IMAGE_EXTENSIONS} or a SavedModel in folder "
                         f"`{path}`. Received: none.")
    images = [tf.io.decode_image(tf.io.read_file(os.path.join(path, n)),
                                 expand_animations=False).numpy() for n in names]
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(f"Expected images of one size in `{path}`. Received: {sorted(shapes)}")
    return np.stack(images)


def _read_array_file(path):
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as data:
        if "images" in data.files:
            return data["images"]
        if len(data.files) == 1:
            return data[data.files[0]]
        raise ValueError(f"Expected an array `images` (or a single array) in `{path}`. "
                         f"Received: {data.files}")


def load_images(source, num_samples=None, seed=0, batch_size=256, image_size=None):
    """Images ``[N, H, W, C]`` float32 in ``[-1, 1]`` and a JSON-able description.

    Args:
        source: a SavedModel (or run) folder, an image folder, a ``.npz``/``.npy`` file, or
            ``digits[:split]`` (see the module docstring).
        num_samples: images to use (the first ones of a folder/file/dataset); required for
            a generator; None = all.
        seed: generator seed (see the module docstring).
        batch_size: generator batch size.
        image_size: size of the ``digits`` images (16 or 32; other values give 32).

    Raises:
        ValueError / FileNotFoundError: bad or missing input (clear messages).
    """
    info = {"source": source}
    if source in DIGITS_SOURCES:
        from mmd_keras import datasets

        size = image_size if image_size in (16, 32) else 32
        images, _ = datasets.digits_images(DIGITS_SOURCES[source], size)
        info.update(kind="dataset", dataset="digits", split=DIGITS_SOURCES[source], image_size=size)
    elif os.path.isdir(source):
        model_dir = _saved_model_dir(source)
        if model_dir is not None:
            if num_samples is None:
                raise ValueError(f"Expected --num_samples for the generator `{source}`. "
                                 "Received: none.")
            images = _generate(model_dir, num_samples, seed, batch_size)
            info.update(kind="generator", saved_model=model_dir, seed=seed,
                        signature="sample", batch_size=batch_size)
        else:
            images = _read_folder(source)
            info.update(kind="folder")
    elif os.path.isfile(source) and source.endswith((".npz", ".npy")):
        images = _read_array_file(source)
        info.update(kind="array_file")
    else:
        raise FileNotFoundError(
            f"Expected a SavedModel/image folder, a .npz/.npy file or one of "
            f"{sorted(DIGITS_SOURCES)}. Received: `{source}` (not found or unsupported).")
    if num_samples is not None:
        if num_samples < 2:
            raise ValueError(f"Expected --num_samples >= 2. Received: {num_samples}")
        if len(images) < num_samples:
            raise ValueError(f"Expected at least {num_samples} images in `{source}`. "
                             f"Received: {len(images)}")
        images = images[:num_samples]
    images = _to_unit_range(images, source)
    info.update(n=int(len(images)), shape=list(images.shape[1:]))
    return images, info
