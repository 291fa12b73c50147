"""Faults: a diverging run must never leave a non-finite checkpoint or export, nor exit 0."""

import os

import pytest

import faultlib
from faultlib import EXIT_FAILED, FLAGS

pytestmark = pytest.mark.slow


def _diverge(tmp_path, *flags):
    workdir = tmp_path / "run"
    result = faultlib.launch(*FLAGS, "--checkpoint_every=2", *flags, f"--workdir={workdir}",
                             cwd=tmp_path)
    return workdir, result


def test_huge_loss_parameter_stops_with_every_checkpoint_finite(tmp_path):
    """Issue 18 item 1: ``lam=1e38`` overflows; the "last good checkpoint" must be good."""
    workdir, result = _diverge(tmp_path, "--loss_params=lam=1e38")
    assert result.returncode == EXIT_FAILED, result.stderr[-2000:]
    assert "Non-finite" in result.stdout + result.stderr
    names = faultlib.assert_all_checkpoints_finite(workdir / "checkpoints")
    last_good = os.path.join(workdir, "checkpoints", names[-1]) if names else "none"
    assert f"Last good checkpoint: {last_good}" in result.stdout + result.stderr
    assert not (tmp_path / "saved_models").exists()


def test_exploding_learning_rates_never_export_a_broken_model(tmp_path):
    """Issue 18 item 2: lr=1e10 puts Inf in the generator's batch-norm moving variance; the
    run must stop naming it (exit 1), with no non-finite checkpoint and no export."""
    workdir, result = _diverge(tmp_path, "--generator_lr=1e10", "--critic_lr=1e10")
    text = result.stdout + result.stderr
    assert result.returncode == EXIT_FAILED, text[-2000:]
    assert "Non-finite weights" in text and "moving_variance" in text
    faultlib.assert_all_checkpoints_finite(workdir / "checkpoints")
    assert not (tmp_path / "saved_models").exists()
