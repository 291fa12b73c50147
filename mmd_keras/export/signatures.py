"""The serving signatures of an exported generator, loadable by TF1 and TF2 loaders alike.

Three signatures (the module docstring of :mod:`mmd_keras.export` lists their tensors):
``serving_default`` (latents → images), ``sample`` (batch_size, seed → latents and images, the
latents of :func:`mmd_keras.rng.generation_latents`, i.e. those of ``MMDGAN.generate``) and
``prior`` (no input → the latent prior: distribution, dimension, largest batch).

Why the variables are tracked this way: a Keras 3 variable (TF backend) is a wrapper around a
``tf.Variable``. Tracking the Keras model puts the *wrappers* in the SavedModel's object graph;
on export each wrapper is written as a copy of its ``tf.Variable`` (``Variable_N``), and only
those copies are restored by the SavedModel's restore op, while the signatures' graphs read the
inner ``tf.Variable``s, which nothing restores. ``tf.saved_model.load`` (TF2) re-binds the
captures through the object graph and works; the TF1-style loader TF Serving and
``saved_model_cli run`` use runs the restore op and then fails with "Could not find variable
deconv1/kernel". So the module tracks exactly the ``tf.Variable``s the traced signatures capture
(as Keras's own ``ExportArchive`` does), and not the Keras model.

Inputs are checked inside the graph (an ``InvalidArgumentError`` whose message names the input,
the expected shape and what was received) so that every consumer, including TF Serving's C++
runtime which does not check feeds against the signature, gets the same clear error. For that
``latents`` is declared with unknown rank: a declared ``[None, latent_dim]`` would be rejected
(or, in C++, silently constant-folded) before the check runs.
"""

import tensorflow as tf

from mmd_keras import rng
from mmd_keras.datasets.pipeline import to_uint8
from mmd_keras.layers import conv

SIGNATURES = ("serving_default", "sample", "prior")


def _check(condition, message, *data):
    """An in-graph assertion whose error text is ``message`` followed by ``data``."""
    return tf.debugging.Assert(condition, [message, *data], summarize=16)


class GeneratorServingModule(tf.Module):
    """The exported object: the three signatures and the variables they read (nothing else).

    Args:
        generator: ``keras.Model`` latents ``[b, latent_dim]`` → images ``[b, H, W, C]`` in
            [-1, 1] (or points ``[b, d]`` for the MLP toys).
        latent_dim: int, the generator's latent size.
        latent_distribution: ``"uniform"`` or ``"normal"`` (``rng.LATENT_DISTRIBUTIONS``).
        max_batch_size: int, the largest batch either signature accepts (a guard against a
            request that would exhaust the server's memory).
    """

    def __init__(self, generator, latent_dim, latent_distribution, max_batch_size):
        super().__init__(name="generator_serving")
        # The generator is held by the closures only (see the module docstring).
        expected = (f"Expected `latents` float32 [batch, {latent_dim}] of finite values with "
                    f"1 <= batch <= {max_batch_size} (prior: {latent_distribution}, "
                    f"latent_dim={latent_dim}). Received: shape")
        points = len(generator.outputs[0].shape) == 2 if getattr(generator, "outputs", None) \
            else False

        def generate(latents):
            outputs = tf.cast(generator(latents, training=False), tf.float32)
            finite = _check(tf.reduce_all(tf.math.is_finite(outputs)),
                            "The generator produced non-finite outputs (its weights or "
                            "batch-norm statistics are broken); refusing to return them.")
            with tf.control_dependencies([finite]):
                outputs = tf.identity(outputs)
            if points:
                return {"points": outputs}
            return {"images": outputs, "images_uint8": to_uint8(outputs)}

        def serving_default(latents):
            shape = tf.shape(latents)
            rank_ok = tf.equal(tf.rank(latents), 2)
            size_ok = tf.logical_and(rank_ok, tf.reduce_all(tf.equal(
                tf.concat([shape, [0, 0]], 0)[1:2], latent_dim)))
            batch = tf.concat([shape, [0]], 0)[0]
            batch_ok = tf.logical_and(batch >= 1, batch <= max_batch_size)
            shape_check = _check(tf.logical_and(size_ok, batch_ok), expected, shape)
            with tf.control_dependencies([shape_check]):
                finite_check = _check(
                    tf.reduce_all(tf.math.is_finite(latents)),
                    f"Expected `latents` of finite values (prior: {latent_distribution}). "
                    "Received: NaN or Inf at flat positions",
                    tf.where(tf.logical_not(tf.math.is_finite(tf.reshape(latents, [-1])))))
            with tf.control_dependencies([finite_check]):
                latents = tf.ensure_shape(tf.identity(latents), [None, latent_dim])
            return generate(latents)

        def sample(batch_size, seed):
            batch_check = _check(
                tf.logical_and(batch_size >= 1, batch_size <= max_batch_size),
                f"Expected `batch_size` an int32 scalar with 1 <= batch_size <= "
                f"{max_batch_size}. Received: batch_size =", batch_size)
            with tf.control_dependencies([batch_check]):
                latents = rng.generation_latents(tf.identity(batch_size), latent_dim,
                                                 latent_distribution, seed)
            outputs = generate(latents)
            outputs["latents"] = latents
            return outputs

        def prior():
            return {"distribution": tf.constant(latent_distribution),
                    "latent_dim": tf.constant(latent_dim, tf.int32),
                    "max_batch_size": tf.constant(max_batch_size, tf.int32)}

        self.serving_default = tf.function(serving_default, input_signature=[
            tf.TensorSpec(None, tf.float32, name="latents")])
        self.sample = tf.function(sample, input_signature=[
            tf.TensorSpec([], tf.int32, name="batch_size"),
            tf.TensorSpec([], tf.int64, name="seed")])
        self.prior = tf.function(prior, input_signature=[])
        # The inner tf.Variables the traced graphs read: these, and only these, are saved
        # and restored (by the TF1 restore op and by tf.saved_model.load). The signatures are
        # traced here, once, without custom-gradient ops (conv.forward_only): serving never
        # differentiates, and each such op made every load warn about unsaved gradients.
        captured = {}
        with conv.forward_only():
            functions = self.concrete_signatures()
        for function in functions.values():
            for variable in function.variables:
                captured.setdefault(id(variable), variable)
        self.captured_variables = list(captured.values())

    def concrete_signatures(self):
        """``{name: ConcreteFunction}`` for ``tf.saved_model.save(..., signatures=...)``."""
        return {name: getattr(self, name).get_concrete_function() for name in SIGNATURES}
