"""`mmd_keras.fileio`: atomic writes on local and gfile paths, up-front directory checks."""

import os
import uuid

import pytest
import tensorflow as tf

from mmd_keras import fileio
from mmd_keras.app.config import ConfigError
from mmd_keras.app.runner import checks


def test_atomic_write_replaces_whole_files_locally_and_on_ram(tmp_path):
    for root in (str(tmp_path), f"ram://fileio-{uuid.uuid4().hex[:8]}"):
        fileio.makedirs(root)
        path = fileio.join(root, "flags.cfg")
        fileio.atomic_write(path, "old")
        fileio.atomic_write(path, b"new bytes")
        assert fileio.read_text(path) == "new bytes"
        assert sorted(tf.io.gfile.listdir(root)) == ["flags.cfg"]  # no temporary left
    assert fileio.read_text(str(tmp_path / "missing")) is None


def test_paths_keep_urls_intact():
    assert fileio.join("gs://bucket/run", "checkpoints") == "gs://bucket/run/checkpoints"
    assert fileio.absolute("gs://bucket/run/") == "gs://bucket/run"
    assert fileio.absolute("run") == os.path.abspath("run")
    assert fileio.is_local("file:///tmp/x") and not fileio.is_local("ram://x")


def _refused(flag, path):
    with pytest.raises(ConfigError) as error:
        checks.check_directory(flag, path)
    assert error.value.flag == flag and f"`--{flag}={path}`" in str(error.value)
    return str(error.value)


def test_check_directory_names_loops_dangling_links_and_files(tmp_path):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    assert "symbolic link loop" in _refused("export_dir", f"{loop}/models")
    dangling = tmp_path / "dangling"
    os.symlink(tmp_path / "nowhere", dangling)
    assert "dangling symbolic link" in _refused("workdir", str(dangling))
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "is a file" in _refused("workdir", f"{a_file}/run")
    assert "is a file" in _refused("export_dir", str(a_file))
    checks.check_directory("workdir", str(tmp_path / "new" / "run"))  # creatable: fine
    checks.check_directory("workdir", "ram://anything")  # gfile paths: checked by writing


def test_check_directory_refuses_a_read_only_filesystem(tmp_path, tmpfs):
    read_only = tmpfs(tmp_path / "ro", size="64k", read_only=True)
    assert "read-only filesystem" in _refused("export_dir", f"{read_only}/models")


def test_atomic_path_replaces_only_on_success_and_keeps_the_suffix(tmp_path):
    target = tmp_path / "weights.npz"
    target.write_bytes(b"old")
    with fileio.atomic_path(str(target), suffix=".npz") as tmp:
        assert tmp.endswith(".npz") and tmp != str(target)
        with open(tmp, "wb") as f:
            f.write(b"new")
        assert target.read_bytes() == b"old"  # readers see the old file until the rename
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(str(target), suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.npz"]  # no temp left
