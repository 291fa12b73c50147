"""Score generated images against a reference: ``python -m mmd_keras.evaluate``.

Samples and references can each be

* an exported generator (a SavedModel folder from :mod:`mmd_keras.export`, or its run folder
  ``<root>/<run>/`` whose highest numeric version is used); images come from its ``sample``
  signature, batch ``i`` drawn with seed ``np.random.SeedSequence([seed, i])``;
* a folder of PNG/JPEG/BMP/GIF images (sorted by name, all the same size);
* a ``.npz`` (array ``images``, or its only array) or ``.npy`` file ``[N, H, W, C]``: uint8 in
  ``[0, 255]`` or float in ``[-1, 1]``;
* ``digits`` / ``digits:test`` (the held-out split, default) / ``digits:train`` /
  ``digits:all`` — scikit-learn's digits at the samples' size (16 or 32 px, else 32).

Example::

    python -m mmd_keras.evaluate --samples runs/digits/export/1 --reference digits \\
        --extractor digits --num-samples 1000 --output kid.json

It prints the scores and writes JSON with every parameter used (extractor and its weights,
sample counts, KID subsets and seed). KID is raw MMD² (not ×100); FID is biased in n, so
compare runs only at equal ``n``. Exit status 2, with nothing written, on bad input.
"""

import argparse
import dataclasses
import json
import os
import sys

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
METRICS = ("kid", "fid", "is")
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
                raise ValueError(f"Expected --num-samples for the generator `{source}`. "
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
            raise ValueError(f"Expected --num-samples >= 2. Received: {num_samples}")
        if len(images) < num_samples:
            raise ValueError(f"Expected at least {num_samples} images in `{source}`. "
                             f"Received: {len(images)}")
        images = images[:num_samples]
    images = _to_unit_range(images, source)
    info.update(n=int(len(images)), shape=list(images.shape[1:]))
    return images, info


def evaluate(samples, reference, extractor, metrics=METRICS, kid_subsets=100,
             kid_subset_size=None, kid_method="subsets", is_splits=10, seed=0):
    """Scores image arrays with an extractor; returns a JSON-able dict of results.

    Args:
        samples: ``[N, H, W, C]`` in ``[-1, 1]`` (generated images).
        reference: ``[M, H', W', C]`` in ``[-1, 1]`` (real images).
        extractor: a :class:`mmd_keras.extractors.FeatureExtractor`.
        metrics: subset of ``("kid", "fid", "is")``; ``"is"`` needs ``extractor.probabilities``.
        kid_subsets, kid_method: see ``metrics.kernel_inception_distance``.
        kid_subset_size: None = ``min(1000, N, M)``.
        is_splits: Inception Score splits.
        seed: seed of the KID subsets.
    """
    from mmd_keras import metrics as metrics_lib

    unknown = sorted(set(metrics) - set(METRICS))
    if unknown or not metrics:
        raise ValueError(f"Expected metrics from {METRICS}. Received: {list(metrics)}")
    if "is" in metrics and not getattr(extractor, "has_probabilities", False):
        raise ValueError(f"Expected an extractor with class probabilities for `is`. Received: "
                         f"`{extractor.name}` (features only).")
    real, fake = extractor(reference), extractor(samples)
    if kid_subset_size is None:
        kid_subset_size = min(1000, len(real), len(fake))
    results = {}
    if "kid" in metrics:
        kid = metrics_lib.kernel_inception_distance(
            fake, real, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed,
            method=kid_method)
        results["kid"] = {**dataclasses.asdict(kid), "scale": "raw MMD² (not ×100)",
                          "a": "samples", "b": "reference"}
    if "fid" in metrics:
        results["fid"] = {**dataclasses.asdict(metrics_lib.frechet_distance(fake, real)),
                          "a": "samples", "b": "reference"}
    if "is" in metrics:
        score = metrics_lib.inception_score(extractor.probabilities(samples), splits=is_splits)
        results["inception_score"] = {**dataclasses.asdict(score), "of": "samples"}
    return {"metrics": results, "extractor": extractor.get_config(),
            "feature_dim": int(real.shape[1])}


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m mmd_keras.evaluate", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", required=True, help="generator/folder/.npz/.npy of samples")
    parser.add_argument("--reference", default="digits", help="digits[:split], folder or .npz")
    parser.add_argument("--output", required=True, help="JSON file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--extractor", default="digits", choices=["digits", "fid_inception",
                                                                   "inception_v3"])
    parser.add_argument("--weights", default=None,
                        help="fid_inception: converted .npz; inception_v3: path or 'imagenet'")
    parser.add_argument("--cache-dir", default=None, help="digits classifier cache folder")
    parser.add_argument("--num-samples", type=int, default=None, help="samples used (default all)")
    parser.add_argument("--num-reference", type=int, default=None, help="reference images used")
    parser.add_argument("--metrics", default="kid,fid,is", help="comma list of kid, fid, is")
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--kid-subset-size", type=int, default=None,
                        help="default min(1000, n_samples, n_reference)")
    parser.add_argument("--kid-method", default="subsets", choices=["subsets", "blocks"])
    parser.add_argument("--is-splits", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="generator and KID-subset seed")
    parser.add_argument("--batch-size", type=int, default=256)
    return parser


def _make_extractor(args):
    from mmd_keras import extractors

    if args.extractor == "digits":
        return extractors.get("digits", cache_dir=args.cache_dir)
    if args.extractor == "fid_inception":
        return extractors.get("fid_inception", weights_path=args.weights)
    return extractors.get("inception_v3", weights=args.weights or "imagenet")


def main(argv=None):
    """Command-line entry point; returns the exit status (0, or 2 on bad input)."""
    args = _parser().parse_args(argv)
    try:
        if os.path.exists(args.output) and not args.overwrite:
            raise FileExistsError(f"Output `{args.output}` exists; pass --overwrite to replace it.")
        metrics = tuple(m for m in args.metrics.split(",") if m)
        samples, samples_info = load_images(args.samples, args.num_samples, args.seed,
                                            args.batch_size)
        size = samples.shape[1] if samples.shape[1] == samples.shape[2] else None
        reference, reference_info = load_images(args.reference, args.num_reference, args.seed,
                                                args.batch_size, image_size=size)
        result = evaluate(samples, reference, _make_extractor(args), metrics=metrics,
                          kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
                          kid_method=args.kid_method, is_splits=args.is_splits, seed=args.seed)
    except (ValueError, OSError, RuntimeError, NotImplementedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import mmd_keras

    report = {"samples": samples_info, "reference": reference_info, "seed": args.seed,
              "metrics_requested": list(metrics), "mmd_keras_version": mmd_keras.__version__,
              **result}
    for name, value in result["metrics"].items():
        spread = f" ± {value['std']:.6g}" if "std" in value else ""
        print(f"{name}: {value.get('mean', value.get('value')):.6g}{spread}")
    tmp_path = f"{args.output}.tmp"
    with open(tmp_path, "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True)
    os.replace(tmp_path, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
