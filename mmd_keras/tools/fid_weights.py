"""Creates the FID Inception's weights file from the original TensorFlow graph (no torch).

Usage::

    python -m mmd_keras.tools.fid_weights [--source=PATH.tgz|PATH.pb] [--output=OUT.npz]
        [--sha256=HEX] [--overwrite]

The FID Inception is the frozen TF1 graph ``classify_image_graph_def.pb`` of
``inception-2015-12-05.tgz`` (:data:`SOURCE_URL`), the network of the original FID/IS code
(TTUR) from which pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` was ported. Its
weights are ``Const`` nodes: ``<scope>/conv2d_params`` (conv kernels, ``[kh, kw, in, out]``,
Keras's own layout), ``<scope>/batchnorm/{beta,gamma,moving_mean,moving_variance}`` and
``softmax/{weights,biases}`` (``[2048, 1008]`` and ``[1008]``). This tool reads them with
TensorFlow alone (``tf.compat.v1.GraphDef``, ``tf.make_ndarray``), renames them to the Keras
network's layers (:func:`keras_names`, the same correspondence pytorch-fid's port uses) and
writes the ``.npz`` that :func:`mmd_keras.evaluation.inception.load_fid_inception` reads —
by default ``$MMD_KERAS_CACHE/fid_inception.npz``, else ``~/.cache/mmd_keras/fid_inception.npz``,
where the launcher and ``python -m mmd_keras.evaluation`` look.

Without ``--source`` the archive is downloaded once into ``<cache>/downloads/`` with
``keras.utils.get_file`` (a later run reuses it). ``--source`` takes a local copy: the
``.tgz`` as published or the extracted ``.pb``. Exit status: 0 on success, 2 on bad
arguments, a failed download or a graph that is not this network (nothing is written then).
"""

import argparse
import hashlib
import os
import re
import sys
import tarfile

from mmd_keras.evaluation import weights as weights_lib

SOURCE_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
SOURCE_ARCHIVE = "inception-2015-12-05.tgz"
GRAPH_FILE = "classify_image_graph_def.pb"
#: SHA-256 of :data:`SOURCE_ARCHIVE`. Neither TensorFlow's tutorials that publish the archive,
#: nor TTUR's ``fid.py``, nor torch-fidelity's converter (``utils/util_convert_inception_weights
#: .py``) record a hash of it, and none could be found documented elsewhere, so none is pinned
#: here rather than one nobody can vouch for; ``--sha256`` pins one the user has verified. The
#: graph's content is checked instead: every one of the 472 weight tensors must be present
#: under its name with the network's shape, and no other weight may be left over.
SOURCE_SHA256 = None
DOWNLOAD_SUBDIR = "downloads"

# pytorch-fid's FIDInception blocks, in graph order (`mixed`, `mixed_1`, ... `mixed_10`),
# with each block's TF towers: the scope, then the pytorch-fid branches its convolutions
# `conv`, `conv_1`, ... feed, in order. Mixed_7b/c's split 1×3 / 3×1 convs sit in a nested
# `mixed` scope of their tower.
_A = (("", ["branch1x1"]), ("tower", ["branch5x5_1", "branch5x5_2"]),
      ("tower_1", ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]),
      ("tower_2", ["branch_pool"]))
_B = (("", ["branch3x3"]), ("tower", ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]))
_C = (("", ["branch1x1"]), ("tower", [f"branch7x7_{i}" for i in (1, 2, 3)]),
      ("tower_1", [f"branch7x7dbl_{i}" for i in (1, 2, 3, 4, 5)]), ("tower_2", ["branch_pool"]))
_D = (("tower", ["branch3x3_1", "branch3x3_2"]),
      ("tower_1", [f"branch7x7x3_{i}" for i in (1, 2, 3, 4)]))
_E = (("", ["branch1x1"]), ("tower", ["branch3x3_1"]),
      ("tower/mixed", ["branch3x3_2a", "branch3x3_2b"]),
      ("tower_1", ["branch3x3dbl_1", "branch3x3dbl_2"]),
      ("tower_1/mixed", ["branch3x3dbl_3a", "branch3x3dbl_3b"]), ("tower_2", ["branch_pool"]))
_BLOCKS = (("Mixed_5b", _A), ("Mixed_5c", _A), ("Mixed_5d", _A), ("Mixed_6a", _B),
           ("Mixed_6b", _C), ("Mixed_6c", _C), ("Mixed_6d", _C), ("Mixed_6e", _C),
           ("Mixed_7a", _D), ("Mixed_7b", _E), ("Mixed_7c", _E))
_STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
_BN_PARAMS = ("beta", "gamma", "moving_mean", "moving_variance")  # TF's and Keras's names
_FC = {"softmax/weights": "fc/kernel", "softmax/biases": "fc/bias"}


