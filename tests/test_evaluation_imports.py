"""The evaluation package imports one way: its import graph, in-function imports included, is
acyclic, and its networks sit below its registry. (The whole package's graph and the
library/application line: tests/test_import_graph.py.)"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "mmd_keras.evaluation"


def _imported_modules(path, module, known):
    """Modules of ``known`` that ``path`` imports anywhere (top level, functions, branches)."""
    package = module.rsplit(".", 1)[0]
    found = set()
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from .x import y
                parts = module.split(".")[:len(module.split(".")) - node.level]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `a.b.c` counts as an import of known `a.b`
                name = name.rpartition(".")[0]
            if name and name != module and name != package:
                found.add(name)
    return found


def import_graph(root, package=PACKAGE):
    """``{module: {imported modules}}`` over ``package``'s modules."""
    folder = os.path.join(root, *package.split("."))
    files = {f"{package}.{name[:-3]}": os.path.join(folder, name)
             for name in os.listdir(folder) if name.endswith(".py") and name != "__init__.py"}
    return {module: _imported_modules(path, module, set(files)) for module, path in files.items()}


def find_cycle(graph):
    """One import cycle as a list ``[a, b, ..., a]``, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == "open":
                return stack[stack.index(child):] + [child]
            if child not in state:
                cycle = visit(child)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_evaluation_package_has_no_import_cycle():
    graph = import_graph(ROOT)
    assert len(graph) >= 12, sorted(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    # One way: the networks import the interface, the registry imports the networks.
    assert f"{PACKAGE}.extractor_base" in graph[f"{PACKAGE}.inception"]
    assert f"{PACKAGE}.extractor_base" in graph[f"{PACKAGE}.digits_classifier"]
    assert {f"{PACKAGE}.inception", f"{PACKAGE}.digits_classifier"} <= graph[f"{PACKAGE}.extractors"]


@pytest.mark.parametrize("body_b, cyclic", [
    ("import os\n", False),
    ("def f():\n    from pkg.sub import a\n", True),  # hidden inside a function
    ("def f():\n    from . import a\n", True),  # relative
    ("import pkg.sub.a as alias\n", True),
])
def test_cycle_finder_sees_imports_inside_functions(tmp_path, body_b, cyclic):
    folder = tmp_path / "pkg" / "sub"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "a.py").write_text("from pkg.sub import b\n")
    (folder / "b.py").write_text(body_b)
    cycle = find_cycle(import_graph(str(tmp_path), "pkg.sub"))
    assert (cycle is not None) == cyclic, cycle
