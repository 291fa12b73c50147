"""Faults: bad input to the evaluation command and to the served model, huge flag values
(issue 18 items 8-10). Cheap: refused before any work."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import faultlib
from faultlib import EXIT_BAD_INPUT, FLAGS

pytestmark = pytest.mark.slow


def _evaluate(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mmd_keras.evaluation", *args], cwd=cwd,
                          env=faultlib.ENV, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, flag", [
    (["--num_samples=100", "--output={tmp}/missing/scores.json"], "--output"),
    (["--output={tmp}/scores.json", "--num_samples=0"], "--num_samples"),
], ids=["output_in_missing_folder", "zero_samples"])
def test_evaluate_refuses_before_any_work(tmp_path, reference, args, flag):
    models = reference[0].parent / "saved_models" / "run"
    before = faultlib.tree(tmp_path)
    result = _evaluate(f"--samples={models}", "--reference=digits", "--extractor=digits",
                       *(a.format(tmp=tmp_path) for a in args), cwd=tmp_path)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr[-2000:]
    assert flag in faultlib.error_line(result.stderr) and "Traceback" not in result.stderr
    assert faultlib.tree(tmp_path) == before


def test_steps_beyond_int64_is_refused_naming_steps(tmp_path):
    result = faultlib.launch(*FLAGS, "--steps=99999999999999999999",
                             f"--workdir={tmp_path / 'run'}", cwd=tmp_path, timeout=120)
    assert result.returncode == EXIT_BAD_INPUT
    assert "--steps" in faultlib.error_line(result.stderr)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("call, expected", [
    (lambda model: model.signatures["serving_default"](latents=tf.zeros([2, 7])),
     "Expected `latents` float32 [batch, 8]"),
    (lambda model: model.signatures["serving_default"](latents=tf.zeros([8])),
     "Expected `latents` float32 [batch, 8]"),
    (lambda model: model.signatures["sample"](batch_size=tf.constant(-1),
                                              seed=tf.constant(0, tf.int64)),
     "Expected `batch_size` an int32 scalar with 1 <= batch_size"),
], ids=["wrong_latent_size", "rank_1_latents", "negative_batch_size"])
def test_served_model_names_the_bad_input_and_the_expected_shape(reference, call, expected):
    """Issue 18 item 9: raw TF shape errors; now the input and what it must be are named."""
    model = tf.saved_model.load(str(reference[0].parent / "saved_models" / "run" / "1"))
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        call(model)
    assert expected in error.value.message


def test_served_model_refuses_nan_latents(reference):
    model = tf.saved_model.load(str(reference[0].parent / "saved_models" / "run" / "1"))
    latents = np.zeros([2, 8], np.float32)
    latents[1, 3] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        model.signatures["serving_default"](latents=tf.constant(latents))
    assert "Expected `latents` of finite values" in error.value.message


@pytest.mark.parametrize("content, flag", [(None, "--flagfile"), ("--steps=abc\n", "--steps"),
                                           ("--no_such_flag=1\n", "no_such_flag")],
                         ids=["missing_flagfile", "bad_value_in_flagfile", "unknown_flag"])
def test_bad_flagfiles_exit_2_naming_the_flag_and_write_nothing(tmp_path, content, flag):
    flagfile = tmp_path / "bad.cfg"
    if content is not None:
        flagfile.write_text(content)
    before = faultlib.tree(tmp_path)
    result = faultlib.launch(f"--flagfile={flagfile}", f"--workdir={tmp_path / 'run'}",
                             cwd=tmp_path, timeout=120)
    assert result.returncode == EXIT_BAD_INPUT
    assert flag in faultlib.error_line(result.stderr) and "Traceback" not in result.stderr
    assert faultlib.tree(tmp_path) == before
