"""The installed program: `pip wheel .` → a fresh venv → `mmd-keras --config=smoke` from a
directory outside the checkout (configs shipped as package data, the console script)."""

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
    return result


@pytest.mark.slow
def test_wheel_installs_a_console_script_that_runs_shipped_configs_anywhere(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "runs", "saved_models", "__pycache__", ".pytest_cache"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
          str(tmp_path / "dist"), str(source)], env=env)
    wheel = next((tmp_path / "dist").glob("mmd_keras-*.whl"))
    # A fresh venv that sees this interpreter's packages (TF, Keras...) through a path entry:
    # only the wheel is installed, and an editable mmd_keras of that environment stays hidden.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=env)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
          "--no-deps", "--no-index", str(wheel)], env=env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = str(venv / "bin" / "mmd-keras")
    located = _run([str(venv / "bin" / "python"), "-c",
                    "import mmd_keras, mmd_keras.app.launch as l; print(mmd_keras.__file__); "
                    "print(l.configs_dir())"], cwd=elsewhere, env=env).stdout.split()
    assert located[0].startswith(str(venv)) and located[1].startswith(str(venv))
    listed = _run([script, "--list_configs"], cwd=elsewhere, env=env).stdout
    assert "imagenet64" in listed and "smoke" in listed
    dry = _run([script, "--config=smoke", "--dry_run"], cwd=elsewhere, env=env)
    assert "--loss=repulsive" in dry.stdout and not (elsewhere / "runs").exists()
    run = _run([script, "--config=smoke", "--steps=6", "--workdir=run"], cwd=elsewhere, env=env)
    assert (elsewhere / "run" / "checkpoints" / "ckpt-6.index").exists(), run.stdout
    assert (elsewhere / "saved_models" / "run" / "1" / "saved_model.pb").exists()
    assert "oneDNN" not in run.stderr and "cuInit" not in run.stderr, run.stderr[-2000:]


@pytest.mark.slow
def test_a_users_install_has_no_test_stack_and_runs_the_main_job(tmp_path, package_index):
    """`pip install -e .` in a fresh venv (its own site-packages, nothing borrowed from this
    interpreter), as the README's run set-up: TensorFlow and the runtime dependencies come in,
    the test stack does not (no torch, pytest, scikit-image), and `python -m mmd_keras.launch`
    trains, checkpoints and exports the default digits job (shortened)."""
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "runs", "saved_models", "__pycache__", ".pytest_cache"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], env=env)
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", "-e", str(source)], env=env, cwd=tmp_path)
    absent = _run([python, "-c", "import importlib.util as u; print([m for m in ('torch', 'pytest', "
                   "'skimage', 'pytorch_fid') if u.find_spec(m)])"], env=env, cwd=tmp_path).stdout
    assert absent.strip() == "[]"
    run = _run([python, "-m", "mmd_keras.launch", "--steps=20", "--steps_per_epoch=10",
                "--checkpoint_every=10", "--sample_every=10", "--eval_every=20", "--workdir=run"],
               env=env, cwd=tmp_path)
    assert (tmp_path / "run" / "checkpoints" / "ckpt-20.index").exists(), run.stdout[-2000:]
    assert (tmp_path / "saved_models" / "run" / "1" / "saved_model.pb").exists()
    assert "TensorFlow CPU kernels:" in run.stdout
