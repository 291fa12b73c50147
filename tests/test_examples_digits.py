"""examples/digits_study.py (issue 8, study 3): a reduced run whose KID must beat an
untrained generator and stay above the real-vs-real floor, and the command-line errors."""

import json
import os
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
sys.path.insert(0, EXAMPLES)
import digits_study  # noqa: E402


@pytest.mark.parametrize("argv, message", [
    (["--losses", "mmd_rep", "mmd_rq"], "mmd_rq_star"),
    (["--lambdas", "0", "nan"], "--lambdas"),
    (["--lambdas", "1", "1"], "--lambdas"),
    (["--steps", "-5"], "--steps"),
    (["--seeds"], "--seeds"),
])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, cli_exit_2, argv, message):
    out = tmp_path / "out"
    assert message in cli_exit_2(digits_study.main, ["--out", str(out)] + argv)
    assert not out.exists()


def test_loss_names_build_the_papers_losses():
    rbf = digits_study.build_loss("mmd_rbf")
    assert rbf.name == "repulsive" and rbf.lam == -1.0 and len(rbf.kernel.get_config()["sigmas"]) == 5
    assert digits_study.build_loss("mmd_rep_b").bounded
    assert digits_study.build_loss("mmd_rq_star").gradient_penalty_weight == 1.0
    assert digits_study.build_loss(None, lam=0.5).lam == 0.5
    with pytest.raises(ValueError, match="mmd_rep"):
        digits_study.build_loss("mmd_rq")


@pytest.mark.slow
def test_reduced_run_beats_an_untrained_generator(tmp_path):
    record = digits_study.main(["--out", str(tmp_path), "--quick", "--steps", "200", "--losses", "mmd_rep",
                                "--lambdas"], log=lambda message: None)
    trained = record["losses"]["mmd_rep"]["kid"]["mean"]
    untrained = record["untrained"]["kid"]["mean"]
    floor = record["floor"]["mean"]
    assert trained < 0.8 * untrained, (trained, untrained)
    assert floor < 1.0 < trained, (floor, trained)  # 200 steps are far from real-vs-real
    assert record["complete"] and record["lambda_sweep"]["runs"] == []
    with open(tmp_path / "digits_study.json") as f:
        assert json.load(f)["losses"]["mmd_rep"]["kid"]["mean"] == pytest.approx(trained)
    for name in ("digits_study_samples.png", "digits_study.png"):
        assert 0 < os.path.getsize(tmp_path / name) < 300_000
