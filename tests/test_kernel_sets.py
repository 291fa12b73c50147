"""The numerics-sensitive tests pass under both of TensorFlow's CPU kernel sets.

x86 builds of TensorFlow ship two implementations of the dense kernels (matmul, convolution):
oneDNN's, the default on CPUs with AVX-512, and Eigen's, the default on CPUs with AVX2 only.
They round differently, so a tolerance fitted to one can fail on the other. The suite runs under
the machine's default; this test runs the files whose assertions compare floating-point values
(layers, convolutions, kernels, estimators, penalties, losses, models) once more in a child
process with the *other* kernel set (``TF_ENABLE_ONEDNN_OPTS`` flipped), so every machine checks
both. Their slow tests are left to the first pass (same code paths, bigger sizes).
"""

import os
import platform
import subprocess
import sys

import pytest

from mmd_keras import performance
from mmd_keras.layers import conv

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMERICS_FILES = ("test_base.py", "test_baselines.py", "test_conv.py", "test_estimators.py",
                  "test_gcmmd.py", "test_kernels.py", "test_layers.py", "test_mmd_family.py",
                  "test_models.py", "test_penalties.py", "test_fresh_batches.py")


def test_the_numerics_files_exist():
    """A renamed file must not silently drop out of the second pass."""
    missing = [name for name in NUMERICS_FILES if not os.path.exists(os.path.join(REPO, "tests", name))]
    assert not missing


@pytest.mark.slow
def test_numerics_files_pass_under_the_other_kernel_set():
    if platform.machine().lower() not in performance.X86_MACHINES:
        pytest.skip("TensorFlow has one CPU kernel set off x86")
    other = "0" if conv.onednn_enabled() else "1"
    env = {**os.environ, performance.ONEDNN_VARIABLE: other, "TF_CPP_MIN_LOG_LEVEL": "2"}
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
         "-W", "ignore::UserWarning", *(os.path.join("tests", name) for name in NUMERICS_FILES)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=3000)
    assert child.returncode == 0, (f"{performance.ONEDNN_VARIABLE}={other}:\n" + child.stdout[-6000:])
    check = subprocess.run(
        [sys.executable, "-c", "from mmd_keras.layers import conv; print(conv.onednn_enabled())"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert check.stdout.strip().splitlines()[-1] == str(other == "1")  # the flip took effect
