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
