"""Where the FID-Inception weights are looked for, and the errors when they are missing."""

import os

import pytest

from mmd_keras.evaluation import weights


def test_default_paths_follow_the_cache_env_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MMD_KERAS_CACHE", str(tmp_path / "cache"))
    assert weights.default_fid_weights_path() == str(tmp_path / "cache" / "fid_inception.npz")
    monkeypatch.delenv("MMD_KERAS_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert weights.default_cache_dir() == str(tmp_path / "home" / ".cache" / "mmd_keras")
    assert weights.default_fid_weights_path() == str(
        tmp_path / "home" / ".cache" / "mmd_keras" / "fid_inception.npz")


def test_resolution_explicit_path_then_existing_default(monkeypatch, tmp_path):
    monkeypatch.setenv("MMD_KERAS_CACHE", str(tmp_path))
    default = tmp_path / "fid_inception.npz"
    with pytest.raises(FileNotFoundError) as error:
        weights.resolve_fid_weights_path(None, flag="--eval_weights")
    message = str(error.value)
    assert "`--eval_weights=<converted .npz>`" in message and str(default) in message
    assert weights.FID_INCEPTION_SOURCE_URL in message and weights.CONVERT_COMMAND in message
    # The TensorFlow-only command is offered first, pytorch-fid's file as the alternative.
    assert 0 <= message.index("`python -m mmd_keras.tools.fid_weights`") < message.index(
        weights.CONVERT_COMMAND)
    default.write_bytes(b"x")
    assert weights.resolve_fid_weights_path(None) == str(default)
    assert weights.resolve_fid_weights_path("") == str(default)
    explicit = tmp_path / "mine.npz"
    with pytest.raises(FileNotFoundError, match=r"`--weights=.*mine.npz`"):
        weights.resolve_fid_weights_path(explicit, flag="--weights")
    explicit.write_bytes(b"x")
    assert weights.resolve_fid_weights_path(explicit) == str(explicit)


def test_extractor_names_match_the_registry():
    from mmd_keras.evaluation import extractors

    assert tuple(extractors.EXTRACTORS) == weights.EXTRACTOR_NAMES
    assert os.path.basename(weights.FID_INCEPTION_SOURCE_URL) == weights.FID_INCEPTION_SOURCE_FILE
