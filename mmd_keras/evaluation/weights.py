"""Where evaluation networks' weights live: the cache folder and the FID-Inception file.

TF-free on purpose: the command lines import it to print their help and resolve default
paths without importing TensorFlow.

The FID-Inception weights come from the 2015-12-05 TensorFlow Inception graph that FID/KID/IS
numbers are published with. They are written once, from the original graph with TensorFlow
alone (downloads ``inception-2015-12-05.tgz`` once, or ``--source=PATH`` for a local copy)::

    python -m mmd_keras.tools.fid_weights

or, as an alternative, converted from pytorch-fid's PyTorch port
``pt_inception-2015-12-05-6726825d.pth`` (:data:`FID_INCEPTION_SOURCE_URL`; needs torch)::

    python -m mmd_keras.tools.convert_fid_inception pt_inception-2015-12-05-6726825d.pth

Both write :func:`default_fid_weights_path` (``$MMD_KERAS_CACHE/fid_inception.npz``, else
``~/.cache/mmd_keras/fid_inception.npz``); after that no weights flag is needed.
"""

import os

FID_INCEPTION_SOURCE_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_INCEPTION_SOURCE_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/"
                            "fid_weights/" + FID_INCEPTION_SOURCE_FILE)
FID_INCEPTION_FILE = "fid_inception.npz"
FID_WEIGHTS_COMMAND = "python -m mmd_keras.tools.fid_weights"
CONVERT_COMMAND = ("python -m mmd_keras.tools.convert_fid_inception "
                   + FID_INCEPTION_SOURCE_FILE)
CACHE_ENV = "MMD_KERAS_CACHE"
#: Names of the extractors of :data:`mmd_keras.evaluation.extractors.EXTRACTORS`, here so that
#: command lines list them without importing TensorFlow (a test checks the two agree).
EXTRACTOR_NAMES = ("digits", "fid_inception", "inception_v3", "lenet")


def default_cache_dir():
    """``$MMD_KERAS_CACHE`` if set, else ``~/.cache/mmd_keras``."""
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "mmd_keras")


def default_fid_weights_path():
    """Where the converted FID-Inception weights are written and looked for by default."""
    return os.path.join(default_cache_dir(), FID_INCEPTION_FILE)


def how_to_get_fid_weights():
    """Two sentences: the commands that create the weights file, and where it goes."""
    return (f"Create it once from TensorFlow's original Inception graph with "
            f"`{FID_WEIGHTS_COMMAND}` (downloads inception-2015-12-05.tgz; offline, pass "
            f"`--source=PATH` to a local copy), or from pytorch-fid's "
            f"`{FID_INCEPTION_SOURCE_FILE}` ({FID_INCEPTION_SOURCE_URL}) with "
            f"`{CONVERT_COMMAND}` (needs torch). Both write `{default_fid_weights_path()}`, "
            f"the default location (folder: ${CACHE_ENV}, else ~/.cache/mmd_keras).")


def resolve_fid_weights_path(path=None, flag="--weights"):
    """The FID-Inception weights file to load: ``path`` if given, else the default cache file.

    Args:
        path: an explicit ``.npz`` path, or None / "" for the default.
        flag: the command-line flag (or argument) that sets ``path``, named in the error.

    Returns:
        An existing file's path.

    Raises:
        FileNotFoundError: the explicit file, or (with no ``path``) the default file, does not
            exist; the message names ``flag`` and how to create the file.
    """
    if path:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"FID Inception weights file not found: `{flag}={path}`. "
                + how_to_get_fid_weights())
        return path
    default = default_fid_weights_path()
    if not os.path.isfile(default):
        raise FileNotFoundError(
            f"Expected FID Inception weights: pass `{flag}=<converted .npz>` or create the "
            f"default file `{default}`. " + how_to_get_fid_weights())
    return default
