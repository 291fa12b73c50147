"""FID Inception: parity with pytorch-fid on identical random weights; converter; errors."""

import sys
import types

import keras
import numpy as np
import pytest

from mmd_keras.evaluation import inception, weights
from mmd_keras.tools import convert_fid_inception


def _import_pytorch_fid():
    """Imports torch, torchvision's pure-Python model code and pytorch_fid.inception.

    PyPI's torchvision ships compiled ops built against CUDA torch; with the CPU torch they do
    not load, and ``torchvision._meta_registrations`` then fails on import. Only the model
    classes are needed, so that module is replaced by an empty one before the import.
    """
    torch = pytest.importorskip("torch")
    if "torchvision" not in sys.modules:
        name = "torchvision._meta_registrations"
        sys.modules.setdefault(name, types.ModuleType(name))
    torchvision = pytest.importorskip("torchvision")
    fid = pytest.importorskip("pytorch_fid.inception")
    return torch, torchvision, fid


def _random_state_dict(torch, torchvision, seed=0):
    """Random weights with pytorch-fid's keys and shapes, scaled to keep activations O(1)."""
    template = torchvision.models.inception_v3(
        weights=None, aux_logits=False, num_classes=inception.NUM_LOGITS,
        init_weights=False).state_dict()
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in template.items():
        shape = value.shape
        if key.endswith("num_batches_tracked"):
            out[key] = value
        elif value.ndim == 4:  # conv kernels: He-normal
            out[key] = torch.randn(shape, generator=gen) * (2.0 / np.prod(shape[1:])) ** 0.5
        elif key == "fc.weight":
            out[key] = torch.randn(shape, generator=gen) / shape[1] ** 0.5
        elif key.endswith(("bn.weight", "running_var")):
            out[key] = 0.6 + 0.8 * torch.rand(shape, generator=gen)
        else:  # bn.bias, running_mean, fc.bias
            out[key] = 0.2 * torch.randn(shape, generator=gen)
    return out


def _relative_error(ours, ref):
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


@pytest.mark.slow
def test_matches_pytorch_fid_on_random_weights(tmp_path, monkeypatch):
    torch, torchvision, fid = _import_pytorch_fid()
    state_dict = _random_state_dict(torch, torchvision)
    monkeypatch.setattr(fid, "load_state_dict_from_url", lambda *a, **k: state_dict)
    wrapper = fid.InceptionV3([fid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()

    # Non-square, not 299: exercises pytorch-fid's bilinear resize and [0, 1] -> [-1, 1] scaling.
    images01 = np.random.default_rng(0).uniform(size=(2, 3, 37, 45)).astype(np.float32)
    with torch.no_grad():
        x = torch.from_numpy(images01)
        ref_pool = wrapper(x)[0][:, :, 0, 0].numpy()
    # torchvision's Inception3 head after pool_3: dropout (identity in eval), then fc.
    ref_unbiased = ref_pool.astype(np.float64) @ state_dict["fc.weight"].numpy().T
    ref_logits = ref_unbiased + state_dict["fc.bias"].numpy()

    # End to end through the converter CLI: .pth -> .npz in the default cache -> extractor
    # found there with no path given.
    monkeypatch.setenv("MMD_KERAS_CACHE", str(tmp_path / "cache"))
    pth, npz = tmp_path / "pt_inception.pth", tmp_path / "cache" / "fid_inception.npz"
    torch.save(state_dict, pth)
    assert convert_fid_inception.main([str(pth)]) == 0
    extractor = inception.FIDInceptionExtractor(batch_size=2)
    assert extractor.get_config()["weights_path"] == str(npz)
    images = images01.transpose(0, 2, 3, 1) * 2 - 1

    pool, logits = extractor(images), extractor.logits(images)
    print("pool_3 max relative error", _relative_error(pool, ref_pool),
          "logits", _relative_error(logits, ref_logits),
          "pool_3 scale", float(np.abs(ref_pool).max()), float(ref_pool.std()))
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in extractor.model.layers) == (
        inception.NUM_CONV_LAYERS)
    assert ref_pool.std() > 1e-2  # the random weights give non-degenerate features
    np.testing.assert_allclose(pool, ref_pool, rtol=1e-4, atol=1e-4 * np.abs(ref_pool).max())
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4 * np.abs(ref_logits).max())
    np.testing.assert_allclose(extractor.logits(images, bias=False), ref_unbiased, rtol=1e-4,
                               atol=1e-4 * np.abs(ref_unbiased).max())
    probs = extractor.probabilities(images)
    expected = np.exp(ref_unbiased - ref_unbiased.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), atol=1e-5)
    # The converter refuses to overwrite without --overwrite and leaves the file as it was.
    before = npz.stat().st_mtime_ns
    assert convert_fid_inception.main([str(pth), str(npz)]) == 2
    assert npz.stat().st_mtime_ns == before


