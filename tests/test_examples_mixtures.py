"""examples/mixtures.py (issue 8, study 2): the metrics on hand-made samples, a reduced
training run whose numbers must move the right way, and the command-line errors."""

import json
import os
import sys

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
sys.path.insert(0, EXAMPLES)
import mixtures  # noqa: E402

from mmd_keras import datasets  # noqa: E402


def _ring8_samples(rng, n, modes=range(8)):
    centres = datasets.ring8_modes()[list(modes)]
    return centres[rng.integers(0, len(centres), n)] + mixtures.STD * rng.standard_normal((n, 2))


def test_scores_of_hand_made_samples(rng):
    reference = _ring8_samples(rng, 1000)
    full = mixtures.score("ring8", _ring8_samples(rng, 1000), reference)
    collapsed = mixtures.score("ring8", _ring8_samples(rng, 1000, modes=[3]), reference)
    far = mixtures.score("ring8", _ring8_samples(rng, 1000) + 1.0, reference)
    assert full["modes_covered"] == 8 and full["high_quality"] > 0.97  # 3σ holds 98.9 % in 2-D
    assert abs(full["mmd2"]) < 0.01
    assert collapsed["modes_covered"] == 1 and collapsed["high_quality"] > 0.97
    assert collapsed["mmd2"] > 0.1
    assert far["high_quality"] < 0.05 and far["mmd2"] > 0.1


def test_moons_segments_and_quality(rng):
    t = rng.uniform(0, np.pi, 1000)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    counts, quality = mixtures.mode_statistics("moons", np.concatenate([upper, lower]))
    assert quality == 1.0 and counts.shape == (8,)
    np.testing.assert_allclose(counts / 2000, np.full(8, 1 / 8), atol=0.03)  # t uniform: equal quarters
    counts, _ = mixtures.mode_statistics("moons", upper[t < np.pi / 2])  # first half of the upper moon
    assert counts[0] > 0 and counts[1] > 0 and counts[2:].sum() == 0


@pytest.mark.parametrize("argv, message", [
    (["--losses", "mmd_rep", "wgan"], "mmd_rbf"),
    (["--targets", "ring9"], "grid25"),
    (["--steps", "0"], "--steps"),
    (["--seeds", "1", "1"], "--seeds"),
])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, cli_exit_2, argv, message):
    out = tmp_path / "out"
    assert message in cli_exit_2(mixtures.main, ["--out", str(out)] + argv)
    assert not out.exists()


@pytest.mark.slow
def test_reduced_run_learns_the_moons(tmp_path):
    record = mixtures.main(["--out", str(tmp_path), "--quick", "--steps", "400", "--targets", "moons",
                            "--losses", "mmd_rep"], log=lambda message: None)
    result = record["results"]["moons"]["mmd_rep"]
    untrained = mixtures.build_model(mixtures.build_loss("mmd_rep"), 400, seed=0)
    reference = mixtures.reference_samples("moons", mixtures.NUM_SAMPLES, 0)
    before = mixtures.score("moons", untrained.generate(mixtures.NUM_SAMPLES, seed=100), reference)
    # The initial generator sits near the origin, close to the lower moon: "high quality" but
    # 2 of 8 segments; training spreads it over both moons.
    assert before["modes_covered"] <= 4 and result["modes_covered"] >= 7, (result, before)
    assert result["high_quality"] >= 0.6, result
    assert result["mmd2"] < 0.3 * before["mmd2"], (result, before)
    with open(tmp_path / "mixtures.json") as f:
        assert json.load(f)["results"]["moons"]["mmd_rep"]["mmd2"] == pytest.approx(result["mmd2"])
    assert 0 < os.path.getsize(tmp_path / "mixtures_moons.png") < 300_000
