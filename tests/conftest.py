"""Test set-up shared by every test module: float32 exactness, quiet TF, tiny shapes."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# A converted FID-Inception file in the user's cache must not change what the tests see: the
# suite (and every subprocess it starts) looks in an empty cache of its own.
import tempfile  # noqa: E402

os.environ["MMD_KERAS_CACHE"] = tempfile.mkdtemp(prefix="mmd_keras_test_cache_")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# TF32 would make float32 matmuls on Ampere+ GPUs agree with float64 references
# only to ~1e-3; the tests compare to 1e-5, so turn it off everywhere.
tf.config.experimental.enable_tensor_float_32_execution(False)


@pytest.fixture
def rng():
    """A fresh, seeded NumPy generator for one test."""
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts (and ends) under the float32 policy."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def cli_exit_2(capsys):
    """``cli_exit_2(main, argv) -> stderr``: asserts ``main(argv)`` exits with code 2."""

    def run(main, argv):
        with pytest.raises(SystemExit) as error:
            main(argv)
        assert error.value.code == 2
        return capsys.readouterr().err

    return run


def _free_ports(count):
    """``count`` TCP ports on 127.0.0.1 that were free a moment ago (for loopback workers)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="session")
def package_index():
    """Skips the test unless the package index (pypi.org:443) answers: a fresh install or pip's
    resolution needs it. Asked once per session, and only by the tests that need it."""
    import socket

    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        pytest.skip("the package index (pypi.org:443) is unreachable: pip cannot install or resolve "
                    "requirements offline")


@pytest.fixture
def free_ports():
    """The function ``free_ports(count) -> [port, ...]``."""
    return _free_ports


@pytest.fixture
def tmpfs():
    """``tmpfs(path, size="1m", read_only=False) -> path``: mounts a size-limited (or read-only)
    filesystem at the new folder ``path`` for the test, or skips with the reason: it needs root
    (as root, permission bits cannot stand in: root ignores them) and CAP_SYS_ADMIN."""
    mounted = []

    def mount(path, size="1m", read_only=False):
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (root ignores permission bits, so a "
                        "read-only or full folder cannot be faked otherwise)")
        os.makedirs(path)
        options = f"{'ro,' if read_only else ''}size={size}"
        if os.system(f"mount -t tmpfs -o {options} tmpfs {path} 2>/dev/null") != 0:
            pytest.skip("mount -t tmpfs failed (no CAP_SYS_ADMIN in this container)")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        os.system(f"umount {path}")


@pytest.fixture
def fake_tpu_system(monkeypatch):
    """Stands in for a Cloud TPU: ``TPUClusterResolver``, the connect/initialize calls and
    ``TPUStrategy`` record their arguments in the returned list. The resolver refuses a missing
    TPU name as TF's does (``tpu=None`` without ``TPU_NAME``); ``TPU_NAME`` is unset."""
    calls = []

    class Resolver:
        def __init__(self, tpu=None, **kwargs):
            if tpu is None and not os.environ.get("TPU_NAME"):
                raise ValueError("Please provide a TPU Name to connect to.")
            self.tpu = tpu
            calls.append(("resolver", tpu, kwargs))

    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", Resolver)
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster",
                        lambda resolver: calls.append(("connect", resolver.tpu)))
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system",
                        lambda resolver: calls.append(("initialize", resolver.tpu)))
    monkeypatch.setattr(tf.distribute, "TPUStrategy", lambda resolver: ("TPUStrategy", resolver.tpu))
    return calls