def _fake_state_dict(**changes):
    """pytorch-fid-style state dict with the right names and tiny arrays (structure only)."""
    convs = [f"layer{i}" for i in range(inception.NUM_CONV_LAYERS)]
    state = {f"{c}.conv.weight": np.zeros((1, 1, 1, 1)) for c in convs}
    for c in convs:
        state.update({f"{c}.bn.{n}": np.zeros(1) for n in ("weight", "bias", "running_mean",
                                                           "running_var")})
        state[f"{c}.bn.num_batches_tracked"] = np.zeros(())
    state.update({"fc.weight": np.zeros((1008, 2048)), "fc.bias": np.zeros(1008)})
    state.update(changes)
    return state


def _fake_weights(**changes):
    """Converted-weight dict with the right names and tiny arrays (structure checks only)."""
    return inception.keras_weights_from_state_dict(_fake_state_dict(**changes))


def test_conversion_layout_and_structure_checks():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(8, 4, 1, 7))  # torch [out, in, kh, kw]
    converted = inception.keras_weights_from_state_dict({
        "Mixed_6b.branch7x7_2.conv.weight": kernel, "Mixed_6b.branch7x7_2.bn.running_var":
        np.ones(8), "fc.weight": np.ones((3, 5)), "AuxLogits.fc.weight": np.ones(2)})
    assert sorted(converted) == ["Mixed_6b.branch7x7_2.bn/moving_variance",
                                 "Mixed_6b.branch7x7_2.conv/kernel", "fc/kernel"]
    out = converted["Mixed_6b.branch7x7_2.conv/kernel"]
    assert out.shape == (1, 7, 4, 8) and out[0, 3, 2, 5] == np.float32(kernel[5, 2, 0, 3])
    assert converted["fc/kernel"].shape == (5, 3)
    with pytest.raises(ValueError, match="unknown entry: `features.0.weight`"):
        inception.keras_weights_from_state_dict({"features.0.weight": np.ones((2, 2))})
    inception.check_converted_weights(_fake_weights())
    with pytest.raises(ValueError, match=r"Expected `fc.weight` of shape \(1008, 2048\)"):
        inception.check_converted_weights(_fake_weights(**{"fc.weight": np.zeros((1000, 2048))}))
    broken = _fake_weights()
    del broken["layer3.bn/beta"]
    with pytest.raises(ValueError, match="missing.*layer3.bn/beta"):
        inception.check_converted_weights(broken)


def test_missing_or_wrong_weights_file_errors_name_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "fid_inception.npz"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        inception.FIDInceptionExtractor(missing)
    untagged = tmp_path / "other.npz"
    np.savez(untagged, a=np.zeros(2))
    with pytest.raises(ValueError, match="tagged"):
        inception.load_fid_inception(untagged)


def test_converter_cli_rejects_bad_input(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    out = tmp_path / "out.npz"
    assert convert_fid_inception.main([str(tmp_path / "missing.pth"), str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(2, 2)}, bad)
    assert convert_fid_inception.main([str(bad), str(out)]) == 2
    assert "features.0.weight" in capsys.readouterr().err
    bad.write_bytes(b"not a torch file")
    assert convert_fid_inception.main([str(bad), str(out)]) == 2
    assert convert_fid_inception.main([str(bad), str(tmp_path / "out.h5")]) == 2
    assert not out.exists()


def test_converter_writes_the_default_cache_file_by_default(tmp_path, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    state = {key: torch.from_numpy(np.asarray(value, np.float32))
             for key, value in _fake_state_dict().items()}
    pth = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, pth)
    monkeypatch.setenv("MMD_KERAS_CACHE", str(tmp_path / "new" / "cache"))
    assert convert_fid_inception.main([str(pth)]) == 0
    default = tmp_path / "new" / "cache" / "fid_inception.npz"
    assert f"wrote {default}" in capsys.readouterr().out
    assert weights.resolve_fid_weights_path(None) == str(default)
    with np.load(default) as data:
        assert str(data["__format__"]) == inception.WEIGHTS_FORMAT


def test_converter_explains_missing_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=r"pip install \"mmd_keras\[torch\]\""):
        convert_fid_inception.read_state_dict("x.pth")
