"""Shared machinery of the fault-injection suite (not a test module).

Every case runs the real command line, ``python -m mmd_keras.launch``, as a subprocess — real
signals, real files — and asserts three things: the exit code, a message naming the culprit,
and (where the run must not write) that no file changed (:func:`tree` before and after).
"""

import hashlib
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SMOKE = os.path.join(REPO, "configs", "smoke.cfg")
#: The suite's run: the deterministic smoke run, 60 generator steps (about 1.5 s of training,
#: long enough to signal it mid-run), a checkpoint every 10 steps, all kept.
STEPS = 60
FLAGS = [f"--flagfile={SMOKE}", "--deterministic", f"--steps={STEPS}", "--checkpoint_every=10",
         "--keep_checkpoints=10", "--sample_every=10", "--log_every=2"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1"}
#: Exit codes of the launcher.
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_PREEMPTED = 0, 1, 2, 42


def launch(*args, cwd, timeout=300):
    """Runs the launcher with ``args``; the CompletedProcess (text stdout/stderr)."""
    return subprocess.run([sys.executable, "-m", "mmd_keras.launch", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def start(*args, cwd):
    """Starts the launcher; its output goes to ``cwd/stdout.txt`` and ``cwd/stderr.txt``."""
    out = open(os.path.join(cwd, "stdout.txt"), "w")
    err = open(os.path.join(cwd, "stderr.txt"), "w")
    return subprocess.Popen([sys.executable, "-m", "mmd_keras.launch", *args], cwd=cwd,
                            env=ENV, stdout=out, stderr=err)


def output(cwd):
    """``(stdout, stderr)`` written by a process of :func:`start`."""
    with open(os.path.join(cwd, "stdout.txt")) as out, open(
            os.path.join(cwd, "stderr.txt")) as err:
        return out.read(), err.read()


def wait_for(condition, process, timeout=240, poll=0.005):
    """Polls ``condition()`` until true; fails if ``process`` ends first or time runs out."""
    deadline = time.time() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (code {process.returncode}) before the fault")
        if time.time() > deadline:
            raise AssertionError("timed out waiting for the fault point")
        time.sleep(poll)


def tree(root):
    """``{relative path: sha256}`` of every file under ``root``; symlinks by their target."""
    digests = {}
    for folder, dirs, names in os.walk(root):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            key = os.path.relpath(path, root)
            if os.path.islink(path):
                digests[key] = "-> " + os.readlink(path)
            else:
                with open(path, "rb") as f:
                    digests[key] = hashlib.sha256(f.read()).hexdigest()
    return digests


def ckpt(workdir, step):
    """Path prefix of ``ckpt-<step>`` in ``workdir``."""
    return os.path.join(workdir, "checkpoints", f"ckpt-{step}")


def checkpoint_values(path):
    """``{key: array}`` of a checkpoint, without the save counter and the object graph."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(path)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if not key.startswith("save_counter") and "OBJECT_GRAPH" not in key}


def assert_same_checkpoint(path, reference):
    """Every tensor of checkpoint ``path`` equals the one of ``reference`` bitwise."""
    values, expected = checkpoint_values(path), checkpoint_values(reference)
    assert values.keys() == expected.keys() and len(values) > 10
    for key, value in expected.items():
        np.testing.assert_array_equal(values[key], value, err_msg=key)


def assert_all_checkpoints_finite(directory):
    """Every floating-point tensor of every ``ckpt-N`` in ``directory`` is finite; returns
    their names (none when no checkpoint was written)."""
    if not os.path.isdir(directory):
        return []
    names = sorted(n[:-len(".index")] for n in os.listdir(directory) if n.endswith(".index"))
    for name in names:
        for key, value in checkpoint_values(os.path.join(directory, name)).items():
            if value.dtype.kind == "f":
                assert np.all(np.isfinite(value)), f"{name}: {key} is not finite"
    return names


def error_line(stderr):
    """The launcher's ``error: ...`` line in ``stderr`` (TensorFlow may log before it), or ""."""
    return next((line for line in stderr.splitlines() if line.startswith("error: ")), "")


def checkpoint_steps(directory):
    """Sorted steps N of the ``ckpt-N.index`` files in ``directory``."""
    return sorted(int(n[len("ckpt-"):-len(".index")]) for n in os.listdir(directory)
                  if n.startswith("ckpt-") and n.endswith(".index"))


def scalar_steps(tensorboard_dir, tag="generator_loss"):
    """Steps at which the TensorBoard event files hold scalar ``tag``."""
    import tensorflow as tf

    steps = []
    for name in sorted(os.listdir(tensorboard_dir)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(tensorboard_dir, name)):
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return sorted(steps)
