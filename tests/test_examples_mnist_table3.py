"""examples/mnist_table3.py (issue 15): paper 1's Table 3 rows, the command-line errors, the
table beside the paper, and a reduced run on the real MNIST files."""

import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import mnist_table3  # noqa: E402

REAL_MNIST = os.environ.get("MMD_KERAS_TEST_MNIST") or os.path.join(ROOT, "..", "shared", "data", "mnist")


@pytest.mark.parametrize("argv, message", [
    (["--rows", "rq", "mmd_rq"], "--rows"),
    (["--steps", "0"], "--steps"),
    (["--seeds"], "--seeds"),
    (["--quick", "--paper_scale"], "--paper_scale"),
    (["--initialization", "glorot"], "--initialization"),
    (["--bn_momentum", "1.0"], "--bn_momentum"),
])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, cli_exit_2, argv, message):
    out = tmp_path / "out"
    assert message in cli_exit_2(mnist_table3.main, ["--out", str(out)] + argv)
    assert not out.exists()


def test_rows_are_paper1s_settings():
    """Paper 1 §5 and footnote 19: GP 1 (10 for dist / Cramér / WGAN-GP), L2 activation
    penalty 1 for rq* and 1e-4 for dist, top layers 16 / 256 / 1."""
    expected = {"rq": ("mmd", 1.0, 1.0, "rq_dot", 16), "rbf": ("mmd", 1.0, 0.0, "rbf", 16),
                "dot": ("mmd", 1.0, 0.0, "dot", 16), "dist": ("mmd", 10.0, 1e-4, "distance", 256),
                "cramer": ("cramer", 10.0, 0.0, None, 256), "wgan_gp": ("wgan_gp", 10.0, 0.0, None, 1)}
    for row, (loss, gp, act, kernel, top) in expected.items():
        name, params, kernel_object, output_dim = mnist_table3.row_settings(row)
        assert (name, params.get("gradient_penalty_weight"), params.get("activation_penalty_weight", 0.0),
                getattr(kernel_object, "name", None), output_dim) == (loss, gp, act, kernel, top)
    rbf = mnist_table3.row_settings("rbf")[2].get_config()
    assert tuple(rbf["sigmas"]) == (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)
    model = mnist_table3.build_model("wgan_gp", 0, generator_width=4)
    assert model.generator.output.shape[1:] == (28, 28, 1)
    assert [layer.filters for layer in model.critic.layers if hasattr(layer, "filters")] == [16, 32, 64, 128]


def _scores(value):
    return {"inception_score": {"mean": value, "std": 0.1}, "fid": {"mean": value, "std": 0.2},
            "kid": {"mean": value / 100, "std": 0.001}}


def _rows(values):
    """{row: {"runs", "seeds"}} with one run per FID value given (IS = FID, KID = FID / 100)."""
    rows = {row: {"runs": [_scores(v) for v in vs]} for row, vs in values.items()}
    for entry in rows.values():
        entry["seeds"] = mnist_table3.across_seeds(entry["runs"])
    return rows


def test_markdown_table_gives_seed_mean_and_sd_beside_paper1():
    rows = _rows({"rq": [8.0, 9.0, 10.0]})
    record = {"rows": rows, "test_set_floor": _scores(9.7), "untrained": _scores(1.0),
              "lenet": {"test_accuracy": 0.992}, "verdicts": [], "claims": [],
              "settings": {"steps": 800, "generator_widths": [128, 64, 32, 16], "num_generated": 10_000}}
    table = mnist_table3.markdown_table(record)
    # mean 9, SD (ddof=1) 1 of the three seeds, beside the paper's mean (SD)
    assert "| MMD rq* | 16 | 3 | 9.00 ± 1.00 | 9.11 (0.01) | 9.000 ± 1.000 | 4.206 (0.050) |" in table
    assert "| test set (train vs test) | — | — | 9.70 | 9.78 |" in table
    assert "800 generator steps per run" in table and "constant learning rates" in table


def test_verdicts_need_every_seed_of_one_row_to_beat_every_seed_of_the_other():
    """FID lower is better; the paper has cramer (3.385) < rq (4.206) < rbf (8.264)."""
    rows = _rows({"cramer": [1.0, 2.0, 3.0], "rq": [2.5, 4.0, 5.0], "rbf": [6.0, 7.0, 8.0]})
    fid = {(v["paper_better"], v["paper_worse"]): v["verdict"]
           for v in mnist_table3.verdicts(rows) if v["metric"] == "fid"}
    assert fid == {("cramer", "rq"): "inconclusive", ("rq", "rbf"): "separated",
                   ("cramer", "rbf"): "separated"}
    reversed_rows = _rows({"cramer": [9.0, 9.5, 10.0], "rq": [2.5, 4.0, 5.0], "rbf": [6.0, 7.0, 8.0]})
    fid = {(v["paper_better"], v["paper_worse"]): v["verdict"]
           for v in mnist_table3.verdicts(reversed_rows) if v["metric"] == "fid"}
    assert fid[("cramer", "rq")] == "reversed"
    claims = {c["claim"]: c["verdict"] for c in mnist_table3.claim_verdicts(rows)}
    assert claims["rbf is worse than every other model (it never fully catches up)"] == "reproduced"
    claims = {c["claim"]: c["verdict"] for c in mnist_table3.claim_verdicts(reversed_rows)}
    assert claims["rbf is worse than every other model (it never fully catches up)"] == "contradicted"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(REAL_MNIST), reason="no <repo>/../shared/data/mnist")
def test_reduced_run_on_real_mnist_beats_an_untrained_generator(tmp_path):
    record = mnist_table3.main(["--out", str(tmp_path), "--data_dir", REAL_MNIST, "--quick",
                                "--rows", "rq"], log=lambda message: None)
    saved = json.loads((tmp_path / "mnist_table3.json").read_text())
    assert saved["complete"] and list(saved["rows"]) == ["rq"]
    run = saved["rows"]["rq"]["runs"][0]
    for key in ("kid", "fid", "inception_score"):
        assert np.isfinite(run[key]["mean"]) and np.isfinite(run[key]["std"])
        assert np.isfinite(saved["test_set_floor"][key]["mean"])
    assert run["kid"]["mean"] < saved["untrained"]["kid"]["mean"]
    assert run["fid"]["mean"] < saved["untrained"]["fid"]["mean"]
    assert saved["test_set_floor"]["kid"]["mean"] < run["kid"]["mean"]
    assert run["kid_curve"] and all(np.isfinite(p["kid"]) for p in run["kid_curve"])
    assert saved["settings"]["steps"] == 40 and saved["paper_table3"]["rq"]["fid"] == [4.206, 0.05]
    assert saved["settings"]["learning_rate_schedule"] == "constant" and run["generator_lr_at_end"] == pytest.approx(1e-4)
    assert run["real_batches_per_step"] == 6 and saved["settings"]["initialization"] == "paper1_official"
    assert {"cpu_simd_flags", "kernel_set"} <= set(saved["machine"])
    for name in ("mnist_table3.md", "mnist_table3_samples.png", "mnist_table3_kid.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert record["rows"]["rq"]["runs"][0]["kid"] == run["kid"]