def _numbered(index):
    """TF1's unique-name suffixes: conv, conv_1, conv_2, ..."""
    return "conv" if index == 0 else f"conv_{index}"


def _scoped(*parts):
    return "/".join(part for part in parts if part)


def keras_names():
    """The graph's conv scopes mapped to the Keras network's conv + batch-norm layers.

    Returns:
        ``dict`` of 94 entries, e.g. ``"mixed_9/tower/mixed/conv_1"`` →
        ``"Mixed_7b.branch3x3_2b"`` (the graph's ``<scope>/conv2d_params`` and
        ``<scope>/batchnorm/*`` feed ``<layer>.conv`` and ``<layer>.bn``).
    """
    names = {_numbered(i): layer for i, layer in enumerate(_STEM)}
    for b, (block, towers) in enumerate(_BLOCKS):
        block_scope = "mixed" if b == 0 else f"mixed_{b}"
        for tower, branches in towers:
            for i, branch in enumerate(branches):
                names[_scoped(block_scope, tower, _numbered(i))] = f"{block}.{branch}"
    return names


def graph_weight_names():
    """``{graph Const name: Keras weight path}`` of the 472 weights the network needs."""
    out = dict(_FC)
    for scope, layer in keras_names().items():
        out[f"{scope}/conv2d_params"] = f"{layer}.conv/kernel"
        out.update({f"{scope}/batchnorm/{p}": f"{layer}.bn/{p}" for p in _BN_PARAMS})
    return out


def _is_weight_name(name):
    return name.endswith("/conv2d_params") or "/batchnorm/" in name or name in _FC


def read_graph_def(path):
    """Parses the GraphDef of a ``.pb``, or of the ``classify_image_graph_def.pb`` in a ``.tgz``.

    Raises:
        ValueError: naming ``--source`` when the file is neither, or does not parse.
    """
    import tensorflow as tf

    path = os.fspath(path)
    if path.endswith((".tgz", ".tar.gz")):
        try:
            with tarfile.open(path, mode="r:gz") as archive:
                members = [m for m in archive.getmembers()
                           if m.isfile() and os.path.basename(m.name) == GRAPH_FILE]
                if not members:
                    raise ValueError(
                        f"Expected `{GRAPH_FILE}` in the archive. Received: `--source={path}` "
                        f"holding {sorted(archive.getnames())[:5]}")
                data = archive.extractfile(members[0]).read()  # read in memory, never unpacked
        except (tarfile.TarError, OSError, EOFError) as error:
            raise ValueError(f"Expected a gzipped tar archive. Received: `--source={path}` "
                             f"({error})") from error
    elif path.endswith(".pb"):
        with open(path, "rb") as stream:
            data = stream.read()
    else:
        raise ValueError(
            f"Expected `--source` to be `{SOURCE_ARCHIVE}` (.tgz / .tar.gz) or the extracted "
            f"`{GRAPH_FILE}` (.pb). Received: `--source={path}`")
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as error:  # noqa: BLE001 - protobuf's DecodeError is not importable stably
        raise ValueError(f"Expected a TensorFlow GraphDef. Received: `--source={path}` "
                         f"({type(error).__name__}: {error})") from error
    return graph_def


def keras_weights_from_graph_def(graph_def):
    """The Keras FID Inception's weights from the graph's Const nodes.

    Conv kernels keep the graph's ``[kh, kw, in, out]`` layout (Keras's), batch norms keep
    their four names, ``softmax/weights`` ``[2048, 1008]`` becomes ``fc/kernel`` as is.

    Returns:
        ``dict[str, np.ndarray]`` keyed by Keras weight path, float32.

    Raises:
        ValueError: a weight is missing, or a weight-like Const (``conv2d_params``,
            ``batchnorm/*``, ``softmax/*``) is not one of the network's (another graph).
    """
    import numpy as np
    import tensorflow as tf

    wanted = graph_weight_names()
    consts = {node.name: node for node in graph_def.node if node.op == "Const"}
    missing = sorted(set(wanted) - set(consts))
    unexpected = sorted(n for n in consts if _is_weight_name(n) and n not in wanted)
    if missing or unexpected:
        raise ValueError(
            f"Expected the {len(wanted)} weight Const nodes of the 2015-12-05 Inception graph. "
            f"Received: {len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} "
            f"unexpected (e.g. {unexpected[:3]}).")
    return {keras_path: np.asarray(tf.make_ndarray(consts[name].attr["value"].tensor),
                                   dtype=np.float32)
            for name, keras_path in wanted.items()}


