"""mmd_keras.performance: thread pools set only when the user set none; the runtime report."""

import os
import subprocess
import sys

import pytest

from mmd_keras import performance

CHILD = """
import json, sys
import tensorflow as tf
from mmd_keras import performance
if sys.argv[1] == "user":
    tf.config.threading.set_inter_op_parallelism_threads(3)
applied = performance.configure_cpu_threads()
tf.constant(1.0) + 1.0  # the runtime starts: a later call cannot change the pools
late = performance.configure_cpu_threads(inter_op=2)
t = tf.config.threading
print(json.dumps([applied, late, t.get_intra_op_parallelism_threads(), t.get_inter_op_parallelism_threads(),
                  performance.runtime_report()["onednn"]]))
"""


def _child(mode, **env):
    environ = {k: v for k, v in os.environ.items() if k not in performance.USER_THREAD_VARIABLES}
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                          env={**environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    return json.loads(done.stdout.strip().splitlines()[-1])


def test_sets_pools_when_the_user_set_nothing_and_only_before_the_runtime_starts():
    applied, late, intra, inter, _ = _child("default")
    cpus = performance.available_cpus()
    assert applied == {"intra_op": cpus, "inter_op": 1}
    assert late is None and (intra, inter) == (cpus, 1)


@pytest.mark.parametrize("mode,env", [
    ("user", {}),
    pytest.param("default", {"OMP_NUM_THREADS": "1"}, marks=pytest.mark.slow),
    pytest.param("default", {"TF_NUM_INTEROP_THREADS": "2"}, marks=pytest.mark.slow)])
def test_leaves_the_users_settings_alone(mode, env):
    applied, _, intra, inter, _ = _child(mode, **env)
    assert applied is None
    assert (intra, inter) == ((0, 3) if mode == "user" else (0, 0))


@pytest.mark.slow
def test_onednn_switch_is_reported():
    assert _child("default", TF_ENABLE_ONEDNN_OPTS="0")[4] is False


@pytest.mark.parametrize("kwargs,arg", [({"intra_op": 0}, "intra_op"), ({"inter_op": True}, "inter_op"),
                                        ({"inter_op": 1.5}, "inter_op")])
def test_bad_values_name_the_argument(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}="):
        performance.configure_cpu_threads(**kwargs, environ={})


def test_runtime_report_fields():
    report = performance.runtime_report()
    assert report["conv_implementation"] in ("phases", "native")
    assert report["available_cpus"] >= 1 and any("CPU" in d for d in report["devices"])


# ------------------------------------------------------------------ oneDNN by default on x86
@pytest.mark.parametrize("machine, environ, expected", [
    ("x86_64", {}, "1"),                                   # AVX2 or AVX-512: oneDNN either way
    ("AMD64", {}, "1"),
    ("x86_64", {"TF_ENABLE_ONEDNN_OPTS": "0"}, "0"),      # the user's choice is kept
    ("x86_64", {"TF_ENABLE_ONEDNN_OPTS": "1"}, "1"),
    ("aarch64", {}, None),                                 # not x86: left to TensorFlow
])
def test_prefer_onednn_sets_the_variable_only_on_x86_and_only_when_unset(monkeypatch, machine, environ,
                                                                         expected):
    import platform

    monkeypatch.setattr(platform, "machine", lambda: machine)
    environ = dict(environ)
    assert performance.prefer_onednn(environ) == expected
    assert environ.get("TF_ENABLE_ONEDNN_OPTS") == expected


def test_eigen_kernels_on_x86_are_noted_once_with_the_fix(monkeypatch):
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setattr(performance, "kernel_set", lambda: "Eigen")
    monkeypatch.setitem(performance._noted, "kernel_set", False)
    lines = []
    line = performance.note_kernel_set(log=lines.append)
    assert lines == [line] and "Eigen" in line and "TF_ENABLE_ONEDNN_OPTS=1" in line
    assert performance.note_kernel_set(log=lines.append) is None and len(lines) == 1  # once
    monkeypatch.setitem(performance._noted, "kernel_set", False)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # chosen by the user: nothing to say
    assert performance.note_kernel_set(log=lines.append) is None and len(lines) == 1
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    monkeypatch.setattr(performance, "kernel_set", lambda: "oneDNN")
    assert performance.note_kernel_set(log=lines.append) is None and len(lines) == 1


@pytest.mark.slow
@pytest.mark.parametrize("user_value, expected", [(None, "oneDNN (TF_ENABLE_ONEDNN_OPTS=1)"),
                                                  ("0", "Eigen (TF_ENABLE_ONEDNN_OPTS=0)")])
def test_launcher_runs_onednn_kernels_unless_the_user_chose(tmp_path, user_value, expected):
    """`python -m mmd_keras.launch` reports the kernel set it trains with: oneDNN on any x86 CPU
    (TensorFlow's default only with AVX-512), Eigen when the user sets TF_ENABLE_ONEDNN_OPTS=0."""
    import platform

    if platform.machine().lower() not in performance.X86_MACHINES:
        pytest.skip("oneDNN-by-default applies to x86 CPUs")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=repo)
    if user_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user_value
    done = subprocess.run([sys.executable, "-m", "mmd_keras.launch", "--config=smoke", "--steps=2",
                           "--steps_per_epoch=2", "--export=false", f"--workdir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"TensorFlow CPU kernels: {expected}." in done.stdout
