"""Faults: exports that were never finished, two runs with one name, unusable export folders."""

import os
import shutil

import pytest
import tensorflow as tf

import faultlib
from faultlib import EXIT_BAD_INPUT, EXIT_OK, FLAGS

pytestmark = pytest.mark.slow


def _loads(path):
    return "serving_default" in tf.saved_model.load(str(path)).signatures


def test_an_export_killed_mid_write_is_redone_not_claimed(tmp_path, trained):
    """Issue 18 item 5: the rerun printed "already exported" for a run folder holding only a
    temporary folder."""
    stale = tmp_path / "saved_models" / "run" / ".tmp-1-0123456789abcdef"
    (stale / "variables").mkdir(parents=True)
    (stale / "saved_model.pb").write_bytes(b"\x08\x01half")
    result = faultlib.launch(*FLAGS, f"--workdir={trained}", cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    version = tmp_path / "saved_models" / "run" / "1"
    assert "already exported" not in result.stdout
    assert f"SavedModel:      {version}" in result.stdout and _loads(version)
    assert not stale.exists()  # the stale temporary folder is cleaned


def test_two_runs_with_one_name_never_report_each_others_model(tmp_path, reference):
    """Issue 18 item 6: a/run and b/run both export as "run"."""
    first, second = tmp_path / "a" / "run", tmp_path / "b" / "run"
    shutil.copytree(reference[0], first)
    shutil.copytree(reference[0], second)
    models = tmp_path / "saved_models" / "run"
    a = faultlib.launch(*FLAGS, f"--workdir={first}", cwd=tmp_path)
    assert a.returncode == EXIT_OK and f"SavedModel:      {models / '1'}" in a.stdout, a.stderr
    b = faultlib.launch(*FLAGS, f"--workdir={second}", cwd=tmp_path)
    assert b.returncode == EXIT_OK, b.stderr[-3000:]
    assert f"SavedModel:      {models / '2'}" in b.stdout and _loads(models / "2")
    again = faultlib.launch(*FLAGS, f"--workdir={second}", cwd=tmp_path)
    assert again.returncode == EXIT_OK
    assert f"already exported: {models / '2'}" in again.stdout and str(models / "1") not in (
        again.stdout)


def test_read_only_export_dir_is_refused_before_training(tmp_path, tmpfs):
    """Issue 18 item 8: accepted, then failed after the whole training."""
    read_only = tmpfs(tmp_path / "ro", size="64k", read_only=True)
    before = faultlib.tree(tmp_path)
    result = faultlib.launch(*FLAGS, f"--export_dir={read_only}/models",
                             f"--workdir={tmp_path / 'run'}", cwd=tmp_path, timeout=120)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr[-3000:]
    assert "--export_dir" in faultlib.error_line(result.stderr)
    assert faultlib.tree(tmp_path) == before and not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag", ["export_dir", "workdir"])
def test_symlink_loop_is_refused_up_front(tmp_path, flag):
    """Issue 18 item 8: a looping --export_dir failed after training; a looping --workdir gave
    a FileExistsError traceback."""
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    paths = {"export_dir": f"{loop}/models", "workdir": f"{loop}/run"}
    if flag == "export_dir":
        paths["workdir"] = str(tmp_path / "run")
    before = faultlib.tree(tmp_path)
    result = faultlib.launch(*FLAGS, *(f"--{k}={v}" for k, v in paths.items()), cwd=tmp_path,
                             timeout=120)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr[-3000:]
    assert f"--{flag}" in faultlib.error_line(result.stderr)
    assert "symbolic link" in faultlib.error_line(result.stderr) and "Traceback" not in result.stderr
    assert faultlib.tree(tmp_path) == before
