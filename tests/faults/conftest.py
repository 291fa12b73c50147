"""Fixtures of the fault-injection suite: ONE uninterrupted reference run shared by all cases."""

import shutil

import pytest

import faultlib


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """The suite's run (:data:`faultlib.FLAGS`), uninterrupted, run from its parent folder so
    the default ``--export_dir=saved_models`` lands beside it. Returns ``(workdir, result)``."""
    root = tmp_path_factory.mktemp("reference")
    result = faultlib.launch(*faultlib.FLAGS, f"--workdir={root / 'run'}", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run", result


@pytest.fixture
def trained(tmp_path, reference):
    """A private copy of the reference workdir in ``tmp_path/run`` (no export beside it)."""
    workdir = tmp_path / "run"
    shutil.copytree(reference[0], workdir, symlinks=True)
    return workdir
