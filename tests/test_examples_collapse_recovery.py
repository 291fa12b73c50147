"""examples/collapse_recovery.py at reduced size (24 generator steps, seed 0, two runs)."""

import json
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
sys.path.insert(0, EXAMPLES)
import collapse_recovery  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("collapse_recovery")
    assert collapse_recovery.main(["--out", str(out), "--quick", "--losses", "collapsed", "recovered"],
                                  log=lambda message: None) == 0
    with open(out / "collapse_recovery.json") as f:
        return out, json.load(f)


@pytest.mark.slow
def test_json_structure_and_the_two_runs_share_their_start(quick_run):
    out, record = quick_run
    assert os.path.exists(out / "collapse_recovery.png") and os.path.exists(out / "collapse_recovery_samples.png")
    settings = record["settings"]
    assert settings["steps"] == collapse_recovery.QUICK_STEPS and settings["seeds"] == [0]
    assert set(record["runs"]) == {"collapsed", "recovered"} and set(record["summary"]) == {"collapsed", "recovered"}
    every = settings["watch"]["check_every"]
    collapsed, recovered = record["runs"]["collapsed"][0], record["runs"]["recovered"][0]
    for result in (collapsed, recovered):
        assert result["final_step"] == settings["steps"] or result["gave_up"]
        assert all(c["step"] % every == 0 and c["iteration"] % every == 0 for c in result["checks"])
        assert [t["iteration"] for t in result["kid_trace"]] == list(
            range(settings["kid_every"], result["iterations"] + 1, settings["kid_every"]))
        assert result["kid"]["mean"] == pytest.approx(record["summary"][result["run"]]["kid"]["values"][0])
    # Watching only changes nothing: every collapsed-run event is a detection, the coefficient stays.
    assert collapsed["recover"] is False and collapsed["final_coefficient"] == 1.0
    assert all(e["event"] == "detected" for e in collapsed["events"])
    # Same seed, data and initial weights: identical checks until the first recovery.
    first = next((e["iteration"] for e in recovered["events"] if e["event"] == "recovery"), None)
    shared = [c for c in recovered["checks"] if first is None or c["iteration"] <= first]
    assert shared and shared == collapsed["checks"][:len(shared)]
    coefficient = 1.0
    for event in recovered["events"]:
        if event["event"] == "recovery":
            assert event["step_restored"] < event["onset_step"] <= event["step_detected"]
            assert event["old_coefficient"] == pytest.approx(coefficient)
            coefficient = event["new_coefficient"]
            assert coefficient == pytest.approx(10 * event["old_coefficient"])
    assert recovered["final_coefficient"] == pytest.approx(coefficient)
    assert record["summary"]["recovered"]["recoveries"] == [
        sum(e["event"] == "recovery" for e in recovered["events"])]


def test_bad_arguments_exit_2_before_writing(tmp_path):
    out = tmp_path / "never"
    for args in (["--losses", "exploded"], ["--steps", "0"], ["--kid_every", "0"], ["--seeds", "1", "1"]):
        proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, "collapse_recovery.py"), "--out", str(out),
                               *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "Expected" in proc.stderr, (args, proc.stderr[-500:])
    assert not out.exists()
