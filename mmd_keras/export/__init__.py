"""Export a generator as a TF Serving SavedModel: ``<root>/<run_name>/<version>/``.

Signatures (loadable by ``tf.saved_model.load``, by the TF1 loader TF Serving and
``saved_model_cli run`` use, and by TF Serving itself):

* ``serving_default(latents: float32 [n, latent_dim])`` →
  ``{"images": float32 [n, H, W, C] in [-1, 1], "images_uint8": uint8 [n, H, W, C]}``
  (``{"points": float32 [n, d]}`` for the MLP toy generator).
* ``sample(batch_size: int32 [], seed: int64 [])`` → the same outputs plus ``"latents"``:
  the latents of :func:`mmd_keras.rng.generation_latents`, so ``sample(batch_size=n, seed=s)``
  returns the images of ``MMDGAN.generate(n, seed=s)``.
* ``prior()`` → ``{"distribution": string, "latent_dim": int32, "max_batch_size": int32}``.

``images_uint8 = round((images + 1) · 127.5)`` clipped to [0, 255]. Bad inputs (wrong shape,
non-finite latents, ``batch_size`` outside ``[1, max_batch_size]``) fail inside the graph with a
message naming the input and the expected shape. Writing is atomic and versioned on every TF
filesystem, and each version carries a marker naming the run that wrote it (see
:mod:`mmd_keras.export.storage`).

TF Serving REST (model name = ``run_name``, base path = ``<root>/<run_name>``): see
docs/serving.md.
"""

import re

import keras
import numpy as np
import tensorflow as tf

from mmd_keras import rng
from mmd_keras.export.signatures import SIGNATURES, GeneratorServingModule
from mmd_keras.export.storage import (MARKER, STALE_SECONDS, check_root, clean_stale,
                                      find_export, join, next_version, read_marker,
                                      run_fingerprint, versions, write_version)
from mmd_keras.layers import conv

#: The largest batch a signature accepts unless ``export_generator(max_batch_size=...)``.
DEFAULT_MAX_BATCH_SIZE = 4096
_RUN_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"


def _latent_dim_of(generator, latent_dim):
    inputs = getattr(generator, "inputs", None)
    inferred = None
    if inputs and len(inputs) == 1 and len(inputs[0].shape) == 2:
        inferred = inputs[0].shape[-1]
    if latent_dim is None:
        latent_dim = inferred
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(
            "Expected `latent_dim` to be a positive int (it could not be read from the "
            f"generator's input). Received: `latent_dim={latent_dim!r}`")
    if inferred is not None and inferred != latent_dim:
        raise ValueError(f"Expected `latent_dim` to match the generator's input ({inferred}). "
                         f"Received: `latent_dim={latent_dim!r}`")
    return latent_dim


def _check_finite_weights(generator):
    """A generator with NaN/Inf weights or batch-norm statistics is refused, not exported."""
    broken = [v.path for v in generator.weights if not np.all(np.isfinite(np.asarray(v)))]
    if broken:
        raise ValueError(f"Expected a generator with finite weights. Received: non-finite values "
                         f"in {broken[:8]}{' …' if len(broken) > 8 else ''} (a diverged run; "
                         "export an earlier checkpoint).")


def export_generator(generator, root, run_name, version=None, *, latent_dim=None,
                     latent_distribution="uniform", fingerprint=None,
                     max_batch_size=DEFAULT_MAX_BATCH_SIZE):
    """Writes ``generator`` as a SavedModel at ``<root>/<run_name>/<version>/``.

    Args:
        generator: ``keras.Model`` latents ``[b, latent_dim]`` → images ``[b, H, W, C]`` in
            [-1, 1]. Pass the EMA generator when EMA is on (``MMDGAN.sampling_generator``).
        root: base folder (e.g. ``saved_models``, ``gs://bucket/saved_models``, ``ram://x``).
        run_name: model name for TF Serving (letters, digits, ``._-``).
        version: positive int; ``None`` = next free version (1, 2, …).
        latent_dim: default: read from ``generator.inputs``.
        latent_distribution: ``"uniform"`` (U[-1, 1]) or ``"normal"``: the prior of ``sample``.
        fingerprint: the exporting run's identity (:func:`run_fingerprint`), stored in the
            marker so that :func:`find_export` can tell this run's export from another's.
        max_batch_size: the largest batch either signature accepts.

    Returns:
        The path of the new version folder.

    Raises:
        ValueError: bad arguments, non-finite generator weights, or the version folder
            already exists (it is never overwritten).
    """
    if not isinstance(generator, keras.Model):
        raise ValueError(
            f"Expected `generator` to be a keras.Model. Received: `generator={generator!r}`")
    if not isinstance(root, str) or not root:
        raise ValueError(f"Expected `root` to be a non-empty path. Received: `root={root!r}`")
    if not isinstance(run_name, str) or not re.fullmatch(_RUN_NAME, run_name):
        raise ValueError("Expected `run_name` to be a non-empty name of letters, digits, '.', "
                         f"'_' or '-'. Received: `run_name={run_name!r}`")
    if latent_distribution not in rng.LATENT_DISTRIBUTIONS:
        raise ValueError(f"Expected `latent_distribution` to be one of "
                         f"{rng.LATENT_DISTRIBUTIONS}. Received: "
                         f"`latent_distribution={latent_distribution!r}`")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or version < 1):
        raise ValueError(f"Expected `version` to be a positive int or None. Received: "
                         f"`version={version!r}`")
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) \
            or max_batch_size < 1:
        raise ValueError(f"Expected `max_batch_size` to be a positive int. Received: "
                         f"`max_batch_size={max_batch_size!r}`")
    if fingerprint is not None and (not isinstance(fingerprint, str) or not fingerprint):
        raise ValueError(f"Expected `fingerprint` to be None or a non-empty string. Received: "
                         f"`fingerprint={fingerprint!r}`")
    latent_dim = _latent_dim_of(generator, latent_dim)
    check_root(root, run_name)
    _check_finite_weights(generator)
    module = GeneratorServingModule(generator, latent_dim, latent_distribution, max_batch_size)

    def write(folder):
        # Saving retraces the signatures (its own tracing context): again without
        # custom-gradient ops, or every load would warn about their unsaved gradients.
        with conv.forward_only():
            tf.saved_model.save(module, folder, signatures=module.concrete_signatures())

    marker = {"run_name": run_name, "latent_dim": latent_dim,
              "latent_distribution": latent_distribution, "max_batch_size": max_batch_size,
              "signatures": list(SIGNATURES)}
    return write_version(join(root, run_name), version, write, marker, fingerprint)


__all__ = ["DEFAULT_MAX_BATCH_SIZE", "GeneratorServingModule", "MARKER", "SIGNATURES",
           "STALE_SECONDS", "check_root", "clean_stale", "export_generator", "find_export",
           "next_version", "read_marker", "run_fingerprint", "versions"]
