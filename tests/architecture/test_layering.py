"""The folders' import rules, read from the source with `ast` (nothing is imported):

infra <- data <- training <- tasks <- flows <- bench: a module imports only its own layer and those to
its left (bench/, the benchmarks, may import every layer; no layer imports it); data/ imports neither
Prefect nor Ray; and no import cycle runs between modules, function-level imports included (a
function-level import hides a cycle from Python, not from a reader).

Where the heavy runtimes may be imported (docs/architecture.md, "Where Ray and torch are imported"):
- torch: at module level only in training/ (and bench/); in tasks/ inside functions only, so that
  importing a flow loads no torch; never in infra/, data/ or flows/.
- Ray (`ray`, `prefect_ray`): never at module level in the package (importing doodleflow starts no Ray
  import); inside functions only in RAY_MODULES; anywhere in bench/.
"""

from __future__ import annotations

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAYERS = ["infra", "data", "training", "tasks", "flows"]
TOP = "bench"  # the benchmarks: above every layer
RAY_MODULES = {
    "doodleflow.training.runtime.ray_utils",  # Ray Train run settings, shard epochs, cluster sizing
    "doodleflow.training.runtime.logs",  # quiets Ray Data's progress output
    "doodleflow.training.runtime.launch",  # the one Ray Train launch (TorchTrainer, per-worker function)
    "doodleflow.training.pbe.ray_cache",
    "doodleflow.training.pbe.stream",  # the Ray Data epoch source
    "doodleflow.training.photodoodle.stream",  # the Ray Data pair stream (uncached runs)
    "doodleflow.tasks.curation",  # build-shard on a Ray cluster
    "doodleflow.tasks.photodoodle",  # artists in parallel, one Ray job each
    "doodleflow.tasks.shards",  # spreads shards over a Ray cluster's nodes
    "doodleflow.flows.task_runners",  # prefect_ray's RayTaskRunner
}


def _modules() -> dict[str, str]:
    """Module name -> file path: doodleflow.<folder>.<...> for the layers, bench.<...> for bench/."""
    out = {}
    for layer in [*LAYERS, TOP]:
        for root, _dirs, files in os.walk(os.path.join(REPO, layer)):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(root, f), REPO)[:-3].split(os.sep)
                    if rel[-1] == "__init__":
                        rel = rel[:-1]
                    out[".".join(rel if layer == TOP else ["doodleflow", *rel])] = os.path.join(root, f)
    return out


def _imports(path: str, module: str, is_pkg: bool) -> list[tuple[str, int]]:
    """Every imported module name (absolute), with its line."""
    return [(name, line) for name, line, _ in _imports_where(path, module, is_pkg)]


