"""mmd_keras.export: TF Serving layout, atomic versions, both signatures, exact reload."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import export

LATENT_DIM = 4


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(3)
    latents = keras.Input((LATENT_DIM,), name="latents")
    x = keras.layers.Dense(2 * 2 * 8)(latents)
    x = keras.layers.Reshape((2, 2, 8))(x)
    x = keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    images = keras.layers.Activation("tanh")(x * 3.0)
    return keras.Model(latents, images)


@pytest.fixture(scope="module")
def exported(generator, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("saved_models"))
    path = export.export_generator(generator, root, "digits_run", latent_distribution="uniform")
    return root, path, tf.saved_model.load(path)


def _uint8_reference(images):
    return np.clip(np.round((images.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def test_layout_is_tf_serving_versions(exported):
    root, path, _ = exported
    assert path == os.path.join(root, "digits_run", "1")
    assert sorted(os.listdir(os.path.join(root, "digits_run"))) == ["1"]  # no temp folder left
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert os.path.isdir(os.path.join(path, "variables"))


def test_serving_default_reproduces_generator_exactly(exported, generator, rng):
    _, _, loaded = exported
    latents = rng.uniform(-1, 1, size=(5, LATENT_DIM)).astype(np.float32)
    expected = generator(latents, training=False).numpy()
    outputs = loaded.signatures["serving_default"](latents=tf.constant(latents))
    assert set(outputs) == {"images", "images_uint8"}
    np.testing.assert_array_equal(outputs["images"].numpy(), expected)
    assert outputs["images_uint8"].dtype == tf.uint8
    np.testing.assert_array_equal(outputs["images_uint8"].numpy(), _uint8_reference(expected))
    # The restored object's tf.function gives the same numbers as the signature.
    np.testing.assert_array_equal(loaded.serving_default(latents)["images"].numpy(), expected)


def test_sample_signature_is_stateless_and_matches_generator(exported, generator):
    _, _, loaded = exported
    sample = loaded.signatures["sample"]
    first = sample(batch_size=tf.constant(6), seed=tf.constant(7, tf.int64))
    again = sample(batch_size=tf.constant(6), seed=tf.constant(7, tf.int64))
    other = sample(batch_size=tf.constant(6), seed=tf.constant(8, tf.int64))
    latents = first["latents"].numpy()
    assert latents.shape == (6, LATENT_DIM)
    assert latents.min() >= -1.0 and latents.max() <= 1.0
    np.testing.assert_array_equal(again["images"].numpy(), first["images"].numpy())
    assert not np.array_equal(other["latents"].numpy(), latents)
    # Latents are exactly sample_latents(...), the documented stateless recipe.
    np.testing.assert_array_equal(latents, export.sample_latents(6, LATENT_DIM, 7).numpy())
    expected = generator(latents, training=False).numpy()
    np.testing.assert_array_equal(first["images"].numpy(), expected)
    np.testing.assert_array_equal(first["images_uint8"].numpy(), _uint8_reference(expected))


def test_signature_specs(exported):
    _, _, loaded = exported
    default = loaded.signatures["serving_default"]
    (spec,) = default.structured_input_signature[1].values()
    assert spec.name == "latents" and spec.dtype == tf.float32
    assert spec.shape.as_list() == [None, LATENT_DIM]
    outputs = default.structured_outputs
    assert outputs["images"].dtype == tf.float32
    assert outputs["images_uint8"].dtype == tf.uint8
    assert outputs["images_uint8"].shape.as_list() == [None, 4, 4, 3]
    sample_inputs = loaded.signatures["sample"].structured_input_signature[1]
    assert {k: v.dtype for k, v in sample_inputs.items()} == {
        "batch_size": tf.int32,
        "seed": tf.int64,
    }


def _saved_model_cli_show_all(path, capsys):
    """The text of `saved_model_cli show --dir path --all`.

    Runs the CLI's own `_show_all` in this process (the subprocess costs ~10-30 s of
    TensorFlow start-up on a shared 2-core machine); falls back to the executable.
    """
    try:
        from tensorflow.python.tools import saved_model_cli

        show_all = saved_model_cli._show_all
    except (ImportError, AttributeError):
        cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        return subprocess.run(
            [cli, "show", "--dir", path, "--all"],
            capture_output=True, text=True, timeout=300, env=env, check=True,
        ).stdout
    capsys.readouterr()
    show_all(path)
    return capsys.readouterr().out


def test_saved_model_cli_lists_both_signatures(exported, capsys):
    _, path, _ = exported
    text = _saved_model_cli_show_all(path, capsys)
    assert "signature_def['serving_default']" in text
    assert "signature_def['sample']" in text
    assert "inputs['latents'] tensor_info:" in text
    assert "inputs['batch_size'] tensor_info:" in text
    assert "outputs['images_uint8'] tensor_info:" in text
    assert "DT_UINT8" in text


def test_versions_increment_and_never_overwrite(generator, tmp_path):
    root = str(tmp_path)
    first = export.export_generator(generator, root, "run", version=3)
    second = export.export_generator(generator, root, "run", latent_distribution="normal")
    assert second == os.path.join(root, "run", "4")
    before = sorted(os.listdir(first))
    stamp = os.path.getmtime(os.path.join(first, "saved_model.pb"))
    with pytest.raises(ValueError, match="already exists"):
        export.export_generator(generator, root, "run", version=3)
    assert sorted(os.listdir(first)) == before
    assert os.path.getmtime(os.path.join(first, "saved_model.pb")) == stamp
    assert sorted(os.listdir(os.path.join(root, "run"))) == ["3", "4"]
    # The normal export draws standard-normal latents (values outside [-1, 1] occur).
    latents = tf.saved_model.load(second).signatures["sample"](
        batch_size=tf.constant(64), seed=tf.constant(1, tf.int64)
    )["latents"].numpy()
    np.testing.assert_array_equal(
        latents, tf.random.stateless_normal([64, LATENT_DIM], seed=[1, 0]).numpy()
    )
    assert np.abs(latents).max() > 1.0


def test_failed_export_leaves_nothing(generator, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        os.makedirs(args[1])
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_generator(generator, str(tmp_path), "run")
    assert os.listdir(os.path.join(tmp_path, "run")) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"run_name": "bad/name"}, "run_name"),
        ({"run_name": ""}, "run_name"),
        ({"version": 0}, "version"),
        ({"latent_distribution": "cauchy"}, "latent_distribution"),
        ({"latent_dim": 5}, "latent_dim"),
    ],
)
def test_bad_arguments(generator, tmp_path, kwargs, match):
    arguments = {"run_name": "run", **kwargs}
    with pytest.raises(ValueError, match=match):
        export.export_generator(generator, str(tmp_path), **arguments)
    assert not os.path.exists(os.path.join(tmp_path, "run", "1"))


def test_sample_latents_rejects_unknown_distribution():
    with pytest.raises(ValueError, match="distribution"):
        export.sample_latents(2, 3, 0, "cauchy")
