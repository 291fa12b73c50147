"""Faults: a corrupted checkpoint folder (state file, truncated shard, nothing usable)."""

import os

import pytest

import faultlib
from faultlib import EXIT_BAD_INPUT, EXIT_OK, FLAGS, STEPS, ckpt

pytestmark = pytest.mark.slow


def _checkpoint_files(workdir):
    return {k: v for k, v in faultlib.tree(workdir / "checkpoints").items()
            if k.startswith("ckpt-")}


@pytest.mark.parametrize("garbage", [b"not a checkpoint state\n", b"\x00\xff\xfe\x80\x81"],
                         ids=["text", "binary"])
def test_unreadable_state_file_resumes_from_the_newest_checkpoint(tmp_path, trained, garbage):
    """Issue 18 items 3 and 9: TF's manager drops (text) or chokes on (binary) the state file
    and restarts from step 0, overwriting the checkpoints. Now: message naming the file, resume
    from the newest checkpoint on disk, old checkpoints untouched."""
    state = trained / "checkpoints" / "checkpoint"
    state.write_bytes(garbage)
    before = _checkpoint_files(trained)
    result = faultlib.launch(*FLAGS, f"--steps={STEPS + 10}", f"--workdir={trained}",
                             cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert str(state) in result.stdout and "set aside" in result.stdout
    assert f"Resuming from {ckpt(trained, STEPS)} at generator step {STEPS}" in result.stdout
    after = _checkpoint_files(trained)
    assert {k: after.get(k) for k in before} == before  # nothing overwritten
    assert (trained / "checkpoints" / "checkpoint.unreadable").read_bytes() == garbage
    assert faultlib.checkpoint_steps(trained / "checkpoints")[-1] == STEPS + 10


def test_truncated_data_shard_falls_back_to_the_previous_checkpoint(tmp_path, trained,
                                                                     reference):
    """Issue 18 item 9: ``IndexError: Read less bytes than requested`` named no file and did
    not fall back. Now: skipped with its file named; resume from ckpt-50 ends identical."""
    data = f"{ckpt(trained, STEPS)}.data-00000-of-00001"
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    result = faultlib.launch(*FLAGS, f"--workdir={trained}", cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert f"Skipped checkpoint {ckpt(trained, STEPS)}" in result.stdout and data in result.stdout
    assert f"Resuming from {ckpt(trained, STEPS - 10)}" in result.stdout
    faultlib.assert_same_checkpoint(ckpt(trained, STEPS), ckpt(reference[0], STEPS))


def test_no_usable_checkpoint_is_exit_2_naming_them_and_changes_nothing(tmp_path, trained):
    for name in os.listdir(trained / "checkpoints"):
        if ".data-" in name:
            (trained / "checkpoints" / name).write_bytes(b"")
    before = faultlib.tree(tmp_path)
    result = faultlib.launch(*FLAGS, f"--workdir={trained}", cwd=tmp_path)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr[-3000:]
    assert "--workdir" in faultlib.error_line(result.stderr)
    assert ckpt(trained, STEPS) in result.stderr and ckpt(trained, 10) in result.stderr
    assert "Traceback" not in result.stderr
    assert faultlib.tree(tmp_path) == before
