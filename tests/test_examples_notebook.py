"""examples/quickstart.ipynb: valid, output-free nbformat 4, and it runs (4 steps) to a working export.

No jupyter dependency: the code cells are executed in order in one namespace.
"""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

NOTEBOOK = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "quickstart.ipynb")
STEPS = 4


def _notebook():
    with open(NOTEBOOK, encoding="utf-8") as f:
        return json.load(f)


def test_notebook_is_output_free_nbformat_4():
    nb = _notebook()
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 4
    assert set(nb) == {"cells", "metadata", "nbformat", "nbformat_minor"}
    ids = [cell.get("id") for cell in nb["cells"]]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[A-Za-z0-9-_]{1,64}", i) for i in ids)
    kinds = [cell["cell_type"] for cell in nb["cells"]]
    assert set(kinds) == {"markdown", "code"}
    for cell in nb["cells"]:
        assert isinstance(cell["source"], list) and all(isinstance(line, str) for line in cell["source"])
        assert isinstance(cell["metadata"], dict)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
            source = "".join(cell["source"])
            assert not re.search(r"^\s*[%!]", source, re.M), "magics/shell lines cannot run outside Jupyter"
            # Public API only: no private modules or names.
            assert not re.search(r"\bmmd_keras(\.\w+)*\._", source)
            assert not re.search(r"from mmd_keras\S* import [^\n]*\b_\w", source)


def _run_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("MMD_KERAS_QUICKSTART_STEPS", str(STEPS))
    monkeypatch.setenv("MMD_KERAS_QUICKSTART_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    namespace = {"__name__": "__quickstart__"}
    for index, cell in enumerate(_notebook()["cells"]):
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"quickstart.ipynb[cell {index}]", "exec"), namespace)
    return namespace


@pytest.mark.slow
def test_notebook_runs_and_exports(tmp_path, monkeypatch):
    ns = _run_notebook(tmp_path, monkeypatch)
    model = ns["model"]
    assert ns["STEPS"] == STEPS and int(model.step.numpy()) == STEPS

    # Every step logged finite losses.
    logs = ns["step_logs"]
    assert len(logs) == STEPS
    for entry in logs:
        for key in ("critic_loss", "generator_loss"):
            assert np.isfinite(entry[key]), (key, entry)

    # The sample grid: 64 images of 16x16 upscaled 2x, 8 columns, 2-pixel padding.
    side = 8 * (2 * 16 + 2) + 2
    assert ns["grid"].shape == (side, side, 1) and ns["grid"].dtype == np.uint8
    assert ns["grid"].std() > 0
    assert os.path.isfile(tmp_path / "samples" / f"step_{STEPS:07d}.png")

    # The spectrum logger recorded the start and the end.
    assert [e["step"] for e in ns["spectrum"].history][0] == 0
    assert ns["spectrum"].history[-1]["step"] == STEPS

    # The export reproduces the sampling generator, independently of the notebook's own check.
    export_dir = ns["export_dir"]
    assert export_dir == os.path.join(str(tmp_path), "saved_models", "quickstart", "1")
    reloaded = tf.saved_model.load(export_dir)
    latents = tf.random.stateless_normal([5, model.latent_dim], seed=[7, 7])
    served = reloaded.signatures["serving_default"](latents=latents)["images"].numpy()
    expected = model.sampling_generator(latents, training=False).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert ns["max_abs_difference"] < 1e-5
