"""Export a generator as a TF Serving SavedModel: ``<root>/<run_name>/<version>/``.

Two signatures:

* ``serving_default(latents: float32 [None, latent_dim])`` →
  ``{"images": float32 [None, H, W, C] in [-1, 1], "images_uint8": uint8 [None, H, W, C]}``
* ``sample(batch_size: int32 [], seed: int64 [])`` → the same two outputs plus
  ``"latents"``, drawn statelessly by :func:`sample_latents` (deterministic in
  ``seed``; uniform [-1, 1] or standard normal, as the model was trained).

``images_uint8 = round((images + 1) · 127.5)`` clipped to [0, 255]. The export is
written into a hidden temporary folder beside the target and renamed into place,
so TF Serving (which only loads numeric version folders) never sees half a
model; an existing version is never overwritten.

TF Serving REST (model name = ``run_name``, base path = ``<root>/<run_name>``)::

    curl -d '{"inputs": {"latents": [[0.1, -0.3, ...]]}}' \\
        http://localhost:8501/v1/models/<run_name>:predict
    curl -d '{"signature_name": "sample", "inputs": {"batch_size": 4, "seed": 7}}' \\
        http://localhost:8501/v1/models/<run_name>:predict
"""

import os
import re
import shutil
import uuid

import keras
import tensorflow as tf

from mmd_keras.datasets.pipeline import to_uint8

LATENT_DISTRIBUTIONS = ("uniform", "normal")
SIGNATURES = ("serving_default", "sample")


def sample_latents(batch_size, latent_dim, seed, distribution="uniform"):
    """Stateless latents ``[batch_size, latent_dim]`` float32 for a scalar int ``seed``.

    ``uniform``: ``tf.random.stateless_uniform(..., seed=[seed, 0], minval=-1,
    maxval=1)``; ``normal``: ``tf.random.stateless_normal(..., seed=[seed, 0])``.
    The ``sample`` signature uses exactly this, so clients can reproduce it.
    """
    if distribution not in LATENT_DISTRIBUTIONS:
        raise ValueError(
            f"Expected `distribution` to be one of {LATENT_DISTRIBUTIONS}. "
            f"Received: `distribution={distribution!r}`"
        )
    shape = tf.stack([tf.cast(batch_size, tf.int32), latent_dim])
    seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    if distribution == "uniform":
        return tf.random.stateless_uniform(shape, seed=seed, minval=-1.0, maxval=1.0)
    return tf.random.stateless_normal(shape, seed=seed)


def _latent_dim_of(generator, latent_dim):
    inputs = getattr(generator, "inputs", None)
    inferred = None
    if inputs and len(inputs) == 1 and len(inputs[0].shape) == 2:
        inferred = inputs[0].shape[-1]
    if latent_dim is None:
        latent_dim = inferred
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(
            "Expected `latent_dim` to be a positive int (it could not be read from the "
            f"generator's input). Received: `latent_dim={latent_dim!r}`"
        )
    if inferred is not None and inferred != latent_dim:
        raise ValueError(
            f"Expected `latent_dim` to match the generator's input ({inferred}). "
            f"Received: `latent_dim={latent_dim!r}`"
        )
    return latent_dim


class GeneratorServingModule(tf.Module):
    """Wraps a generator with the two serving signatures (see the module docstring)."""

    def __init__(self, generator, latent_dim, latent_distribution="uniform"):
        super().__init__(name="generator_serving")
        self.generator = generator
        self.latent_dim = latent_dim
        self.latent_distribution = latent_distribution
        self.serving_default = tf.function(
            self._from_latents,
            input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="latents")],
        )
        self.sample = tf.function(
            self._sample,
            input_signature=[
                tf.TensorSpec([], tf.int32, name="batch_size"),
                tf.TensorSpec([], tf.int64, name="seed"),
            ],
        )

    def _from_latents(self, latents):
        images = tf.cast(self.generator(latents, training=False), tf.float32)
        return {"images": images, "images_uint8": to_uint8(images)}

    def _sample(self, batch_size, seed):
        latents = sample_latents(batch_size, self.latent_dim, seed, self.latent_distribution)
        outputs = self._from_latents(latents)
        outputs["latents"] = latents
        return outputs


def next_version(run_dir):
    """1 + the largest numeric version folder in ``run_dir`` (1 when none)."""
    if not os.path.isdir(run_dir):
        return 1
    versions = [int(n) for n in os.listdir(run_dir) if re.fullmatch(r"\d+", n)]
    return max(versions, default=0) + 1


def export_generator(
    generator,
    root,
    run_name,
    version=None,
    *,
    latent_dim=None,
    latent_distribution="uniform",
):
    """Writes ``generator`` as a SavedModel at ``<root>/<run_name>/<version>/``.

    Args:
        generator: ``keras.Model`` latents ``[b, latent_dim]`` → images ``[b, H, W,
            C]`` in [-1, 1]. Pass the EMA generator when EMA is on.
        root: base folder (e.g. ``<workdir>/saved_models``).
        run_name: model name for TF Serving (letters, digits, ``._-``).
        version: positive int; ``None`` = next free version (1, 2, …).
        latent_dim: default: read from ``generator.inputs``.
        latent_distribution: ``"uniform"`` ([-1, 1]) or ``"normal"``, for ``sample``.

    Returns:
        The path of the new version folder.

    Raises:
        ValueError: bad arguments, or the version folder already exists (it is never
            overwritten).
    """
    if not isinstance(generator, keras.Model):
        raise ValueError(
            f"Expected `generator` to be a keras.Model. Received: `generator={generator!r}`"
        )
    if not isinstance(run_name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", run_name):
        raise ValueError(
            "Expected `run_name` to be a non-empty name of letters, digits, '.', '_' or "
            f"'-'. Received: `run_name={run_name!r}`"
        )
    if latent_distribution not in LATENT_DISTRIBUTIONS:
        raise ValueError(
            f"Expected `latent_distribution` to be one of {LATENT_DISTRIBUTIONS}. "
            f"Received: `latent_distribution={latent_distribution!r}`"
        )
    latent_dim = _latent_dim_of(generator, latent_dim)
    run_dir = os.path.join(root, run_name)
    if version is None:
        version = next_version(run_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            f"Expected `version` to be a positive int. Received: `version={version!r}`"
        )
    target = os.path.join(run_dir, str(version))
    if os.path.exists(target):
        raise ValueError(
            f"Expected a new version: `{target}` already exists and is never overwritten. "
            f"Received: `version={version!r}` (pass version=None for the next free one)."
        )
    os.makedirs(run_dir, exist_ok=True)
    module = GeneratorServingModule(generator, latent_dim, latent_distribution)
    temporary = os.path.join(run_dir, f".tmp-{version}-{uuid.uuid4().hex}")
    try:
        tf.saved_model.save(
            module,
            temporary,
            signatures={"serving_default": module.serving_default, "sample": module.sample},
        )
        if os.path.exists(target):  # another writer won the race meanwhile
            raise ValueError(f"`{target}` appeared while exporting; it is not overwritten.")
        os.rename(temporary, target)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
    return target
