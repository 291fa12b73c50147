"""Every name of mmd_keras has one home: no compatibility shims, module aliases or name aliases.

The package was never released, so a moved module or renamed function changes every caller and
the old name is deleted. These tests import every module (pkgutil's walk, in a fresh
interpreter) and read every source file, so a re-export module, a ``sys.modules`` alias or a
module-level ``__getattr__`` alias fails here when it comes back.
"""

import ast
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(ROOT, "mmd_keras")
#: Old module paths; the code lives in mmd_keras.app (launcher, flags, runner, workdir lock,
#: preemption, evaluation command line), .ema, .rng, .evaluation.*, .catalog (the registries'
#: names), .layers.power_iteration and .losses.{estimators, mmd_family, base, baselines}.
DELETED_MODULES = (
    "mmd_keras.training", "mmd_keras.training_utils", "mmd_keras.digits_classifier",
    "mmd_keras.extractors", "mmd_keras.inception", "mmd_keras.metrics", "mmd_keras.similarity",
    "mmd_keras.adaptive_lr", "mmd_keras.layers.pico", "mmd_keras.losses.mmd",
    "mmd_keras.losses.mmd_losses", "mmd_keras.losses.kernel_objectives",
    "mmd_keras.losses.objectives", "mmd_keras.losses.baseline_objectives",
    "mmd_keras.runner", "mmd_keras.config", "mmd_keras.workdir_lock", "mmd_keras.preemption",
    "mmd_keras._help", "mmd_keras._choices", "mmd_keras.evaluate", "mmd_keras.evaluation.cli",
    "mmd_keras.tools.generate_choices",
)
#: ("module[:class]", old attribute): SN_MODES of the layers is SN_LAYER_MODES;
#: networks.validate is building the networks; the checks are in networks.checks;
#: export.sample_latents is rng.generation_latents; rep_gp's penalty_weight is its coefficient.
DELETED_NAMES = (
    ("mmd_keras.layers", "SN_MODES"), ("mmd_keras.layers.spectral_norm", "SN_MODES"),
    ("mmd_keras.networks", "validate"), ("mmd_keras.networks.common", "check_widths"),
    ("mmd_keras.networks.common", "check_image_size"), ("mmd_keras.export", "sample_latents"),
    ("mmd_keras.losses", "mmd"), ("mmd_keras.losses", "objectives"),
    ("mmd_keras.losses.mmd_family:RepGPLoss", "penalty_weight"),
)
DEPRECATIONS = ("DeprecationWarning", "PendingDeprecationWarning", "FutureWarning")

# Runs in a fresh interpreter, so that no module is already imported (a module warns once, on
# its first import) and nothing another test imported or patched counts.
_WALK = """
import importlib, json, os, pkgutil, sys, warnings
import keras, tensorflow  # their own import-time warnings are not the package's

deleted_modules, deleted_names = json.loads(sys.argv[1])
report = {"modules": {}, "warnings": [], "errors": [], "importable": [], "names": []}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import mmd_keras
    report["modules"]["mmd_keras"] = mmd_keras.__file__
    for info in pkgutil.walk_packages(mmd_keras.__path__, "mmd_keras.",
                                      onerror=report["errors"].append):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # importing it would run the command
            continue
        report["modules"][info.name] = importlib.import_module(info.name).__file__
for warning in caught:
    report["warnings"].append([warning.category.__name__, str(warning.message),
                               warning.filename, warning.lineno])
package_dir = os.path.dirname(os.path.realpath(mmd_keras.__file__)) + os.sep
for name in deleted_modules:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError:
        continue
    # Another checkout's copy (an editable install of a different tree) is not this package's.
    if os.path.realpath(module.__file__).startswith(package_dir):
        report["importable"].append(name)
for owner, attribute in deleted_names:
    module, _, qualname = owner.partition(":")
    obj = importlib.import_module(module)
    for part in filter(None, qualname.split(".")):
        obj = getattr(obj, part)
    if hasattr(obj, attribute):
        report["names"].append(f"{owner}.{attribute}")
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def walk():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run(
        [sys.executable, "-c", _WALK, json.dumps([DELETED_MODULES, DELETED_NAMES])],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _source_files():
    """Every ``.py`` file under mmd_keras/ (the walk must reach each of them)."""
    found = []
    for folder, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [os.path.join(folder, name) for name in files if name.endswith(".py")]
    return sorted(found)


def test_the_walk_imports_every_module(walk):
    assert walk["errors"] == []
    imported = {os.path.realpath(path) for path in walk["modules"].values()}
    missed = [path for path in _source_files() if os.path.realpath(path) not in imported
              and os.path.basename(path) != "__main__.py"]
    assert not missed, f"modules the pkgutil walk did not import: {missed}"
    assert "mmd_keras.evaluation.kid" in walk["modules"] and len(walk["modules"]) > 50


def test_no_module_warns_of_a_deprecation_on_import(walk):
    deprecations = [w for w in walk["warnings"] if w[0] in DEPRECATIONS]
    assert not deprecations, f"an import warns of a deprecation (a shim?): {deprecations}"


def test_deleted_modules_and_names_stay_deleted(walk):
    assert walk["importable"] == [], "old module paths import again"
    assert walk["names"] == [], "old names are attributes again"


def _aliasing(tree):
    """Lines of ``tree`` that alias modules or names: ``sys.modules[...] = ...`` (or
    ``sys.modules.update/setdefault``) and a module-level ``__getattr__``."""
    lines = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        for target in targets:
            if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "sys.modules":
                lines.append(node.lineno)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and ast.unparse(node.func.value) == "sys.modules"
                and node.func.attr in ("update", "setdefault", "__setitem__")):
            lines.append(node.lineno)
    lines += [node.lineno for node in tree.body
              if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"]
    return lines


def test_no_module_aliases_modules_or_names():
    found = {}
    for path in _source_files():
        with open(path, encoding="utf-8") as handle:
            lines = _aliasing(ast.parse(handle.read(), path))
        if lines:
            found[os.path.relpath(path, ROOT)] = lines
    assert not found, f"module or name aliases (sys.modules assignment, module __getattr__): {found}"


@pytest.mark.parametrize("source, aliased", [
    ("import sys\nsys.modules['pkg.old'] = sys.modules[__name__]\n", True),
    ("import sys\nsys.modules[f'{__name__}.old'] = object()\n", True),
    ("import sys\nsys.modules.update(old=object())\n", True),
    ("def __getattr__(name):\n    raise AttributeError(name)\n", True),
    ("import sys\nif 'tensorflow' in sys.modules:\n    x = sys.modules['tensorflow']\n", False),
    ("class A:\n    def __getattr__(self, name):\n        return 1\n", False),
])
def test_the_alias_finder_sees_each_form(source, aliased):
    assert bool(_aliasing(ast.parse(source))) == aliased
