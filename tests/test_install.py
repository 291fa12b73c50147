"""Installing mmd_keras next to a TensorFlow build: the requirement `MMD_KERAS_TENSORFLOW` picks
(through setuptools' build backend, what pip calls), the import-time error without TensorFlow, and
pip's own resolution of launch/tpu_vm.sh's set-up line (it must not add the plain `tensorflow`
wheel beside `tensorflow-tpu`)."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SOURCE_FILES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in")


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "MMD_KERAS_TENSORFLOW", "PIP_REQUIRE_VIRTUALENV")}
    return {**env, **extra}


def _source_copy(tmp_path):
    """The files a build reads, copied (building writes *.egg-info next to setup.py)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCE_FILES:
        shutil.copy(os.path.join(REPO, name), source)
    for folder in ("mmd_keras", "configs"):
        shutil.copytree(os.path.join(REPO, folder), source / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return source


def _requires_dist(tmp_path, **env):
    """`Requires-Dist` lines of the wheel metadata setuptools builds with `env`, and the result."""
    source, out = _source_copy(tmp_path), tmp_path / "metadata"
    out.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom setuptools import build_meta\n"
         "print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))", str(out)],
        cwd=source, env=_env(**env), capture_output=True, text=True, timeout=300)
    if result.returncode:
        return None, result
    metadata = (out / result.stdout.split()[-1] / "METADATA").read_text()
    return re.findall(r"^Requires-Dist: (.*)$", metadata, flags=re.M), result


@pytest.mark.parametrize("value, expected", [
    (None, "tensorflow>=2.16"), ("tensorflow", "tensorflow>=2.16"),
    ("cuda", "tensorflow[and-cuda]>=2.16"), ("cpu", "tensorflow-cpu>=2.16"),
    ("TPU", "tensorflow-tpu>=2.16"), ("none", None)])
def test_the_tensorflow_requirement_is_the_build_mmd_keras_tensorflow_names(tmp_path, value,
                                                                            expected):
    requires, result = _requires_dist(tmp_path, **({} if value is None else
                                                   {"MMD_KERAS_TENSORFLOW": value}))
    assert requires is not None, result.stderr[-3000:]
    runtime = [r for r in requires if "extra ==" not in r]
    tensorflow = [r for r in runtime if re.match(r"tensorflow(-cpu|-tpu)?\b(?!-)", r)]
    assert tensorflow == ([expected] if expected else []), runtime
    # The rest of the requirements do not depend on the build; the extras stay.
    assert {"keras>=3", "tensorboard>=2.16", "tensorflow-datasets>=4.9"} <= set(runtime)
    assert any(r.startswith("pytest") and 'extra == "test"' in r for r in requires)


def test_an_unknown_tensorflow_build_stops_the_build_naming_the_variable(tmp_path):
    requires, result = _requires_dist(tmp_path, MMD_KERAS_TENSORFLOW="gpu")
    assert requires is None
    assert ("error: Expected `MMD_KERAS_TENSORFLOW` in ['cpu', 'cuda', 'none', 'tensorflow', "
            "'tpu'] (unset: tensorflow). Received: `MMD_KERAS_TENSORFLOW=gpu`") in result.stderr


def test_importing_without_tensorflow_names_the_builds_to_install(tmp_path):
    """A bare venv (no TensorFlow) imports the checkout's package: the error lists the builds."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    result = subprocess.run([str(venv / "bin" / "python"), "-c", "import mmd_keras"],
                            env=_env(PYTHONPATH=REPO), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError: mmd_keras needs TensorFlow >= 2.16, and this Python "
                              "environment has none."), result.stderr
    for command in ("pip install tensorflow`", 'pip install "tensorflow[and-cuda]"',
                    "pip install tensorflow-cpu`", "pip install tensorflow-tpu`",
                    "MMD_KERAS_TENSORFLOW=tensorflow|cuda|cpu|tpu pip install -e ."):
        assert command in message


# ---------------------------------------------------------------- pip's resolution (needs PyPI)

def _tpu_setup_line():
    """The one set-up command launch/tpu_vm.sh's header gives, as (environment, pip words)."""
    with open(os.path.join(REPO, "launch", "tpu_vm.sh")) as f:
        lines = re.findall(r"^#\s+(MMD_KERAS_TENSORFLOW=\S+ pip install .*)$", f.read(), re.M)
    assert len(lines) == 1, lines
    words = shlex.split(lines[0])
    assignments = dict(w.split("=", 1) for w in words if re.match(r"[A-Z_]+=", w))
    return assignments, words[len(assignments) + 1:]  # after `pip`


def _would_install(venv, pip_words, **env):
    """{name: version} that `pip install --dry-run` would install into `venv`, from REPO."""
    report = venv.parent / "report.json"
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *pip_words, "--dry-run",
                             "--quiet", "--report", str(report)],
                            cwd=REPO, env=_env(**env), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    installs = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
            for i in installs}


@pytest.mark.slow
def test_pip_resolves_the_tpu_setup_line_without_the_plain_tensorflow_wheel(tmp_path, package_index):
    """launch/tpu_vm.sh's set-up line, resolved by pip in a fresh venv: with no TensorFlow it
    brings tensorflow-tpu and its libtpu; on a TPU VM image that holds tensorflow-tpu it keeps it;
    never the plain tensorflow wheel."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env, pip_words = _tpu_setup_line()
    assert env == {"MMD_KERAS_TENSORFLOW": "tpu"} and pip_words[:1] == ["install"]

    fresh = _would_install(venv, pip_words, **env)
    assert "tensorflow" not in fresh and "tensorflow-cpu" not in fresh, sorted(fresh)
    assert {"mmd-keras", "tensorflow-tpu", "libtpu", "keras"} <= set(fresh), sorted(fresh)

    # A TPU VM image: tensorflow-tpu already installed (its dist-info is all pip reads of it).
    site = next((venv / "lib").glob("python*/site-packages"))
    info = site / "tensorflow_tpu-2.20.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tensorflow-tpu\nVersion: 2.20.0\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")
    on_vm = _would_install(venv, pip_words, **env)
    assert not {"tensorflow", "tensorflow-tpu", "tensorflow-cpu"} & set(on_vm), sorted(on_vm)
    assert "mmd-keras" in on_vm
