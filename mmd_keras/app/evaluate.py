r"""Score generated images against a reference: ``python -m mmd_keras.evaluation``.

Samples and references can each be

* an exported generator (a SavedModel folder from :mod:`mmd_keras.export`, or its run folder
  ``<root>/<run>/`` whose highest numeric version is used); images come from its ``sample``
  signature, batch ``i`` drawn with seed ``np.random.SeedSequence([seed, i])``;
* a folder of PNG/JPEG/BMP/GIF images (sorted by name, all the same size);
* a ``.npz`` (array ``images``, or its only array) or ``.npy`` file ``[N, H, W, C]``: uint8 in
  ``[0, 255]`` or float in ``[-1, 1]``;
* ``digits`` / ``digits:test`` (the held-out split, default) / ``digits:train`` /
  ``digits:all`` — scikit-learn's digits at the samples' size (16 or 32 px, else 32);
* ``mnist`` / ``mnist:test`` (the 10,000 test images) / ``mnist:train`` (the 60,000 training
  images), same for ``fashion_mnist`` — from TFDS, or the IDX files / ``mnist.npz`` in
  ``--data_dir`` (:mod:`mmd_keras.datasets.idx`).

Paper 1's MNIST scores (Bińkowski et al. 2018, §5): LeNet features, 100,000 generated images
against the test set, KID from 100 subsets of 1,000, FID and IS from 10 bootstrap resamplings::

    python -m mmd_keras.evaluation --samples=RUN/export --num_samples=100000 --reference=mnist \
        --data_dir=DIR --extractor=lenet --protocol=paper1 --output=scores.json

Example, on the model the default ``python -m mmd_keras.launch`` run exports to
``saved_models/digits``::

    python -m mmd_keras.evaluation --samples=saved_models/digits --reference=digits \
        --extractor=digits --num_samples=1000 --output=scores.json

It prints the scores and writes JSON with every parameter used (extractor and its weights,
sample counts, KID subsets, seed and the estimated variance of a one-subset KID). KID is raw
MMD² (not ×100); FID is biased in n, so compare runs only at equal ``n``.

FID-Inception weights (``--extractor=fid_inception``): created once from TensorFlow's original
Inception graph with ``python -m mmd_keras.tools.fid_weights`` (or converted from pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` with ``python -m mmd_keras.tools.convert_fid_inception``),
which writes ``$MMD_KERAS_CACHE/fid_inception.npz`` (else ``~/.cache/mmd_keras/``), where
this command looks when ``--weights`` is not given.

Flags are absl's ``--snake_case`` (the launcher's style). Exit status 0, or 2 with an
``error:`` line and nothing computed or written on bad input (flags are checked before
TensorFlow is imported).
"""

import dataclasses
import json
import math
import os
import re
import sys

from absl import flags

import numpy as np

import mmd_keras
from mmd_keras import fileio
from mmd_keras.app import _help
from mmd_keras.app.errors import EXIT_BAD_INPUT
from mmd_keras.evaluation import kid as kid_lib
from mmd_keras.evaluation import weights as weights_lib

PROGRAM = "python -m mmd_keras.evaluation"
METRICS = ("kid", "fid", "is")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
DIGITS_SOURCES = {"digits": "test", "digits:test": "test", "digits:train": "train",
                  "digits:all": "all"}
MNIST_SOURCES = {f"{name}{suffix}": (name, split) for name in ("mnist", "fashion_mnist")
                 for suffix, split in (("", "test"), (":test", "test"), (":train", "train"))}
PROTOCOLS = ("default", "paper1")


