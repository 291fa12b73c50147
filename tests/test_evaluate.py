"""`python -m mmd_keras.evaluate`: sources, recorded parameters, metric values, bad input."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import datasets, digits_classifier, evaluate, export, metrics


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A cache holding an untrained (but fixed) classifier: evaluation plumbing, no training."""
    folder = tmp_path_factory.mktemp("cache")
    model = digits_classifier.build_digits_classifier()
    model.save_weights(digits_classifier.cache_path(str(folder)))
    return str(folder)


def _classifier_features(cache_dir, images):
    return digits_classifier.load_digits_classifier(cache_dir=cache_dir).features(
        tf.constant(images))


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # n < d: singular covariances
def test_npz_against_digits_records_everything_and_matches_metrics(tmp_path, cache_dir, capsys):
    real, _ = datasets.digits_images("train", 16)
    samples = real[:120] + 0.0
    samples[:, :8] = -1.0  # visibly different from the reference
    np.savez(tmp_path / "samples.npz", images=samples)
    out = tmp_path / "result.json"
    argv = ["--samples", str(tmp_path / "samples.npz"), "--reference", "digits", "--output",
            str(out), "--cache-dir", cache_dir, "--kid-subsets", "20", "--seed", "3"]
    assert evaluate.main(argv) == 0
    report = json.loads(out.read_text())
    reference, _ = datasets.digits_images("test", 16)
    assert report["samples"] == {"source": str(tmp_path / "samples.npz"), "kind": "array_file",
                                 "n": 120, "shape": [16, 16, 1]}
    assert report["reference"]["split"] == "test" and report["reference"]["n"] == len(reference)
    assert report["extractor"]["name"] == "digits" and report["seed"] == 3
    fake = _classifier_features(cache_dir, samples)
    ref = _classifier_features(cache_dir, reference)
    kid = metrics.kernel_inception_distance(fake, ref, num_subsets=20, subset_size=120, seed=3)
    assert report["metrics"]["kid"]["subset_size"] == 120 and report["metrics"]["kid"]["seed"] == 3
    np.testing.assert_allclose(report["metrics"]["kid"]["mean"], kid.mean, rtol=1e-5)
    np.testing.assert_allclose(report["metrics"]["fid"]["value"],
                               metrics.frechet_distance(fake, ref).value, rtol=1e-4)
    assert report["metrics"]["inception_score"]["n"] == 120
    assert "kid:" in capsys.readouterr().out
    # An existing output is never replaced without --overwrite.
    assert evaluate.main(argv) == 2
    assert evaluate.main(argv + ["--overwrite", "--metrics", "kid"]) == 0
    assert set(json.loads(out.read_text())["metrics"]) == {"kid"}


def test_folder_and_generator_sources(tmp_path, cache_dir):
    images = np.random.default_rng(0).integers(0, 256, size=(6, 16, 16, 1), dtype=np.uint8)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(images):
        tf.io.write_file(str(folder / f"{i:03d}.png"), tf.io.encode_png(image))
    loaded, info = evaluate.load_images(str(folder))
    np.testing.assert_allclose(loaded, images / 127.5 - 1, atol=1e-6)
    assert info["kind"] == "folder" and info["n"] == 6

    latents = keras.Input((4,))
    generator = keras.Model(latents, keras.layers.Reshape((4, 4, 1))(
        keras.layers.Dense(16, activation="tanh")(latents)))
    run = tmp_path / "export" / "tiny"
    export.export_generator(generator, str(tmp_path / "export"), "tiny")
    first, info = evaluate.load_images(str(run), num_samples=5, seed=1, batch_size=2)
    again, _ = evaluate.load_images(str(run / "1"), num_samples=5, seed=1, batch_size=2)
    other, _ = evaluate.load_images(str(run), num_samples=5, seed=2, batch_size=2)
    assert first.shape == (5, 4, 4, 1) and info["saved_model"] == str(run / "1")
    np.testing.assert_array_equal(first, again)  # deterministic in the seed
    assert not np.allclose(first, other)
    # The images are the generator's outputs for the `sample` signature's latents.
    seed0 = int(np.random.SeedSequence([1, 0]).generate_state(1, np.uint64)[0] >> 1)
    z = export.sample_latents(2, 4, seed0)
    np.testing.assert_allclose(first[:2], generator(z).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="--num-samples"):
        evaluate.load_images(str(run))


@pytest.mark.parametrize("setup, extra, message", [
    ("missing", [], "not found or unsupported"),
    ("range", [], "in [-1, 1]"),
    ("ok", ["--kid-subset-size", "500"], "subset"),
    ("ok", ["--metrics", "kid,ssim"], "Expected metrics"),
    ("ok", ["--num-samples", "50"], "at least 50"),
    ("ok", ["--extractor", "fid_inception", "--weights", "/nonexistent/fid.npz"],
     "/nonexistent/fid.npz"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, cache_dir, capsys, setup, extra, message):
    samples = tmp_path / "samples.npz"
    if setup != "missing":
        values = np.zeros((10, 16, 16, 1), np.float32) + (3.0 if setup == "range" else 0.0)
        np.savez(samples, images=values)
    out = tmp_path / "result.json"
    argv = ["--samples", str(samples), "--output", str(out), "--cache-dir", cache_dir] + extra
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not out.exists() and not list(tmp_path.glob("*.json*"))