def download_source(sha256=SOURCE_SHA256):
    """Downloads :data:`SOURCE_URL` once into ``<cache>/downloads/`` and returns its path.

    Raises:
        OSError: the download failed (e.g. offline); names ``--source`` as the way round.
    """
    import keras

    try:
        return keras.utils.get_file(
            SOURCE_ARCHIVE, SOURCE_URL, file_hash=sha256, hash_algorithm="sha256",
            cache_dir=weights_lib.default_cache_dir(), cache_subdir=DOWNLOAD_SUBDIR)
    except Exception as error:  # noqa: BLE001 - get_file raises bare Exception on URL errors
        raise OSError(
            f"Could not download {SOURCE_URL} ({error}). Without network access, fetch "
            f"`{SOURCE_ARCHIVE}` elsewhere and pass `--source=PATH/{SOURCE_ARCHIVE}` (or the "
            f"extracted `{GRAPH_FILE}`).") from error


def check_output(output_path, overwrite):
    """The output path to write (default: the cache file), checked before any work.

    Raises:
        ValueError: not ``.npz``. FileExistsError: exists and not ``overwrite``.
    """
    if output_path is None:
        output_path = weights_lib.default_fid_weights_path()
    output_path = os.fspath(output_path)
    if not output_path.endswith(".npz"):
        raise ValueError(f"Expected an output path ending in `.npz`. Received: `{output_path}`")
    if os.path.exists(output_path) and not overwrite:
        raise FileExistsError(f"Output `{output_path}` exists; pass --overwrite to replace it.")
    return output_path


def write_weights(weights, output_path):
    """Checks converted weights' names and classifier, then writes them atomically.

    Raises:
        ValueError: see :func:`mmd_keras.evaluation.inception.check_converted_weights`.
    """
    from mmd_keras import fileio
    from mmd_keras.evaluation import inception

    inception.check_converted_weights(weights)
    parent = os.path.dirname(output_path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with fileio.atomic_path(output_path, suffix=".npz") as tmp_path:
        inception.save_fid_inception_weights(weights, tmp_path)
    return output_path


def check_sha256(path, sha256):
    """Raises ValueError naming ``--sha256`` when ``path``'s SHA-256 is not ``sha256``."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != sha256.lower():
        raise ValueError(f"Expected `{path}` to have `--sha256={sha256}`. Received: a file "
                         f"with SHA-256 {digest.hexdigest()}")


def convert(source=None, output_path=None, overwrite=False, sha256=SOURCE_SHA256):
    """Reads the graph (``source``, else the downloaded archive) and writes the ``.npz``.

    Every weight's shape is checked against the Keras network before anything is written.

    Returns:
        The written path.

    Raises:
        FileNotFoundError: no ``source`` file. FileExistsError: see :func:`check_output`.
        OSError: the download failed. ValueError: a bad ``--sha256``, or not the FID
            Inception graph.
    """
    output_path = check_output(output_path, overwrite)
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ValueError(f"Expected `--sha256` to be 64 hexadecimal digits. Received: "
                         f"`--sha256={sha256}`")
    if source is None:
        source = download_source(sha256)
    elif not os.path.isfile(source):
        raise FileNotFoundError(f"Expected an existing file. Received: `--source={source}`")
    elif sha256 is not None:
        check_sha256(source, sha256)
    weights = keras_weights_from_graph_def(read_graph_def(source))
    from mmd_keras.evaluation import inception

    inception.set_fid_inception_weights(inception.build_fid_inception(), weights)  # shapes
    return write_weights(weights, output_path)


def output_help():
    """The ``--output`` help text of both weights commands."""
    return (f"weights file to write (.npz); default {weights_lib.default_fid_weights_path()} "
            "(where evaluate and the launcher look)")


def run_and_report(write, errors=(OSError, ValueError)):
    """Runs ``write() -> path`` for a command line: prints ``wrote PATH`` and returns 0, or
    prints ``error: ...`` to stderr and returns 2 on one of ``errors``."""
    try:
        path = write()
    except errors as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m mmd_keras.tools.fid_weights",
        description="Create the FID Inception weights file from TensorFlow's original "
                    f"{SOURCE_ARCHIVE} (TensorFlow only, no torch).")
    parser.add_argument("--source", default=None,
                        help=f"local {SOURCE_ARCHIVE} (.tgz) or extracted {GRAPH_FILE} (.pb); "
                             f"default: download {SOURCE_URL} once into "
                             f"{os.path.join(weights_lib.default_cache_dir(), DOWNLOAD_SUBDIR)}")
    parser.add_argument("--output", default=None, help=output_help())
    parser.add_argument("--sha256", default=SOURCE_SHA256,
                        help="expected SHA-256 of the archive or --source file (none is "
                             "published, so none is checked by default)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)
    return run_and_report(lambda: convert(args.source, args.output, overwrite=args.overwrite,
                                          sha256=args.sha256))


if __name__ == "__main__":
    sys.exit(main())