def _define_flags(flag_values):
    def string(name, default, help_text, **kwargs):
        flags.DEFINE_string(name, default, help_text, flag_values=flag_values, **kwargs)

    def integer(name, default, help_text, lower_bound):
        flags.DEFINE_integer(name, default, help_text, lower_bound=lower_bound,
                             flag_values=flag_values)

    def enum(name, default, choices, help_text):
        flags.DEFINE_enum(name, default, list(choices), help_text, flag_values=flag_values)

    string("samples", None, "Generated images: an exported generator (SavedModel or run "
           "folder), an image folder, a .npz/.npy file, or digits[:split].")
    string("reference", "digits", "Real images: digits[:test|train|all], mnist[:test|train], "
           "fashion_mnist[:test|train], an image folder, or a .npz/.npy file.")
    string("data_dir", None, "mnist / fashion_mnist: TFDS folder, or the folder of the four IDX "
           "files (gzipped or not) or of mnist.npz; also trains the lenet extractor on first use.")
    string("output", None, "JSON file to write; its folder must exist.")
    flags.DEFINE_boolean("overwrite", False, "Replace an existing --output.",
                         flag_values=flag_values)
    enum("extractor", "digits", weights_lib.EXTRACTOR_NAMES,
         "Feature network: digits (offline LeNet-like classifier), fid_inception (the FID "
         "network of published scores), inception_v3 (Keras's ImageNet InceptionV3; not "
         "comparable with published numbers), lenet (paper 1's MNIST classifier, trained on "
         "first use from --data_dir).")
    string("weights", None, "fid_inception: the converted .npz (default: "
           f"{weights_lib.default_fid_weights_path()} if it exists; "
           + weights_lib.how_to_get_fid_weights() + ") inception_v3: a weights file or "
           "'imagenet' (download).")
    string("cache_dir", None, "Folder of the cached digits / lenet classifier (default "
           "$MMD_KERAS_CACHE, else ~/.cache/mmd_keras).")
    integer("num_samples", None, "Samples used (the first ones); required for a generator; "
            "default all.", 2)
    integer("num_reference", None, "Reference images used (the first ones); default all.", 2)
    flags.DEFINE_list("metrics", list(METRICS), f"Comma list of {', '.join(METRICS)}.",
                      flag_values=flag_values)
    integer("kid_subsets", 100, "KID: random subsets averaged.", 1)
    integer("kid_subset_size", None, "KID: rows per subset from each set; default "
            "min(1000, n_samples, n_reference).", 2)
    enum("kid_method", "subsets", kid_lib.KID_METHODS,
         "KID: random subsets (torch-fidelity) or disjoint blocks (TF-GAN).")
    enum("kid_variance", "unbiased", kid_lib.MMD2_VARIANCE_ESTIMATORS,
         "KID: estimator of the variance of one subset's estimate: unbiased (exact), or "
         "official (paper 1's code's --mmd-var, biased low by O(1/m)).")
    integer("is_splits", 10, "Inception Score splits.", 1)
    enum("protocol", "default", PROTOCOLS,
         "default: KID subsets, FID of all samples, IS in splits; paper1: Binkowski et al. "
         "2018 (KID subsets without replacement, FID and IS from --bootstraps resamplings).")
    integer("bootstraps", 10, "paper1 protocol: FID / IS bootstrap resamplings.", 1)
    integer("seed", 0, "Seed of the generator's latents and of the KID subsets.", 0)
    integer("batch_size", 256, "Generator batch size.", 1)


FLAGS = flags.FlagValues()
_define_flags(FLAGS)


#: Sections of ``--help``, in order, and their flags (every flag in exactly one).
HELP_SECTIONS = {
    "inputs": ("samples", "reference", "num_samples", "num_reference", "data_dir", "seed",
               "batch_size"),
    "features": ("extractor", "weights", "cache_dir"),
    "metrics": ("metrics", "protocol", "kid_subsets", "kid_subset_size", "kid_method",
                "kid_variance", "is_splits", "bootstraps"),
    "output": ("output", "overwrite"),
}


def _default(flag):
    if flag.default is None:
        return "none"
    if isinstance(flag.default, bool):
        return "true" if flag.default else "false"
    if isinstance(flag.default, list):
        return ",".join(flag.default)
    return str(flag.default) or "''"


def usage():
    """The ``--help`` text: usage, what the command does (the module docstring as plain text),
    then every flag by section with its default, help and accepted values."""
    lines = [f"usage: {PROGRAM} --samples=SOURCE --output=FILE.json [--flag=value ...]", "",
             _help.plain(__doc__).strip()]
    listed = [name for names in HELP_SECTIONS.values() for name in names]
    assert sorted(listed) == sorted(FLAGS), set(listed) ^ set(FLAGS)
    for section, names in HELP_SECTIONS.items():
        lines += ["", f"{section}:"]
        for name in names:
            flag = FLAGS[name]
            help_text = re.sub(r"^<[^>]*>: ", "", flag.help)  # absl's enum prefix: listed below
            lines += _help.flag_lines(name, _default(flag), help_text,
                                      getattr(flag.parser, "enum_values", None) or (),
                                      isinstance(flag.default, bool))
    return "\n".join(lines) + "\n"


