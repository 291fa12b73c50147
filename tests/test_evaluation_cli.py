"""`python -m mmd_keras.evaluation`: sources, recorded parameters, metric values, bad input, help."""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import datasets, export, rng as rng_lib
from mmd_keras.app import evaluate as cli
from mmd_keras.evaluation import digits_classifier, metrics


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


@pytest.mark.filterwarnings("error::scipy.linalg.LinAlgWarning")  # n < d: FID handles it silently
def test_npz_against_digits_records_everything_and_matches_metrics(tmp_path, cache_dir, capsys):
    real, _ = datasets.digits_images("train", 16)
    samples = real[:120] + 0.0
    samples[:, :8] = -1.0  # visibly different from the reference
    np.savez(tmp_path / "samples.npz", images=samples)
    out = tmp_path / "result.json"
    argv = ["--samples", str(tmp_path / "samples.npz"), "--reference", "digits", "--output",
            str(out), "--cache_dir", cache_dir, "--kid_subsets", "20", "--seed", "3"]
    assert cli.main(argv) == 0
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
    # The one-subset variance estimate is reported (issue 14 item 8) and printed.
    assert report["metrics"]["kid"]["variance_estimator"] == "unbiased"
    np.testing.assert_allclose(report["metrics"]["kid"]["variance"], kid.variance, rtol=1e-5)
    printed = capsys.readouterr().out
    assert "kid:" in printed and "one-subset estimator variance" in printed
    # An existing output is never replaced without --overwrite.
    assert cli.main(argv) == 2
    assert cli.main(argv + ["--overwrite", "--metrics", "kid"]) == 0
    assert set(json.loads(out.read_text())["metrics"]) == {"kid"}


def test_folder_and_generator_sources(tmp_path, cache_dir):
    images = np.random.default_rng(0).integers(0, 256, size=(6, 16, 16, 1), dtype=np.uint8)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(images):
        tf.io.write_file(str(folder / f"{i:03d}.png"), tf.io.encode_png(image))
    loaded, info = cli.load_images(str(folder))
    np.testing.assert_allclose(loaded, images / 127.5 - 1, atol=1e-6)
    assert info["kind"] == "folder" and info["n"] == 6

    latents = keras.Input((4,))
    generator = keras.Model(latents, keras.layers.Reshape((4, 4, 1))(
        keras.layers.Dense(16, activation="tanh")(latents)))
    run = tmp_path / "export" / "tiny"
    export.export_generator(generator, str(tmp_path / "export"), "tiny")
    first, info = cli.load_images(str(run), num_samples=5, seed=1, batch_size=2)
    again, _ = cli.load_images(str(run / "1"), num_samples=5, seed=1, batch_size=2)
    other, _ = cli.load_images(str(run), num_samples=5, seed=2, batch_size=2)
    assert first.shape == (5, 4, 4, 1) and info["saved_model"] == str(run / "1")
    np.testing.assert_array_equal(first, again)  # deterministic in the seed
    assert not np.allclose(first, other)
    # The images are the generator's outputs for the `sample` signature's latents.
    seed0 = int(np.random.SeedSequence([1, 0]).generate_state(1, np.uint64)[0] >> 1)
    z = rng_lib.generation_latents(2, 4, "uniform", seed0)
    np.testing.assert_allclose(first[:2], generator(z).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="--num_samples"):
        cli.load_images(str(run))


