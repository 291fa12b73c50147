"""The package's import graph, read from the source with ``ast`` (module-level and in-function
imports alike): the library never imports the application (``mmd_keras.app``) except through
the two entry points, the application's modules import one way (no cycle), and the flags are
defined without TensorFlow."""

import ast
import os
import subprocess
import sys
import time

import pytest

from test_evaluation_imports import find_cycle  # one cycle finder for both graphs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "mmd_keras"
APP = "mmd_keras.app"
#: The only library modules allowed to import the application: the command lines' entry points.
ENTRY_POINTS = ("mmd_keras.launch", "mmd_keras.evaluation.__main__")
#: Modules that must import without TensorFlow (the flags, ``--help`` and flag errors).
TF_FREE = ("mmd_keras.app.config", "mmd_keras.app.launch", "mmd_keras.app.evaluate",
           "mmd_keras.launch", "mmd_keras.evaluation.__main__")
TENSORFLOW = ("tensorflow", "keras", "tensorflow_datasets", "tf_keras")


def modules(root, package=PACKAGE):
    """``{dotted name: path}`` of every module of ``package`` (a package by its ``__init__``)."""
    found = {}
    for folder, dirs, files in os.walk(os.path.join(root, *package.split("."))):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        prefix = os.path.relpath(folder, root).replace(os.sep, ".")
        for name in files:
            if name.endswith(".py"):
                found[prefix if name == "__init__.py" else f"{prefix}.{name[:-3]}"] = (
                    os.path.join(folder, name))
    return found


def _imports(path, module, is_package):
    """``[(target, top_level)]`` of the file: each imported name as written (``from a import b``
    gives ``a.b``; resolution to a module is the caller's), and whether it runs at import time
    (module level, including ``if``/``try`` blocks and class bodies) or inside a function."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    found = []

    def visit(node, top):
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                   ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from . import x / from ..x import y
                    parts = module.split(".")
                    keep = len(parts) - child.level + (1 if is_package else 0)
                    base = ".".join(parts[:keep] + ([base] if base else []))
                # `from a.b import c`: the module a.b.c, or the name c of module a.b.
                found.extend((f"{base}.{alias.name}", top) for alias in child.names)
            visit(child, inner)

    visit(tree, True)
    return found


def _resolve(name, known):
    """The longest prefix of ``name`` that is a known module (``a.b.C`` → ``a.b``), else the
    name's top-level package for an outside module (``tensorflow.keras`` → ``tensorflow``)."""
    probe = name
    while probe and probe not in known:
        probe = probe.rpartition(".")[0]
    return probe or name.split(".")[0]


def import_graph(root, package=PACKAGE, top_level_only=False):
    """``{module: {imported module}}``: modules of ``package`` and outside top-level packages."""
    known = modules(root, package)
    graph = {}
    for module, path in known.items():
        targets = set()
        for name, top in _imports(path, module, path.endswith("__init__.py")):
            if top or not top_level_only:
                target = _resolve(name, known)
                if target != module:
                    targets.add(target)
        graph[module] = targets
    return graph


def loaded_at_import(graph, module):
    """Every module that importing ``module`` runs: its top-level imports, transitively, and the
    ``__init__`` of each package on the way (``import a.b.c`` runs ``a`` and ``a.b`` first)."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix not in seen:
                seen.add(prefix)
                todo.extend(graph.get(prefix, ()))
    return seen


def _app_modules(graph):
    return {m for m in graph if m == APP or m.startswith(APP + ".")}


def library_imports_of_the_app(graph):
    """``{library module: [app modules it imports]}`` (the entry points excepted)."""
    app = _app_modules(graph)
    return {module: sorted(imported & app) for module, imported in graph.items()
            if module not in app and module not in ENTRY_POINTS and imported & app}


def app_cycle(graph):
    """An import cycle among the application's modules (in-function imports included)."""
    app = _app_modules(graph)
    return find_cycle({m: graph[m] & app for m in app})


def test_the_library_never_imports_the_application():
    graph = import_graph(ROOT)
    assert len(graph) > 60 and {APP, f"{APP}.runner", *ENTRY_POINTS} <= set(graph)
    assert library_imports_of_the_app(graph) == {}
    for entry in ENTRY_POINTS:  # the entry points are the way in
        assert graph[entry] & _app_modules(graph), entry