def parse(argv):
    """Parses and checks ``argv`` (without the program name) without importing TensorFlow.

    Returns:
        The parsed :class:`absl.flags.FlagValues`, or None when help was printed.

    Raises:
        ValueError: an unknown flag, a bad value, or an unusable ``--output``/``--weights``;
            the message names the flag.
    """
    argv = list(argv)
    if any(arg in ("-h", "--help", "--helpfull", "-help", "--helpshort") for arg in argv):
        print(usage())
        return None
    FLAGS.unparse_flags()
    try:
        FLAGS([PROGRAM] + argv)
    except flags.Error as error:
        raise ValueError(f"{error}. See `{PROGRAM} --help`.") from None
    for name in ("samples", "output"):
        if not FLAGS[name].value:
            raise ValueError(f"Expected `--{name}`. Received: none. See `{PROGRAM} --help`.")
    unknown = [m for m in FLAGS.metrics if m not in METRICS]
    if unknown or not FLAGS.metrics:
        raise ValueError(f"Expected metrics from {METRICS}. Received: "
                         f"`--metrics={','.join(FLAGS.metrics)}`")
    output = os.path.abspath(FLAGS.output)
    folder = os.path.dirname(output)
    if not os.path.isdir(folder):
        raise ValueError(f"Expected `--output` in an existing folder. Received: "
                         f"`--output={FLAGS.output}` (no folder `{folder}`).")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"Expected `--output` in a writable folder. Received: "
                         f"`--output={FLAGS.output}`")
    if os.path.isdir(output):
        raise ValueError(f"Expected `--output` to be a file. Received: a folder "
                         f"`--output={FLAGS.output}`")
    if os.path.exists(output) and not FLAGS.overwrite:
        raise ValueError(f"Output `{FLAGS.output}` exists; pass --overwrite to replace it.")
    if FLAGS.extractor == "fid_inception":  # fail before any work, naming the flag
        FLAGS.weights = weights_lib.resolve_fid_weights_path(FLAGS.weights, flag="--weights")
    return FLAGS


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
    """``path`` if it is a SavedModel, else its newest finished version folder, else None.

    A version folder counts when it holds ``saved_model.pb``; once any version carries the
    export marker of ``mmd_keras.export`` (written last), only marked versions count, so an
    export that was cut short is never scored.
    """
    import tensorflow as tf  # after parsing: --help and flag errors stay TensorFlow-free

    from mmd_keras import export  # imports TensorFlow: after parsing

    gfile = tf.io.gfile
    if gfile.exists(gfile.join(path, "saved_model.pb")):
        return path
    versions = [d.rstrip("/") for d in gfile.listdir(path)]
    versions = [d for d in versions if d.isdigit()
                and gfile.exists(gfile.join(path, d, "saved_model.pb"))]
    marked = [d for d in versions if export.read_marker(gfile.join(path, d)) is not None]
    versions = marked or versions
    return gfile.join(path, max(versions, key=int)) if versions else None


def _generate(model_dir, num_samples, seed, batch_size):
    import tensorflow as tf  # after parsing: --help and flag errors stay TensorFlow-free

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
    import tensorflow as tf  # after parsing: --help and flag errors stay TensorFlow-free

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


def load_images(source, num_samples=None, seed=0, batch_size=256, image_size=None,
                data_dir=None):
    """Images ``[N, H, W, C]`` float32 in ``[-1, 1]`` and a JSON-able description.

    Args:
        source: a SavedModel (or run) folder, an image folder, a ``.npz``/``.npy`` file, or
            ``digits[:split]`` (see the module docstring).
        num_samples: images to use (the first ones of a folder/file/dataset); required for
            a generator; None = all.
        seed: generator seed (see the module docstring).
        batch_size: generator batch size.
        image_size: size of the ``digits`` images (16 or 32; other values give 32).
        data_dir: where ``mnist`` / ``fashion_mnist`` are (TFDS folder or files).

    Raises:
        ValueError / FileNotFoundError: bad or missing input (clear messages).
    """
    info = {"source": source}
    if source in MNIST_SOURCES:
        from mmd_keras import datasets  # imports TensorFlow: after parsing

        name, split = MNIST_SOURCES[source]
        images, _ = datasets.mnist_images(split, data_dir, name)
        info.update(kind="dataset", dataset=name, split=split, image_size=28)
    elif source in DIGITS_SOURCES:
        from mmd_keras import datasets  # imports TensorFlow: after parsing

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
            f"{sorted(DIGITS_SOURCES) + sorted(MNIST_SOURCES)}. Received: `{source}` (not found or unsupported).")
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


