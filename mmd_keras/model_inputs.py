"""Checks and defaults for what a user hands to `MMDGAN`: compile's optimizers, fit's real
images, predict's latents.

* Optimizers: Adam with learning rate 2e-4 (generator) and 5e-4 (critic), ``beta_1`` 0.5,
  ``beta_2`` 0.999 (:data:`DEFAULT_ADAM`): the launcher's defaults too, so that the notebook API
  and the command line train alike (``tests/test_model_inputs.py`` compares them).
* Real images: the generator ends in tanh, so real images must be in [-1, 1]. Images in
  [0, 255] (e.g. from ``keras.utils.image_dataset_from_directory``) or standardized ones
  train without any error but never match; `fit` checks the first batch (see
  :func:`check_first_batch` and :func:`checked_dataset`).
* Latents: ``[batch, latent_dim]``, checked on static shapes (:func:`check_latents`).
"""

import re

import keras
import numpy as np
import tensorflow as tf


#: How far outside [-1, 1] real images may go before `fit` refuses them. Legitimate pipelines
#: overshoot a little: bicubic or Lanczos resizing rings by up to ~15 % of an edge's height
#: (≤ 0.3 on a -1 → 1 edge) and instance noise adds a few tenths. The mistakes the check is
#: for are far outside: [0, 255] images (max ≫ 1), [-127.5, 127.5] or standardized images
#: (a batch almost surely holds |x| > 1.5).
TOLERANCE = 0.5
_FIRST = "Expected real images in [-1, 1]"
_MESSAGE = (_FIRST + " (the tanh range of the generator; up to " + str(TOLERANCE) + " outside is "
            "accepted). Received: the first batch `fit` sees spans [{}, {}]. Map the images to "
            "[-1, 1] first, e.g. `images / 127.5 - 1` for [0, 255] pixels (or "
            "`mmd_keras.datasets.to_unit_range`), or pass `fit(..., check_input_range=False)` "
            "to train on them anyway.")
# The message inside a tf.data assertion error (see `raise_clear_range_error`).
_IN_ASSERTION = re.compile(re.escape(_FIRST) + r".*?to train on them anyway\.", re.S)


# ------------------------------------------------------------------------------ optimizers
#: The default optimizers' settings (the three papers' codes use Adam with these betas).
DEFAULT_ADAM = {"generator_lr": 2e-4, "critic_lr": 5e-4, "beta_1": 0.5, "beta_2": 0.999}


def default_optimizer(lr_field):
    """Adam with the default learning rate ``lr_field`` and betas (:data:`DEFAULT_ADAM`).

    Args:
        lr_field: ``"generator_lr"`` or ``"critic_lr"``.
    """
    return keras.optimizers.Adam(DEFAULT_ADAM[lr_field], beta_1=DEFAULT_ADAM["beta_1"],
                                 beta_2=DEFAULT_ADAM["beta_2"])


def resolve_optimizers(generator_optimizer, critic_optimizer, optimizer):
    """The two optimizers `MMDGAN.compile` uses (new, unbuilt unless given built).

    Args:
        generator_optimizer, critic_optimizer: None (the default), an optimizer, or what
            `keras.optimizers.get` accepts (``"adam"``, a config dict).
        optimizer: Keras's single spelling: None, or an optimizer (identifier) whose config
            both networks get, each in its own copy (own slots and iteration counter).

    Returns:
        ``(generator_optimizer, critic_optimizer)``.
    """
    if optimizer is not None:
        if generator_optimizer is not None or critic_optimizer is not None:
            raise ValueError(
                "Expected either `optimizer` (the same optimizer config for both networks) or "
                "`generator_optimizer`/`critic_optimizer`, not both. Received: "
                f"`optimizer={optimizer!r}`, `generator_optimizer={generator_optimizer!r}`, "
                f"`critic_optimizer={critic_optimizer!r}`")
        config_ = keras.optimizers.serialize(keras.optimizers.get(optimizer))
        return keras.optimizers.deserialize(config_), keras.optimizers.deserialize(config_)
    if generator_optimizer is not None and generator_optimizer is critic_optimizer:
        raise ValueError("Expected two optimizer instances (each keeps the slots of its own "
                         "network), or `optimizer=` for one config shared by both. Received: the "
                         f"same instance as `generator_optimizer` and `critic_optimizer`: "
                         f"{generator_optimizer!r}")
    return tuple(default_optimizer(field) if opt is None else keras.optimizers.get(opt)
                 for opt, field in ((generator_optimizer, "generator_lr"),
                                    (critic_optimizer, "critic_lr")))


# ---------------------------------------------------------------------------- real images
def _range_message(low, high):
    return _MESSAGE.format(f"{low:.4g}", f"{high:.4g}")


def check_first_batch(x, batch_size, real_images):
    """Raises ValueError when the first ``batch_size`` images of in-memory ``x`` (array,
    tensor, or a dict/tuple of them as `fit` takes) are clearly outside [-1, 1].

    ``real_images`` maps a batch structure to its images (`MMDGAN`'s ``_real_images``).
    Min and max are over all values of the batch, whatever its shape.
    """
    first = tf.nest.map_structure(lambda array: tf.convert_to_tensor(array[:batch_size]), x)
    images = np.asarray(real_images(first))
    if images.size == 0:
        return
    low, high = float(np.min(images)), float(np.max(images))
    if not (low >= -1.0 - TOLERANCE and high <= 1.0 + TOLERANCE):  # NaN fails too
        raise ValueError(_range_message(low, high))


def checked_dataset(dataset, real_images):
    """``dataset`` whose first element per iteration asserts its images are in [-1, 1].

    The check runs in the input pipeline (host side, on the element `fit` takes first,
    before that step's update). A peek with a separate iterator would not do: it would
    advance the seeds of a reshuffling dataset (``shuffle(..., seed=s)``) and so change every
    epoch's order. Elements, their structure and the shuffles are unchanged; later
    elements cost one comparison each.
    """
    def check(index, element):
        def assert_in_range():
            images = tf.cast(real_images(element), tf.float32)
            low, high = tf.reduce_min(images), tf.reduce_max(images)
            inside = tf.logical_and(low >= -1.0 - TOLERANCE, high <= 1.0 + TOLERANCE)
            inside = tf.logical_or(inside, tf.equal(tf.size(images), 0))
            message = tf.strings.format(_MESSAGE, (low, high))  # Python's {} placeholders
            with tf.control_dependencies([tf.debugging.Assert(inside, [message])]):
                return tf.constant(True)

        done = tf.cond(index == 0, assert_in_range, lambda: tf.constant(True))
        with tf.control_dependencies([done]):
            return tf.nest.map_structure(tf.identity, element)

    return dataset.enumerate().map(check)


def raise_clear_range_error(error):
    """Re-raises a tf.data assertion of :func:`checked_dataset` as the ValueError it means;
    returns (doing nothing) for any other error."""
    match = _IN_ASSERTION.search(getattr(error, "message", None) or str(error))
    if match:
        raise ValueError(match.group(0)) from None


# -------------------------------------------------------------------------------- latents
def check_latents(latents, latent_dim):
    """Raises ValueError when the static shape of ``latents`` is not ``[batch, latent_dim]``."""
    shape = tf.TensorShape(getattr(latents, "shape", None))
    if shape.rank is not None and (shape.rank != 2 or shape[-1] not in (None, latent_dim)):
        raise ValueError(f"Expected latents of shape [batch, {latent_dim}] (the generator's "
                         f"`latent_dim`). Received: `latents` of shape {tuple(shape.as_list())}")