@pytest.mark.parametrize("setup, extra, message", [
    ("missing", [], "not found or unsupported"),
    ("range", [], "in [-1, 1]"),
    ("ok", ["--kid_subset_size", "500"], "subset"),
    ("ok", ["--metrics", "kid,ssim"], "Expected metrics"),
    ("ok", ["--num_samples", "50"], "at least 50"),
    ("ok", ["--extractor", "fid_inception", "--weights", "/nonexistent/fid.npz"],
     "/nonexistent/fid.npz"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, cache_dir, capsys, setup, extra, message):
    samples = tmp_path / "samples.npz"
    if setup != "missing":
        values = np.zeros((10, 16, 16, 1), np.float32) + (3.0 if setup == "range" else 0.0)
        np.savez(samples, images=values)
    out = tmp_path / "result.json"
    argv = ["--samples", str(samples), "--output", str(out), "--cache_dir", cache_dir] + extra
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not out.exists() and not list(tmp_path.glob("*.json*"))


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs the CLI module as __main__ and reports whether TensorFlow/Keras got imported.
_RUN_AND_REPORT = """
import runpy, sys, time
start = time.time()
if {skip_package_init}:  # the evaluation code alone, without mmd_keras/__init__.py
    import types
    package = types.ModuleType("mmd_keras")
    package.__path__ = [{root!r} + "/mmd_keras"]
    sys.modules["mmd_keras"] = package
sys.argv = ["evaluate"] + {argv!r}
try:
    runpy.run_module({module!r}, run_name="__main__")
    code = 0
except SystemExit as error:
    code = error.code
loaded = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print("REPORT", code, ",".join(loaded) or "none", time.time() - start, file=sys.stderr)
"""


def _run_cli(argv, module="mmd_keras.evaluation", skip_package_init=False, env=None):
    """(exit code, stdout, stderr, modules loaded, seconds) of the CLI in a fresh process."""
    code = _RUN_AND_REPORT.format(skip_package_init=skip_package_init, root=ROOT, argv=argv,
                                  module=module)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env={**os.environ, **(env or {})})
    report = [line for line in result.stderr.splitlines() if line.startswith("REPORT ")]
    assert report, result.stderr
    _, exit_code, loaded, seconds = report[-1].split()
    return int(exit_code), result.stdout, result.stderr, loaded, float(seconds)


def _assert_full_help(exit_code, stdout):
    assert exit_code == 0
    lines = stdout.splitlines()
    for name in cli.FLAGS:  # every flag once, at the start of its line, with default and help
        flag_lines = [i for i, line in enumerate(lines)
                      if line.startswith((f"  --{name}  (default: ", f"  --[no]{name}  "))]
        assert len(flag_lines) == 1, name
        words = cli.FLAGS[name].help.split(">: ", 1)[-1].split()[:3]
        assert " ".join(words) in lines[flag_lines[0] + 1], name
    assert "  --reference  (default: digits)" in lines and "  --kid_subsets  (default: 100)" in lines
    assert "      accepted: subsets, blocks" in lines
    # Where the FID-Inception weights come from, the command converting them, where they go.
    assert "pt_inception-2015-12-05-6726825d.pth" in stdout
    assert "python -m mmd_keras.tools.convert_fid_inception" in stdout
    assert "python -m mmd_keras.tools.fid_weights" in stdout
    assert "fid_inception.npz" in stdout and "MMD_KERAS_CACHE" in stdout


def test_help_lists_every_flag_and_the_evaluation_code_imports_no_tensorflow():
    module = "mmd_keras.evaluation"
    exit_code, stdout, _, loaded, seconds = _run_cli(["--help"], module, skip_package_init=True)
    _assert_full_help(exit_code, stdout)
    assert loaded == "none" and seconds < 2.0, (loaded, seconds)
    exit_code, _, stderr, loaded, seconds = _run_cli(["--num_samples=0"], module,
                                                     skip_package_init=True)
    assert exit_code == 2 and "--num_samples" in stderr
    assert loaded == "none" and seconds < 2.0, (loaded, seconds)


def test_help_is_sectioned_plain_text_with_runnable_examples():
    """`--help` as the launcher's: sections of flags in order, no reStructuredText markup and no
    absl module dump, and each example a shell command whose lines continue with a backslash."""
    exit_code, stdout, _, _, _ = _run_cli(["--help"], "mmd_keras.evaluation")
    assert exit_code == 0
    lines = stdout.splitlines()
    assert lines[0].startswith("usage: python -m mmd_keras.evaluation --samples=SOURCE "
                               "--output=FILE.json")
    sections = [lines.index(f"{name}:") for name in ("inputs", "features", "metrics", "output")]
    assert sections == sorted(sections)
    assert lines.index("inputs:") < lines.index("  --samples  (default: none)") < sections[1]
    assert lines.index("  --output  (default: none)") > sections[3]
    for markup in ("``", ":mod:", ":func:", "mmd_keras.app.evaluate:", "<digits|"):
        assert markup not in stdout, markup
    assert not any(line.rstrip().endswith("::") for line in lines)
    commands = [i for i, line in enumerate(lines) if line.startswith("    python -m ")]
    assert len(commands) >= 2
    for i in commands:  # a command's lines: each ends with " \\" until the last one
        assert lines[i].endswith(" \\") and lines[i + 1].startswith("        --"), lines[i:i + 2]
        assert not lines[i + 1].endswith("\\") and "--output=scores.json" in lines[i + 1]


def test_help_and_flag_errors_import_no_tensorflow_through_the_package():
    exit_code, stdout, _, loaded, seconds = _run_cli(["--help"])
    _assert_full_help(exit_code, stdout)
    assert loaded == "none" and seconds < 2.0, (loaded, seconds)
    exit_code, _, stderr, loaded, seconds = _run_cli(["--kid_subsets=0"])
    assert exit_code == 2 and "--kid_subsets" in stderr
    assert loaded == "none" and seconds < 2.0, (loaded, seconds)


def test_missing_output_folder_and_bad_numbers_fail_up_front_in_the_real_tool(tmp_path):
    """Issue 18: exit 2 before anything is computed or written (the real command line)."""
    samples = tmp_path / "samples.npz"
    np.savez(samples, images=np.zeros((10, 16, 16, 1), np.float32))
    before = sorted(os.listdir(tmp_path))
    for argv, flag in [
        (["--samples", str(samples), "--output", str(tmp_path / "missing" / "o.json")],
         "--output"),
        (["--samples", str(samples), "--output", str(tmp_path / "o.json"), "--num_samples",
          "0"], "--num_samples"),
    ]:
        start = time.time()
        result = subprocess.run([sys.executable, "-m", "mmd_keras.evaluation", *argv],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, result.stderr
        error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert error and flag in error[0], result.stderr
        assert "Traceback" not in result.stderr
        assert sorted(os.listdir(tmp_path)) == before, time.time() - start


@pytest.mark.parametrize("extra, flag", [
    (["--num_samples=0"], "--num_samples"),
    (["--num_samples=1"], "--num_samples"),
    (["--num_samples=abc"], "--num_samples"),
    (["--num_reference=1"], "--num_reference"),
    (["--kid_subsets=0"], "--kid_subsets"),
    (["--kid_subset_size=1"], "--kid_subset_size"),
    (["--is_splits=0"], "--is_splits"),
    (["--batch_size=0"], "--batch_size"),
    (["--seed=-1"], "--seed"),
    (["--extractor=vgg"], "--extractor"),
    (["--kid_method=all"], "--kid_method"),
    (["--kid_variance=exact"], "--kid_variance"),
    (["--bogus=1"], "bogus"),
    (["--output=OUT/missing/o.json"], "--output"),
    (["--output=OUT"], "--output"),
    (["--extractor=fid_inception"], "--weights"),
    (["--extractor=fid_inception", "--weights=OUT/none.npz"], "--weights=OUT/none.npz"),
])
def test_bad_flags_exit_2_naming_the_flag_before_any_work(tmp_path, monkeypatch, capsys,
                                                          extra, flag):
    monkeypatch.setenv("MMD_KERAS_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(cli, "load_images", lambda *a, **k: pytest.fail("work was started"))
    samples = tmp_path / "samples.npz"
    np.savez(samples, images=np.zeros((10, 16, 16, 1), np.float32))
    extra = [arg.replace("OUT", str(tmp_path)) for arg in extra]
    argv = ["--samples", str(samples), "--output", str(tmp_path / "o.json")] + extra
    before = sorted(os.listdir(tmp_path))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and flag.replace("OUT", str(tmp_path)) in err, err
    assert sorted(os.listdir(tmp_path)) == before


def test_missing_fid_weights_error_says_how_to_get_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMD_KERAS_CACHE", str(tmp_path))
    argv = ["--samples=digits", f"--output={tmp_path / 'o.json'}", "--extractor=fid_inception"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "`--weights=<converted .npz>`" in err and "weights_path" not in err
    assert str(tmp_path / "fid_inception.npz") in err
    assert "python -m mmd_keras.tools.convert_fid_inception" in err
    assert err.index("`python -m mmd_keras.tools.fid_weights`") < err.index("convert_fid_inception")


def test_flags_have_one_spelling(tmp_path):
    """``--snake_case`` only: a ``--dash-case`` spelling is an unknown flag, named."""
    flag_values = cli.parse(["--samples=digits", f"--output={tmp_path / 'o.json'}",
                             "--kid_subsets", "7", "--num_samples=12", "--cache_dir", "c"])
    assert (flag_values.kid_subsets, flag_values.num_samples, flag_values.cache_dir) == (7, 12, "c")
    with pytest.raises(ValueError, match="num-samples"):
        cli.parse(["--samples=digits", f"--output={tmp_path / 'o.json'}", "--num-samples=12"])


@pytest.mark.slow
@pytest.mark.filterwarnings("error::scipy.linalg.LinAlgWarning")
def test_the_real_command_writes_the_same_report_as_main(tmp_path, cache_dir):
    real, _ = datasets.digits_images("train", 16)
    np.savez(tmp_path / "samples.npz", images=real[:60])
    argv = [f"--samples={tmp_path / 'samples.npz'}", "--reference=digits", f"--cache_dir={cache_dir}",
            "--metrics=kid", "--kid_subsets=5", "--seed=2", "--kid_variance=official"]
    result = subprocess.run([sys.executable, "-m", "mmd_keras.evaluation", *argv,
                             f"--output={tmp_path / 'cli.json'}"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "one-subset estimator variance" in result.stdout and "official" in result.stdout
    assert cli.main(argv + [f"--output={tmp_path / 'main.json'}"]) == 0
    from_cli = json.loads((tmp_path / "cli.json").read_text())["metrics"]["kid"]
    from_main = json.loads((tmp_path / "main.json").read_text())["metrics"]["kid"]
    assert from_cli["variance_estimator"] == "official"
    for key in ("mean", "std", "variance"):
        np.testing.assert_allclose(from_cli[key], from_main[key], rtol=1e-6)


def test_saved_model_dir_skips_versions_without_the_export_marker(tmp_path):
    """A version folder without the marker (an export cut short) is never scored once a
    finished, marked version exists; with no marker anywhere the newest version is taken."""
    from mmd_keras import export
    from mmd_keras.app import evaluate as cli

    for version, marked in (("1", True), ("3", False)):
        folder = tmp_path / version
        folder.mkdir()
        (folder / "saved_model.pb").write_bytes(b"")
        if marked:
            (folder / export.MARKER).write_text("{}")
    assert cli._saved_model_dir(str(tmp_path)) == str(tmp_path / "1")
    (tmp_path / "1" / export.MARKER).unlink()
    assert cli._saved_model_dir(str(tmp_path)) == str(tmp_path / "3")


def test_kid_summary_never_prints_sd_nan_for_a_negative_variance_estimate():
    import dataclasses

    # The exactly unbiased variance estimate of a 5-row subset is negative for some draws;
    # the printed line must say so (and why) rather than print `sd nan`.
    rng = np.random.default_rng(0)
    fake, real = rng.normal(size=(40, 8)), rng.normal(size=(200, 8))
    results = [metrics.kernel_inception_distance(fake, real, num_subsets=1, subset_size=5,
                                                 seed=seed) for seed in range(20)]
    negative = next(r for r in results if r.variance < 0)
    positive = next(r for r in results if r.variance > 0)
    line = cli._summary("kid", {**dataclasses.asdict(negative), "scale": "raw"})
    assert "nan" not in line and f"variance {negative.variance:.6g} < 0, so no sd" in line
    assert "--kid_subset_size" in line
    line = cli._summary("kid", {**dataclasses.asdict(positive), "scale": "raw"})
    assert f"sd {np.sqrt(positive.variance):.6g}; unbiased)" in line and "nan" not in line
