"""Faults: SIGTERM, Ctrl-C and SIGKILL of a running training, and a second concurrent run."""

import os
import signal

import pytest

import faultlib
from faultlib import EXIT_BAD_INPUT, EXIT_OK, EXIT_PREEMPTED, FLAGS, STEPS, ckpt

pytestmark = pytest.mark.slow


#: No periodic checkpoint: any checkpoint of an interrupted run was written at the signal.
NO_PERIODIC = "--checkpoint_every=1000"


def _interrupt(tmp_path, signum):
    """Starts the suite's run (no periodic checkpoints), sends ``signum`` once step 10 has
    been logged; returns the workdir, exit code and output."""
    workdir = tmp_path / "run"
    process = faultlib.start(*FLAGS, NO_PERIODIC, f"--workdir={workdir}", cwd=tmp_path)
    try:
        faultlib.wait_for(lambda: "step 10/" in faultlib.output(tmp_path)[0], process)
        process.send_signal(signum)
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return workdir, code, *faultlib.output(tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_checkpoints_the_current_step_and_the_rerun_ends_identical(
        tmp_path, reference, signum):
    workdir, code, out, err = _interrupt(tmp_path, signum)
    name = signal.Signals(signum).name
    assert code == EXIT_PREEMPTED, (code, err[-2000:])
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    steps = faultlib.checkpoint_steps(workdir / "checkpoints")
    assert len(steps) == 1 and 10 <= steps[0] < STEPS, steps  # written at the signal
    stopped = steps[0]
    assert f"Stopped by {name} at generator step {stopped}" in out
    assert ckpt(workdir, stopped) in out
    # The TensorBoard tail up to the stop is on disk (scalars every 2 steps).
    logged = faultlib.scalar_steps(workdir / "tensorboard")
    assert logged[-1] == stopped - stopped % 2
    # The lock is released: the rerun resumes and ends where an uninterrupted run ends.
    resumed = faultlib.launch(*FLAGS, NO_PERIODIC, f"--workdir={workdir}", cwd=tmp_path)
    assert resumed.returncode == EXIT_OK, resumed.stderr[-3000:]
    assert f"Resuming from {ckpt(workdir, stopped)} at generator step {stopped}" in resumed.stdout
    faultlib.assert_same_checkpoint(ckpt(workdir, STEPS), ckpt(reference[0], STEPS))


def test_sigkill_inside_a_checkpoint_save_resumes_identical(tmp_path, reference):
    """SIGKILL as soon as a save's temporary files appear (else right after a checkpoint):
    the OS releases the lock, the half-written save is ignored, the resume is exact."""
    workdir = tmp_path / "run"
    folder = workdir / "checkpoints"

    def saving():
        names = os.listdir(folder) if folder.exists() else []
        return any("_temp" in n for n in names) or "ckpt-20.index" in names

    process = faultlib.start(*FLAGS, f"--workdir={workdir}", cwd=tmp_path)
    try:
        faultlib.wait_for(lambda: os.path.exists(ckpt(workdir, 10) + ".index") and saving(),
                          process)
        process.kill()
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert faultlib.checkpoint_steps(folder)[-1] < STEPS, "killed too late"
    resumed = faultlib.launch(*FLAGS, f"--workdir={workdir}", cwd=tmp_path)
    assert resumed.returncode == EXIT_OK, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout
    faultlib.assert_same_checkpoint(ckpt(workdir, STEPS), ckpt(reference[0], STEPS))


def test_a_second_run_on_a_busy_workdir_is_refused_and_writes_nothing(tmp_path):
    workdir = tmp_path / "run"
    first = faultlib.start(*FLAGS, "--steps=100000", f"--workdir={workdir}", cwd=tmp_path)
    try:
        faultlib.wait_for(lambda: os.path.exists(ckpt(workdir, 10) + ".index"), first)
        first.send_signal(signal.SIGSTOP)  # frozen: its files cannot change meanwhile
        before = faultlib.tree(workdir)
        second = faultlib.launch(*FLAGS, f"--workdir={workdir}", cwd=tmp_path)
        assert faultlib.tree(workdir) == before
        first.send_signal(signal.SIGCONT)
    finally:
        first.kill()
        first.wait()
    assert second.returncode == EXIT_BAD_INPUT
    assert "--workdir" in second.stderr and f"pid {first.pid}" in second.stderr