def test_the_application_imports_one_way():
    graph = import_graph(ROOT)
    assert app_cycle(graph) is None, " -> ".join(app_cycle(graph))
    # The runner's order: workdir, parts -> evaluation -> build -> checks -> the run.
    runner = f"{APP}.runner"
    assert {f"{runner}.parts"} <= graph[f"{runner}.evaluation"]
    assert {f"{runner}.parts"} <= graph[f"{runner}.build"]
    assert {f"{runner}.build", f"{runner}.evaluation", f"{runner}.parts",
            f"{runner}.workdir"} <= graph[f"{runner}.checks"]


def test_the_whole_package_imports_one_way():
    graph = import_graph(ROOT)
    inside = {module: imported & set(graph) for module, imported in graph.items()}
    assert find_cycle(inside) is None, " -> ".join(find_cycle(inside))


@pytest.mark.parametrize("module", TF_FREE)
def test_the_flags_are_defined_without_tensorflow(module):
    graph = import_graph(ROOT, top_level_only=True)
    loaded = loaded_at_import(graph, module)
    assert {module, PACKAGE} <= loaded and len(loaded) > 10
    assert not loaded & set(TENSORFLOW), sorted(loaded & set(TENSORFLOW))


def test_config_import_and_help_load_no_tensorflow_in_a_fresh_process():
    """The real thing: a new interpreter imports the flags and prints ``--help`` with neither
    TensorFlow nor Keras loaded, in a fraction of TensorFlow's own 12-17 s import."""
    code = ("import sys, io, contextlib\nimport mmd_keras.app.config\n"
            "from mmd_keras import launch\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    code = launch.main(['mmd-keras', '--help'])\n"
            "assert code == 0 and '--loss_params' in out.getvalue()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{TENSORFLOW!r}))")
    env = {**os.environ, "PYTHONPATH": ROOT}
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == "[]", result.stdout[-500:]
    assert seconds < 6.0, seconds


# --- the checks themselves, on small made-up packages --------------------------------------------

def _package(tmp_path, files):
    for name, text in files.items():
        path = tmp_path.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize("body_b, cyclic", [
    ("import os\n", False),
    ("def f():\n    from mmd_keras.app.sub import a\n", True),  # hidden inside a function
    ("def f():\n    from . import a\n", True),  # relative
    ("import mmd_keras.app.sub.a as alias\n", True),
    ("from mmd_keras.app.sub.a import NAME\n", True),
])
def test_the_cycle_check_sees_every_kind_of_import(tmp_path, body_b, cyclic):
    root = _package(tmp_path, {
        "mmd_keras/__init__.py": "", "mmd_keras/app/__init__.py": "",
        "mmd_keras/app/sub/__init__.py": "", "mmd_keras/app/sub/a.py": "from mmd_keras.app.sub import b\n",
        "mmd_keras/app/sub/b.py": body_b})
    cycle = app_cycle(import_graph(root))
    assert (cycle is not None) == cyclic, cycle


def test_the_line_check_sees_a_library_module_importing_the_application(tmp_path):
    root = _package(tmp_path, {
        "mmd_keras/__init__.py": "", "mmd_keras/app/__init__.py": "",
        "mmd_keras/app/config.py": "", "mmd_keras/launch.py": "from mmd_keras.app import config\n",
        "mmd_keras/models.py": "def f():\n    from mmd_keras.app.config import X\n"})
    assert library_imports_of_the_app(import_graph(root)) == {
        "mmd_keras.models": ["mmd_keras.app.config"]}


def test_the_tensorflow_check_follows_packages_and_top_level_imports_only(tmp_path):
    root = _package(tmp_path, {
        "mmd_keras/__init__.py": "", "mmd_keras/app/__init__.py": "",
        "mmd_keras/app/config.py": "from mmd_keras.lib.names import NAMES\n"
                                   "def f():\n    import keras\n",  # in a function: fine
        "mmd_keras/lib/__init__.py": "import tensorflow as tf\n",  # runs before lib.names
        "mmd_keras/lib/names.py": "NAMES = ()\n"})
    graph = import_graph(root, top_level_only=True)
    loaded = loaded_at_import(graph, "mmd_keras.app.config")
    assert "tensorflow" in loaded and "keras" not in loaded
