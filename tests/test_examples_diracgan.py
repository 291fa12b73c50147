"""examples/diracgan.py at reduced size: paper 2's Example 1 claims, in direction, from its JSON."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import diracgan  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("diracgan")
    assert diracgan.main(["--out", str(out), "--quick"]) == 0
    with open(out / "diracgan.json") as f:
        return out, json.load(f)


def test_library_losses_equal_the_closed_forms():
    theta = np.array([-3.0, -0.5, 0.2, 1.0, 4.0])
    psi = np.array([0.3, 2.0, 5.0, 1.0, 0.5])
    num_mu = diracgan.SETTINGS["quick"]["num_mu"]  # shares the quick run's compiled functions
    values = diracgan.evaluate("mmd", theta, psi, num_mu)
    mmd2 = 2.0 * (1.0 - np.exp(-0.5 * (psi * theta) ** 2))
    np.testing.assert_allclose(values[:, 0], mmd2, atol=1e-6)
    # −∂θ MMD² = −2ψ²θ·exp(−ψ²θ²/2); ∂ψ MMD² = 2ψθ²·exp(−ψ²θ²/2).
    e = np.exp(-0.5 * (psi * theta) ** 2)
    np.testing.assert_allclose(values[:, 1], -2 * psi**2 * theta * e, atol=1e-5)
    np.testing.assert_allclose(values[:, 2], 2 * psi * theta**2 * e, atol=1e-5)
    smmd = diracgan.evaluate("smmd", theta, psi, num_mu)[:, 0]
    np.testing.assert_allclose(smmd, mmd2 / (1.0 + 10.0 * psi**2), atol=1e-6)


def test_stuck_point_c_mmd_does_not_move_smmd_and_gcmmd_converge(quick_run):
    _, results = quick_run
    flows = results["flows"]
    steps = results["settings"]["steps"]
    assert flows["mmd"]["C"]["theta_moved"] < 1e-3
    assert flows["mmd"]["C"]["first_step_abs_theta_below_0.1"] is None
    assert flows["mmd"]["C"]["speed_at_start"] < 1e-10
    for name in ("smmd", "gcmmd"):
        reached = flows[name]["C"]["first_step_abs_theta_below_0.1"]
        assert reached is not None and reached < steps, name
        assert abs(flows[name]["C"]["final_theta"]) < 0.1
    # SMMD first flattens its critic (1/ψ grows) before θ moves: the paper's description of C.
    assert flows["smmd"]["C"]["final_inv_psi"] > 2 * flows["smmd"]["C"]["start_inv_psi"]
    # MMD itself is fine from A, and B sharpens the kernel and stalls away from 0.
    assert abs(flows["mmd"]["A"]["final_theta"]) < 0.1
    assert abs(flows["mmd"]["B"]["final_theta"]) > 1.0
    assert flows["mmd"]["B"]["final_inv_psi"] < flows["mmd"]["B"]["start_inv_psi"]


def test_optimized_distances_mmd_jumps_smmd_and_gcmmd_are_continuous(quick_run):
    _, results = quick_run
    d = results["distances_over_theta"]
    theta = np.array(d["theta"])
    positive = theta > 0
    np.testing.assert_allclose(np.array(d["mmd"])[theta != 0], np.sqrt(2.0), rtol=1e-4)
    assert d["mmd"][int(np.argmin(np.abs(theta)))] == 0.0
    for name in ("smmd", "gcmmd"):
        values = np.array(d[name])
        assert np.all(np.diff(values[positive]) > 0), name  # grows with θ > 0
        np.testing.assert_allclose(values, values[::-1], rtol=1e-4)  # symmetric
        smallest = np.min(np.abs(theta[theta != 0]))
        # Continuous at 0: at the smallest |θ| far below the MMD's jump to √2.
        assert values[np.abs(theta) == smallest][0] < 0.5 * np.sqrt(2.0), name


def test_critics_at_theta_20(quick_run):
    _, results = quick_run
    pulls = {label.split(" (")[0]: r for label, r in results["critics_theta_20"].items()}
    assert pulls["optimal SMMD"]["abs_slope_at_theta"] > 1e-3
    assert pulls["optimal MMD"]["abs_slope_at_theta"] < 1e-10
    assert pulls["ψ = 1"]["abs_slope_at_theta"] < 1e-10
    assert pulls["optimal SMMD"]["psi"] < 1.0 < pulls["optimal MMD"]["psi"]


def test_figures_written_and_small(quick_run):
    out, _ = quick_run
    for name in ("diracgan_fields.png", "diracgan_distances.png"):
        with open(out / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(out / name) < 300_000


@pytest.mark.parametrize("argv", [["--quick"], ["--out", "{tmp}/x", "--learning_rate", "-1"],
                                  ["--out", "{tmp}/x", "--steps", "0"], ["--out", "{file}"]])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, argv, cli_exit_2):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    err = cli_exit_2(diracgan.main, [a.format(tmp=tmp_path, file=a_file) for a in argv])
    assert sorted(os.listdir(tmp_path)) == ["a_file"]
    assert "Expected" in err or "required" in err
