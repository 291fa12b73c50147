"""Faults: flags changed between a run and its resume."""

import re

import pytest

import faultlib
from faultlib import EXIT_BAD_INPUT, EXIT_OK, FLAGS, STEPS, ckpt

pytestmark = pytest.mark.slow


def test_changed_learning_rates_are_applied_logged_and_recorded(tmp_path, trained):
    """Issue 18 item 4. The rule: a learning-rate flag that differs from the one the workdir
    last ran with is applied on resume (replacing the checkpoint's, also a KID-decayed one) and
    logged; an unchanged flag keeps the checkpoint's value. flags.cfg records what ran."""
    result = faultlib.launch(*FLAGS, f"--steps={STEPS + 10}", "--generator_lr=0.0001",
                             f"--workdir={trained}", cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert re.search(r"--generator_lr changed: 0\.0002 -> 0\.0001", result.stdout), result.stdout
    assert "--critic_lr" not in result.stdout
    values = faultlib.checkpoint_values(ckpt(trained, STEPS + 10))
    assert values["generator_optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"] == (
        pytest.approx(1e-4))
    assert values["critic_optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"] == (
        pytest.approx(5e-4))
    assert "--generator_lr=0.0001" in (trained / "flags.cfg").read_text()


def test_lost_run_json_and_changed_latent_dim_blames_latent_dim_and_writes_nothing(
        tmp_path, trained):
    """Issue 18 item 9: the error blamed --architecture, wrote a TensorBoard file and rewrote
    .lock despite exit 2."""
    (trained / "run.json").unlink()
    before = faultlib.tree(tmp_path)
    result = faultlib.launch(*FLAGS, "--latent_dim=16", f"--workdir={trained}", cwd=tmp_path)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr[-3000:]
    line = faultlib.error_line(result.stderr)
    assert "--latent_dim" in line and "--latent_dim=8" in line and "--architecture" not in line
    assert faultlib.tree(tmp_path) == before


def test_changed_network_flag_with_run_json_is_refused_up_front(tmp_path, trained):
    before = faultlib.tree(tmp_path)
    result = faultlib.launch(*FLAGS, "--critic_widths=16", f"--workdir={trained}",
                             cwd=tmp_path)
    assert result.returncode == EXIT_BAD_INPUT
    assert "--critic_widths" in result.stderr and "Traceback" not in result.stderr
    assert faultlib.tree(tmp_path) == before
