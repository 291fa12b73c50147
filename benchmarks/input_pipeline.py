"""Is the input pipeline a bottleneck? Batches/s of ``build_dataset`` vs one train step.

Run from the repository root::

    python benchmarks/input_pipeline.py [--batch_size 64] [--seconds 5]

(`python -m benchmarks.run_all` reuses :func:`pipeline_rates` against the DCGAN Table S1 step.)

Measures, in one process on the same machine:

1. ``digits`` at 32 px (the offline default),
2. ``image_folder`` of 512 CIFAR-shaped 32×32 JPEGs written to a temporary folder,
   decoded every time (``cache=False``, the worst case) and cached (``cache=True``),
3. ``photo_patches`` (decode-free crops + resize every batch),

then the time of one MMD-GAN training step (critic and generator update, RBF-MMD
on 16-d critic features) of a small DCGAN-style pair at 32 px, and prints
``pipeline batches/s × step seconds``: a ratio ≫ 1 means the pipeline produces
batches that many times faster than training consumes them.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mmd_keras import datasets  # noqa: E402


def batches_per_second(dataset, seconds, warmup=5):
    """Steady-state batches/s of iterating ``dataset`` (after ``warmup`` batches)."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        count += 1
    return count / (time.perf_counter() - start)


def write_jpeg_folder(folder, count=512, size=32, seed=0):
    """``count`` random-texture size×size JPEGs (smooth noise, like small photos)."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        coarse = rng.integers(0, 256, size=(size // 4, size // 4, 3)).astype(np.float32)
        image = tf.image.resize(coarse, [size, size]).numpy().astype(np.uint8)
        tf.io.write_file(os.path.join(folder, f"{index:05d}.jpg"), tf.io.encode_jpeg(image))


def small_gan(image_size=32, channels=3, latent_dim=64, width=32):
    """A small DCGAN-style generator and critic (16-d features) at 32 px."""
    latents = keras.Input((latent_dim,))
    x = keras.layers.Dense(4 * 4 * 4 * width)(latents)
    x = keras.layers.Reshape((4, 4, 4 * width))(x)
    for filters in (2 * width, width, width):
        x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    images = keras.layers.Conv2D(channels, 3, padding="same", activation="tanh")(x)
    generator = keras.Model(latents, images)
    inputs = keras.Input((image_size, image_size, channels))
    x = inputs
    for filters in (width, 2 * width, 4 * width):
        x = keras.layers.Conv2D(filters, 4, strides=2, padding="same")(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    critic = keras.Model(inputs, keras.layers.Dense(16)(keras.layers.Flatten()(x)))
    return generator, critic


def rbf_mmd2(real, fake, sigma=1.0):
    """Unbiased RBF-kernel MMD² between feature batches ``[n, d]``."""
    def kernel(a, b):
        squared = tf.reduce_sum(a * a, 1)[:, None] + tf.reduce_sum(b * b, 1)[None]
        d2 = tf.maximum(squared - 2.0 * a @ tf.transpose(b), 0.0)
        return tf.exp(-d2 / (2 * sigma**2))

    n = tf.cast(tf.shape(real)[0], tf.float32)
    off = n * (n - 1)
    k_xx, k_yy, k_xy = kernel(real, real), kernel(fake, fake), kernel(real, fake)
    return ((tf.reduce_sum(k_xx) - n) + (tf.reduce_sum(k_yy) - n)) / off - 2 * tf.reduce_mean(k_xy)


def train_step_seconds(batch_size, seconds, latent_dim=64):
    """Seconds per (critic + generator) update of :func:`small_gan` on CPU."""
    generator, critic = small_gan(latent_dim=latent_dim)
    g_opt, c_opt = keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4)
    real = tf.random.uniform([batch_size, 32, 32, 3], -1.0, 1.0)

    @tf.function
    def step(real, seed):
        z = tf.random.stateless_uniform([batch_size, latent_dim], seed, -1.0, 1.0)
        with tf.GradientTape() as c_tape:
            mmd2 = rbf_mmd2(critic(real, training=True), critic(generator(z, training=True)))
            critic_loss = -mmd2
        grads = c_tape.gradient(critic_loss, critic.trainable_variables)
        c_opt.apply_gradients(zip(grads, critic.trainable_variables))
        with tf.GradientTape() as g_tape:
            mmd2 = rbf_mmd2(critic(real, training=True), critic(generator(z, training=True)))
        grads = g_tape.gradient(mmd2, generator.trainable_variables)
        g_opt.apply_gradients(zip(grads, generator.trainable_variables))
        return mmd2

    for i in range(3):  # trace and warm up
        step(real, tf.constant([0, i])).numpy()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(real, tf.constant([1, count])).numpy()
        count += 1
    return (time.perf_counter() - start) / count


def pipeline_rates(batch_size, seconds):
    """Steady-state batches/s of ``build_dataset`` for digits, image_folder (JPEG, cached or
    not) and photo_patches at 32 px; dict label -> batches/s (used by ``benchmarks.run_all``)."""
    b, rates = batch_size, {}
    rates["digits 32px"] = batches_per_second(
        datasets.build_dataset("digits", image_size=32, batch_size=b), seconds
    )
    with tempfile.TemporaryDirectory() as folder:
        write_jpeg_folder(folder)
        for cache in (False, True):
            label = f"image_folder 32px JPEG, cache={cache}"
            rates[label] = batches_per_second(
                datasets.build_dataset("image_folder", data_dir=folder, image_size=32,
                                       batch_size=b, cache=cache, shuffle_buffer=512), seconds
            )
    rates["photo_patches 32px"] = batches_per_second(
        datasets.build_dataset("photo_patches", image_size=32, batch_size=b), seconds
    )
    return rates


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value
    return parse


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=_positive(int), default=64)
    parser.add_argument("--seconds", type=_positive(float), default=5.0, help="per measurement")
    args = parser.parse_args()
    b, secs = args.batch_size, args.seconds
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, batch {b}, {secs:.0f} s each")
    rates = pipeline_rates(b, secs)
    step = train_step_seconds(b, secs)
    print(f"train step (1 critic + 1 generator update, small DCGAN, 32px): {step * 1e3:.1f} ms "
          f"= {1 / step:.1f} steps/s")
    for label, rate in rates.items():
        ratio = rate * step
        print(f"{label:<38s} {rate:9.1f} batches/s   ratio to train step: {ratio:8.1f}x")
    worst = min(rates.values()) * step
    verdict = "NOT the bottleneck" if worst > 1 else "a BOTTLENECK"
    print(f"slowest pipeline is {worst:.1f}x faster than training: the input pipeline is {verdict}.")


if __name__ == "__main__":
    main()