def evaluate(samples, reference, extractor, metrics=METRICS, kid_subsets=100,
             kid_subset_size=None, kid_method="subsets", is_splits=10, seed=0,
             kid_variance="unbiased", protocol="default", bootstraps=10):
    """Scores image arrays with an extractor; returns a JSON-able dict of results.

    Args:
        samples: ``[N, H, W, C]`` in ``[-1, 1]`` (generated images).
        reference: ``[M, H', W', C]`` in ``[-1, 1]`` (real images).
        extractor: a :class:`mmd_keras.evaluation.extractor_base.FeatureExtractor`.
        metrics: subset of ``("kid", "fid", "is")``; ``"is"`` needs ``extractor.probabilities``.
        kid_subsets, kid_method: see ``metrics.kernel_inception_distance``.
        kid_subset_size: None = ``min(1000, N, M)``.
        is_splits: Inception Score splits.
        seed: seed of the KID subsets.
        kid_variance: estimator of the one-subset KID variance, "unbiased" or "official"
            (``kid.mmd2_variance``).
        protocol: ``"default"`` or ``"paper1"`` (:mod:`mmd_keras.evaluation.protocol`:
            ``kid_subsets`` subsets, FID and IS from ``bootstraps`` resamplings).
        bootstraps: resamplings of the paper1 protocol.
    """
    from mmd_keras.evaluation import metrics as metrics_lib  # imports TensorFlow: after parsing

    unknown = sorted(set(metrics) - set(METRICS))
    if unknown or not metrics:
        raise ValueError(f"Expected metrics from {METRICS}. Received: {list(metrics)}")
    if "is" in metrics and not getattr(extractor, "has_probabilities", False):
        raise ValueError(f"Expected an extractor with class probabilities for `is`. Received: "
                         f"`{extractor.name}` (features only).")
    real, fake = extractor(reference), extractor(samples)
    if kid_subset_size is None:
        kid_subset_size = min(1000, len(real), len(fake))
    if protocol == "paper1":
        from mmd_keras.evaluation import protocol as protocol_lib  # imports TensorFlow

        probabilities = extractor.probabilities(samples) if "is" in metrics else None
        scores = protocol_lib.scores_from_features(
            fake, real, probabilities, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
            bootstraps=bootstraps, seed=seed)
        names = {"kid": "kid", "fid": "fid", "is": "inception_score"}
        results = {names[m]: {**scores[names[m]], "protocol": "paper1", **scores["settings"]}
                   for m in metrics}
        return {"metrics": results, "extractor": extractor.get_config(),
                "feature_dim": int(real.shape[1])}
    results = {}
    if "kid" in metrics:
        kid = metrics_lib.kernel_inception_distance(
            fake, real, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed,
            method=kid_method, variance_estimator=kid_variance)
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


def _make_extractor(args):
    from mmd_keras.evaluation import extractors  # imports TensorFlow: after parsing

    if args.extractor == "digits":
        return extractors.get("digits", cache_dir=args.cache_dir)
    if args.extractor == "lenet":
        return extractors.get("lenet", data_dir=args.data_dir, cache_dir=args.cache_dir)
    if args.extractor == "fid_inception":
        return extractors.get("fid_inception", weights_path=args.weights, flag="--weights")
    return extractors.get("inception_v3", weights=args.weights or "imagenet")


def _summary(name, value):
    """One printed line per metric; KID adds the estimated sd of a one-subset estimate.

    The variance estimate is printed as computed (the JSON keeps it too). A negative one has
    no square root, so the line says why it is negative instead of printing ``sd nan``.
    """
    line = f"{name}: {value.get('mean', value.get('value')):.6g}"
    if "std" in value:
        line += f" ± {value['std']:.6g}"
    variance = value.get("variance")
    if variance is not None and math.isfinite(variance):
        estimator = value["variance_estimator"]
        if variance >= 0:
            line += (f" (one-subset estimator variance {variance:.6g}, "
                     f"sd {math.sqrt(variance):.6g}; {estimator})")
        else:
            line += (f" (one-subset estimator variance {variance:.6g} < 0, so no sd: the "
                     f"{estimator} estimate is a difference of two estimates, not clipped at 0, "
                     "and falls below 0 when the true variance is small next to its sampling "
                     "noise; a larger --kid_subset_size makes it more precise)")
    return line


def main(argv=None):
    """Command-line entry point; returns the exit status (0, or 2 on bad input).

    Args:
        argv: the arguments without the program name; default ``sys.argv[1:]``.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse(argv)
        if args is None:
            return 0
        metrics = tuple(args.metrics)
        samples, samples_info = load_images(args.samples, args.num_samples, args.seed,
                                            args.batch_size, data_dir=args.data_dir)
        size = samples.shape[1] if samples.shape[1] == samples.shape[2] else None
        reference, reference_info = load_images(args.reference, args.num_reference, args.seed,
                                                args.batch_size, image_size=size,
                                                data_dir=args.data_dir)
        result = evaluate(samples, reference, _make_extractor(args), metrics=metrics,
                          kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
                          kid_method=args.kid_method, is_splits=args.is_splits, seed=args.seed,
                          kid_variance=args.kid_variance, protocol=args.protocol,
                          bootstraps=args.bootstraps)
    except (ValueError, OSError, RuntimeError, NotImplementedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    report = {"samples": samples_info, "reference": reference_info, "seed": args.seed,
              "metrics_requested": list(metrics), "mmd_keras_version": mmd_keras.__version__,
              **result}
    for name, value in result["metrics"].items():
        print(_summary(name, value))
    fileio.atomic_write(args.output, json.dumps(report, indent=2, sort_keys=True))
    print(f"wrote {args.output}")
    return 0

