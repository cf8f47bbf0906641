"""The folders' import rules, read from the source with `ast` (nothing is imported):

infra <- data <- training <- tasks <- flows: a module imports only its own layer and those to its left;
data/ imports neither Prefect nor Ray; and no import cycle runs between modules, function-level
imports included (a function-level import hides a cycle from Python, not from a reader).
"""

from __future__ import annotations

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAYERS = ["infra", "data", "training", "tasks", "flows"]


def _modules() -> dict[str, str]:
    """doodleflow.<folder>.<...> module name -> file path."""
    out = {}
    for layer in LAYERS:
        for root, _dirs, files in os.walk(os.path.join(REPO, layer)):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(root, f), REPO)[:-3].split(os.sep)
                    if rel[-1] == "__init__":
                        rel = rel[:-1]
                    out[".".join(["doodleflow", *rel])] = os.path.join(root, f)
    return out


def _imports(path: str, module: str, is_pkg: bool) -> list[tuple[str, int]]:
    """Every imported module name (absolute), with its line."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    pkg = module if is_pkg else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.append((base, node.lineno))
            out += [(f"{base}.{a.name}", node.lineno) for a in node.names]  # `from pkg import module`
    return out


def _graph():
    mods = _modules()
    edges: dict[str, dict[str, int]] = {m: {} for m in mods}
    external: dict[str, list[tuple[str, int]]] = {m: [] for m in mods}
    for m, path in mods.items():
        for name, line in _imports(path, m, path.endswith("__init__.py")):
            if name in mods and name != m:
                edges[m].setdefault(name, line)
            elif not name.startswith("doodleflow."):
                external[m].append((name, line))
    return mods, edges, external


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


def test_no_upward_imports():
    mods, edges, _ = _graph()
    bad = [
        f"{os.path.relpath(mods[m], REPO)}:{line} imports {dep}"
        for m, deps in edges.items()
        for dep, line in deps.items()
        if _layer(dep) > _layer(m)
    ]
    assert not bad, "a lower layer imports a higher one:\n" + "\n".join(bad)


def test_data_imports_neither_prefect_nor_ray():
    mods, _, external = _graph()
    bad = [
        f"{os.path.relpath(mods[m], REPO)}:{line} imports {name}"
        for m, names in external.items()
        if _layer(m) <= LAYERS.index("data")
        for name, line in names
        if name.split(".")[0] in ("prefect", "ray")
    ]
    assert not bad, "\n".join(bad)


def _cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def _without_packages(edges: dict[str, dict[str, int]], mods: dict[str, str]) -> dict[str, dict[str, int]]:
    """A package's __init__ re-exporting its own modules is not a cycle (they import siblings, not it)."""
    pkgs = {m for m, p in mods.items() if p.endswith("__init__.py")}
    return {
        m: {d: ln for d, ln in deps.items() if not (d in pkgs and m.startswith(d + "."))}
        for m, deps in edges.items()
    }


def test_no_import_cycles():
    mods, edges, _ = _graph()
    cycles = _cycles(_without_packages(edges, mods))
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    """The parser itself: an import inside a function and a relative import are both edges."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from doodleflow.flows.cli import main\nfrom . import sibling\n")
    names = [n for n, _ in _imports(str(f), "doodleflow.tasks.m", False)]
    assert "doodleflow.flows.cli" in names and "doodleflow.tasks.sibling" in names
    assert _cycles({"a": {"b": 1}, "b": {"a": 2}, "c": {}}) == [["a", "b"]]


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_is_a_package(layer):
    assert os.path.exists(os.path.join(REPO, layer, "__init__.py"))