def _imports_where(path: str, module: str, is_pkg: bool) -> list[tuple[str, int, bool]]:
    """Every imported module name (absolute), its line, and whether it runs at import time (not inside
    a function: module level, or under a module-level if/try)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    pkg = module if is_pkg else module.rpartition(".")[0]
    in_function = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for n in ast.walk(f)
    }
    out = []
    for node in ast.walk(tree):
        top = id(node) not in in_function
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.append((base, node.lineno, top))
            out += [(f"{base}.{a.name}", node.lineno, top) for a in node.names]  # `from pkg import module`
    return out


def _graph():
    mods = _modules()
    edges: dict[str, dict[str, int]] = {m: {} for m in mods}
    external: dict[str, list[tuple[str, int]]] = {m: [] for m in mods}
    for m, path in mods.items():
        for name, line in _imports(path, m, path.endswith("__init__.py")):
            if name in mods and name != m:
                edges[m].setdefault(name, line)
            elif not name.startswith(("doodleflow.", f"{TOP}.")) and name != TOP:
                external[m].append((name, line))
    return mods, edges, external


def _layer(module: str) -> int:
    return len(LAYERS) if module.split(".")[0] == TOP else LAYERS.index(module.split(".")[1])


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


FAMILIES = ("doodleflow.training.pbe", "doodleflow.training.photodoodle")  # training/family.py:FAMILIES
# Shared code that reaches a family only through training/family.py (`family(name).hooks()`, imported by
# name at run time): the launcher, the trainer core, run storage and tracking, the registry.
# training/eval/ and training/memplan/ are per-family by nature (eval/<family>.py, memplan/families.py).
SHARED = (
    "doodleflow.training.core",
    "doodleflow.training.runs",
    "doodleflow.training.runtime",
    "doodleflow.training.registry",
    "doodleflow.training.family",
)


def _in(module: str, packages: tuple[str, ...]) -> str | None:
    return next((p for p in packages if module == p or module.startswith(p + ".")), None)


def test_shared_code_reaches_families_only_through_the_interface():
    """No module of training/core, runs, runtime, registry or training/family.py imports a family package
    (function level included), and no family package imports another: the registry and the launcher
    ask `training/family.py`, so `train pbe` loads no PhotoDoodle module through them."""
    mods, edges, _ = _graph()
    bad = []
    for m, deps in edges.items():
        for dep, line in deps.items():
            mine, theirs = _in(m, FAMILIES), _in(dep, FAMILIES)
            if theirs and (_in(m, SHARED) or (mine and mine != theirs)):
                bad.append(f"{os.path.relpath(mods[m], REPO)}:{line} imports {dep}")
    assert not bad, "a family reached around training/family.py:\n" + "\n".join(bad)
    assert all(f in mods for f in FAMILIES) and "doodleflow.training.family" in mods


# The rooms of the shared training code, each importing only those before it (docs/architecture.md):
# core (the step, pure torch) <- runs (a run in the store) <- runtime (Ray, the loop, tracking).
ROOMS = ("doodleflow.training.core", "doodleflow.training.runs", "doodleflow.training.runtime")


def test_core_runs_runtime_import_only_the_rooms_before_them():
    """core imports no other package of training/ (only infra and data besides itself), and runs imports
    core only; runtime may also reach the registry, eval, memplan and the family table."""
    mods, edges, _ = _graph()
    bad = []
    for m, deps in edges.items():
        room = _in(m, ROOMS)
        if room is None or room == ROOMS[-1]:
            continue
        allowed = ROOMS[: ROOMS.index(room) + 1]
        for dep, line in deps.items():
            if dep.startswith("doodleflow.training") and not _in(dep, allowed):
                bad.append(f"{os.path.relpath(mods[m], REPO)}:{line} imports {dep}")
    assert not bad, "a room imports a later one:\n" + "\n".join(bad)
    assert all(r in mods for r in ROOMS)


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


def _heavy_imports(roots: tuple[str, ...]) -> list[tuple[str, str, int, bool]]:
    """(module, root imported, line, at import time) for each import of one of `roots`."""
    mods = _modules()
    return [
        (m, name.split(".")[0], line, top)
        for m, path in mods.items()
        for name, line, top in _imports_where(path, m, path.endswith("__init__.py"))
        if name.split(".")[0] in roots
    ]


def test_torch_only_where_the_rule_allows():
    bad = []
    for m, _, line, top in _heavy_imports(("torch",)):
        layer = TOP if _layer(m) == len(LAYERS) else LAYERS[_layer(m)]
        if layer in ("infra", "data", "flows") or (layer == "tasks" and top):
            bad.append(f"{m}:{line} imports torch{' at import time' if top else ''}")
    assert not bad, "torch imported outside training/ (or at import time in tasks/):\n" + "\n".join(bad)


def test_ray_only_inside_functions_of_the_ray_modules():
    bad = [
        f"{m}:{line} imports {root}{' at import time' if top else ''}"
        for m, root, line, top in _heavy_imports(("ray", "prefect_ray"))
        if not m.startswith(f"{TOP}.") and (top or m not in RAY_MODULES)
    ]
    assert not bad, "Ray imported outside the Ray modules' functions:\n" + "\n".join(bad)
    assert set(_modules()) >= RAY_MODULES, "a listed Ray module no longer exists"


def test_bench_is_scanned_and_nothing_imports_it():
    mods, edges, _ = _graph()
    assert "bench.common" in mods and any(d.startswith("doodleflow.") for d in edges["bench.curation"])
    bad = [
        m for m, deps in edges.items() if not m.startswith(f"{TOP}.") and any(d.startswith(TOP) for d in deps)
    ]
    assert not bad, f"the package imports bench/: {bad}"


def test_the_rule_checker_tells_import_time_from_function_level(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        "import torch\ntry:\n    import ray\nexcept ImportError:\n    pass\ndef f():\n    import ray.train\n"
    )
    got = [(n, top) for n, _, top in _imports_where(str(f), "doodleflow.tasks.m", False)]
    assert got == [("torch", True), ("ray", True), ("ray.train", False)]
