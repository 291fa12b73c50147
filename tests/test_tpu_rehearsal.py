"""The TPU-VM rehearsal on CPU (``launch/tpu_rehearsal.sh``, :mod:`mmd_keras.tools.tpu_rehearsal`).

The rehearsal test runs ``launch/tpu_rehearsal.sh`` on the smoke config: ``launch/tpu_vm.sh``'s
own command line (read from the script) in one process with the TPU stood in for by a
MirroredStrategy over 2 logical CPU devices and ``gs://`` by ``ram://``: trained in
``mixed_bfloat16``, preempted by SIGTERM (exit 42), resumed by the same command from the
``ram://`` checkpoint (exit 0), exported and loaded back from ``ram://``, nothing written to the
local disk. The design-card config (``launch/tpu_rehearsal.sh configs/imagenet64.cfg``, paper 2's
schedule over 2 replicas with ``--steps_per_execution=2``) takes minutes of tracing on a 2-core
CPU, too long for the suite; paper 2's replicated multi-step function itself is tested in
tests/test_distribute.py.

What the stand-in cannot reach (a MirroredStrategy is not a TPUStrategy): XLA compilation for the
TPU (TPUStrategy compiles every replicated step; here the graph runs, and ``--jit_compile`` is
refused under MirroredStrategy, so the TPU command must not need it — it does not pass it),
Keras's TPU-only branches (``_is_tpu_strategy``: output reduction ``"first"``, per-host input
ordering), TPU variable/checkpoint placement, HBM limits, libtpu and TFDS on ``gs://``.
"""

import os
import subprocess
import sys

import pytest

from mmd_keras.tools import tpu_rehearsal

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_rehearsed_command_is_the_scripts_exec_line(tmp_path):
    """The command comes from launch/tpu_vm.sh itself: its flags in order, the flagfile made
    absolute (the script runs from the checkout), ``${TPU:-local}`` from the environment and
    the extra flags where ``"$@"`` stands; a changed script changes the rehearsal."""
    command = tpu_rehearsal.tpu_vm_command(None, ["--steps=3"], environ={})
    assert command == ["python", "-m", "mmd_keras.launch",
                       f"--flagfile={REPO}/configs/imagenet64.cfg", "--strategy=tpu",
                       "--tpu=local", "--mixed_precision=mixed_bfloat16", "--steps=3"]
    named = tpu_rehearsal.tpu_vm_command("configs/smoke.cfg", [], environ={"TPU": "my-tpu"})
    assert named[3:5] == [f"--flagfile={REPO}/configs/smoke.cfg", "--strategy=tpu"]
    assert "--tpu=my-tpu" in named
    script = tmp_path / "tpu_vm.sh"
    text = open(tpu_rehearsal.SCRIPT).read()
    script.write_text(text.replace("--mixed_precision=mixed_bfloat16", "--jit_compile"))
    changed = tpu_rehearsal.tpu_vm_command(None, [], environ={}, script=str(script))
    assert "--jit_compile" in changed and "--mixed_precision=mixed_bfloat16" not in changed
    script.write_text(text.replace('"${TPU:-local}"', '"${TPU_ADDRESS}"'))
    with pytest.raises(ValueError, match=r"TPU_ADDRESS"):
        tpu_rehearsal.tpu_vm_command(None, [], environ={}, script=str(script))


def _rehearse(tmp_path, *arguments):
    """Runs launch/tpu_rehearsal.sh as a user does, from an empty folder with an empty TMPDIR;
    ``(result, leftovers)``: what is left in both once the process has ended."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir(), tmp.mkdir()
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
           "PYTHONPATH": REPO, "TMPDIR": str(tmp), "TPU": "local"}
    result = subprocess.run([os.path.join(REPO, "launch", "tpu_rehearsal.sh"), *arguments],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    return result, list(cwd.iterdir()) + list(tmp.iterdir())


def _assert_rehearsed(result, leftovers, per_execution):
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"Stopped by SIGTERM at generator step {per_execution}" in result.stdout
    assert (f"Resuming from ram://rehearsal/runs/rehearsal/checkpoints/ckpt-{per_execution} at "
            f"generator step {per_execution}.") in result.stdout
    assert "Rehearsal passed:" in result.stdout and "rehearsal failed" not in output
    assert "--strategy=tpu --tpu=local --mixed_precision=mixed_bfloat16" in result.stdout
    assert leftovers == []


def test_rehearsal_of_the_smoke_config(tmp_path):
    """The whole rehearsal in seconds: smoke's joint schedule goes through Keras's own train
    loop, which the MirroredStrategy stand-in runs one step per call (keras-team/keras#19246)."""
    result, leftovers = _rehearse(tmp_path, "configs/smoke.cfg", "--steps_per_execution=1")
    _assert_rehearsed(result, leftovers, per_execution=1)
