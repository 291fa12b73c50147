"""examples/rank_collapse.py at reduced size (SMMD vs MMD-GP, 8 generator steps)."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import rank_collapse  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rank_collapse")
    assert rank_collapse.main(["--out", str(out), "--quick", "--methods", "smmd,mmd_gp"]) == 0
    with open(out / "rank_collapse.json") as f:
        return out, json.load(f)


@pytest.mark.slow
def test_unscaled_critic_gradient_grows_faster_than_smmd(quick_run):
    # Paper 2, Figure 2(c): the SMMD loss keeps σ⁻² = 1 + 10·E‖∇h‖² down; MMD-GP does not.
    _, results = quick_run
    smmd, mmd_gp = results["methods"]["smmd"], results["methods"]["mmd_gp"]
    assert smmd["sigma_inv_sq_start"] == pytest.approx(mmd_gp["sigma_inv_sq_start"], rel=1e-6)  # same init
    assert mmd_gp["sigma_inv_sq_end"] > 1.1 * smmd["sigma_inv_sq_end"]
    # The SMMD loss's own logged scale measures the same quantity on the training batch.
    assert smmd["smmd_sigma_inv_sq_end"] == pytest.approx(smmd["sigma_inv_sq_end"], rel=0.3)
    assert mmd_gp["smmd_sigma_inv_sq_end"] is None  # MMD-GP logs no scale


@pytest.mark.slow
def test_records_match_the_saved_spectra(quick_run):
    out, results = quick_run
    steps = results["settings"]["steps"]
    every = results["settings"]["every"]
    for method in ("smmd", "mmd_gp"):
        r = results["methods"][method]
        assert r["steps_recorded"] == list(range(0, steps + 1, every))
        with open(out / f"spectrum_{method}.json") as f:
            history = json.load(f)["history"]
        last = history[-1]["layers"]
        # Kernels read as [kh·kw·c_in, c_out]: 4×4×1 → 8 filters, 4×4×8 → 16, flatten 4·4·16 → 1.
        assert {name: layer["shape"] for name, layer in last.items()} == {
            "conv0": [16, 8], "conv1": [128, 16], "dense": [256, 1]}
        for name, layer in last.items():
            values = np.array(layer["singular_values"])
            assert values.size == min(layer["shape"]) and np.all(np.diff(values) <= 0)
            assert layer["condition_number"] == pytest.approx(values[0] / values[-1])
            assert r["layers"][name]["condition_number_end"] == pytest.approx(layer["condition_number"])
        assert np.isfinite(r["mmd2_last_10pct_mean"])
    with open(out / "rank_collapse.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv", [["--quick"], ["--out", "{tmp}/x", "--methods", "smmd,wgan"],
                                  ["--out", "{tmp}/x", "--every", "0"], ["--out", "{file}"]])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, argv, cli_exit_2):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    err = cli_exit_2(rank_collapse.main, [a.format(tmp=tmp_path, file=a_file) for a in argv])
    assert sorted(os.listdir(tmp_path)) == ["a_file"]
    assert "Expected" in err or "required" in err
