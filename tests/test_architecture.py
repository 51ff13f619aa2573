"""The package's imports go one way: every module imports only its own layer or layers below it,
and no two modules import each other, even lazily (docs/architecture.md). Read with ``ast`` from the
source, so a function-level import counts as much as a top-level one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "isodeploy"

#: low → high; a module may import its own layer and any layer before it
LAYERS = ("core", "graph", "zoo", "pruning", "loading", "runtime", "export", "serve", "train", "benchmarking",
          "latency", "pipeline", "api", "commands", "cli")
#: the root package (``isodeploy/__init__``: the public names, loaded lazily) is the API's facade;
#: ``python -m isodeploy`` (``__main__``) sits on top
TOP = {"isodeploy": LAYERS.index("api"), "isodeploy.__main__": len(LAYERS)}
DATA_PACKAGES = ("isodeploy.presets",)  # the TOML presets (models/), no code


def module_names() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The isodeploy modules ``name`` imports anywhere in its source (top level or inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            if not target.startswith("isodeploy") or target.startswith(DATA_PACKAGES):
                continue
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != name:
                found.add(target)
    return found


def layer_of(name: str) -> int:
    if name in TOP:
        return TOP[name]
    first = name.split(".")[1]
    if first not in LAYERS:
        raise AssertionError(f"{name} is in no layer: add its package to LAYERS (and to docs/architecture.md)")
    return LAYERS.index(first)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    item = stack.pop()
                    on_stack.discard(item)
                    component.append(item)
                    if item == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_no_import_against_the_layer_order(graph):
    against = sorted(f"{a} → {b}" for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))
    assert against == [], "imports against the layer order:\n" + "\n".join(against)


def test_the_checker_finds_a_cycle_and_an_upward_import():
    """The two checks can fail: a planted cycle and a planted arrow up are both caught."""
    planted = {"isodeploy.core.a": {"isodeploy.core.b"}, "isodeploy.core.b": {"isodeploy.core.a"}, "isodeploy.graph.c": set()}
    assert cycles(planted) == [["isodeploy.core.a", "isodeploy.core.b"]]
    assert layer_of("isodeploy.pipeline.run") > layer_of("isodeploy.core.errors")


def test_commands_use_only_the_public_api_and_their_own_helpers(graph):
    allowed = ("isodeploy.api", "isodeploy.commands", "isodeploy")
    private = sorted(f"{a} → {b}" for a, targets in graph.items() if a.startswith("isodeploy.commands")
                     for b in targets if not (b == "isodeploy" or b.startswith(allowed[:2])))
    assert private == [], "commands reaching past the public API:\n" + "\n".join(private)


def test_no_file_over_400_lines():
    long = sorted(f"{p.relative_to(PACKAGE.parent)}: {n}" for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400)
    assert long == []


def _doc_stage_rows() -> list[list[str]]:
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    block = text.split("<!-- stage-table:", 1)[1].split("<!-- /stage-table -->", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| stage")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_the_stage_table_in_the_docs_is_the_code_s():
    from isodeploy.pipeline.stage_table import STAGES

    expected = [[s.name, ", ".join(s.reads), ", ".join(s.writes), s.when, "stops the run" if s.stops_run else "is reported"] for s in STAGES]
    assert _doc_stage_rows() == expected


def test_the_layers_in_the_docs_are_the_test_s():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    rows = [line.split("|")[2].strip() for line in text.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert tuple(rows) == LAYERS


def test_the_api_reference_is_generated_from_the_docstrings():
    from isodeploy.api.reference import render

    committed = (PACKAGE.parent / "docs" / "api.md").read_text()
    assert committed == render(), "docs/api.md is out of date: run 'python -m isodeploy.api.reference'"
    import isodeploy.api as api

    missing = [name for name in api.__all__ if callable(getattr(api, name)) and not (getattr(api, name).__doc__ or "").strip()]
    assert missing == [], f"public API without a docstring: {missing}"


def test_no_api_submodule_shadows_a_public_name():
    """Importing ``isodeploy.api.X`` binds ``X`` on the package: a submodule named like a public function
    (``verify``, ``bench``, ``prune``) would replace the function once anything imported it."""
    import isodeploy.api as api

    submodules = {p.stem for p in (PACKAGE / "api").glob("*.py") if p.stem != "__init__"}
    assert submodules & set(api.__all__) == set()
