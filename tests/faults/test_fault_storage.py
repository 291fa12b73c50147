"""Faults: a full disk; remote storage through tf.io.gfile (ram:// stands in for gs://)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import faultlib
from faultlib import EXIT_FAILED, FLAGS, STEPS, ckpt

pytestmark = pytest.mark.slow


def test_disk_full_is_a_message_naming_the_path_and_old_checkpoints_survive(tmp_path,
                                                                            reference, tmpfs):
    """A size-limited tmpfs holding the workdir fills up at the next checkpoint."""
    disk = tmpfs(tmp_path / "disk", size="4m")
    workdir = disk / "run"
    shutil.copytree(reference[0], workdir)
    stat = os.statvfs(disk)
    used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
    # Room for flags.cfg, run.json, samples and TensorBoard, not for one more checkpoint.
    assert os.system(f"mount -o remount,size={used + 64 * 1024} {disk}") == 0
    before = faultlib.tree(workdir / "checkpoints")
    result = faultlib.launch(*FLAGS, f"--steps={STEPS + 20}", f"--workdir={workdir}",
                             f"--export_dir={tmp_path / 'models'}", cwd=tmp_path)
    assert result.returncode == EXIT_FAILED, result.stderr[-3000:]
    line = faultlib.error_line(result.stderr)
    assert "No space left on device" in line and str(disk) in line
    assert "Traceback" not in result.stderr
    after = faultlib.tree(workdir / "checkpoints")
    assert {k: after.get(k) for k in before} == before  # every old checkpoint intact
    assert not (tmp_path / "models").exists()


_RAM_RUN = """
import json, sys
import numpy as np, tensorflow as tf
from mmd_keras.app import launch, runner
flags = json.loads(sys.argv[1])
root = "ram://faults"
common = ["prog", *flags, f"--workdir={root}/run", f"--export_dir={root}/models"]
codes = [launch.main(common + ["--steps=30"]), launch.main(common)]
tf.io.gfile.makedirs(sys.argv[2])
for name in tf.io.gfile.listdir(f"{root}/run/checkpoints"):  # for the comparison outside
    tf.io.gfile.copy(f"{root}/run/checkpoints/{name}", f"{sys.argv[2]}/{name}", overwrite=True)
model = tf.saved_model.load(f"{root}/models/run/2")  # version 1: the export at step 30
config, _ = launch.parse(common)
gan = runner.build_model(config)
tf.train.Checkpoint(**gan.checkpoint_items()).restore(
    f"{root}/run/checkpoints/ckpt-{config.steps}").expect_partial()
latents = tf.random.stateless_uniform([4, config.latent_dim], seed=[1, 2], minval=-1, maxval=1)
served = model.signatures["serving_default"](latents=latents)["images"].numpy()
np.testing.assert_allclose(served, gan.generator(latents, training=False).numpy(), atol=1e-6)
print(json.dumps({"codes": codes, "files": sorted(tf.io.gfile.listdir(f"{root}/run")),
                  "samples": sorted(tf.io.gfile.listdir(f"{root}/run/samples"))}))
"""


def test_whole_run_resume_and_export_on_ram_filesystem(tmp_path, reference):
    """Issue 13 item 5: every run/checkpoint/sample/TensorBoard/export file through
    tf.io.gfile. ram:// lives in one process: both runs and the checks share it."""
    copy = tmp_path / "checkpoints"
    result = subprocess.run([sys.executable, "-c", _RAM_RUN, json.dumps(FLAGS), str(copy)],
                            cwd=tmp_path, env=faultlib.ENV, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0]
    assert {"flags.cfg", "run.json", "checkpoints", "samples", "tensorboard"} <= {
        f.rstrip("/") for f in report["files"]}
    assert "latest.png" in report["samples"] and f"step_{STEPS:07d}.png" in report["samples"]
    assert "Resuming from ram://faults/run/checkpoints/ckpt-30" in result.stdout
    faultlib.assert_same_checkpoint(str(copy / f"ckpt-{STEPS}"), ckpt(reference[0], STEPS))
    assert sorted(os.listdir(tmp_path)) == ["checkpoints"]  # nothing written locally
