"""The package's import graph, read from the source (``ast``, nothing imported): no cycle among the
modules of ``src/nmrnn``, counting imports inside functions too (an import moved into a function
still closes the cycle it would dodge), and the layers of :data:`LAYERS` run one way: from the
bottom (errors, io, models, tasks) to the top (experiments, steps, figures)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "nmrnn"

# Bottom layers first: a module of one layer may import its own layer or those before it.
LAYERS = (
    ("nmrnn.errors", "nmrnn.lowrank", "nmrnn.runtime", "nmrnn.claims"),
    ("nmrnn.io", "nmrnn.models", "nmrnn.tasks"),
    ("nmrnn.architectures", "nmrnn.theory"),
    ("nmrnn.checkpoints", "nmrnn.training"),
    ("nmrnn.experiments",),
    ("nmrnn.config", "nmrnn.evaluation"),
    ("nmrnn.steps", "nmrnn.bench"),
    ("nmrnn.figures", "nmrnn.protocols"),
)


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file: ``import a.b``,
    ``from a import b`` (module ``a.b`` if it is one, else ``a``), relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_of(module: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if any(module == top or module.startswith(top + ".") for top in layer):
            return i
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 30 and "nmrnn.models.common" in graph  # the whole package was read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_imports_one_of_a_higher_layer():
    """Between the modules of :data:`LAYERS` (a module not listed there is held only to the
    cycle check)."""
    graph = import_graph()
    for layer in LAYERS:
        assert all(top in graph for top in layer), layer  # the table names real modules
    upward = [
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if layer_of(module) is not None
        and layer_of(target) is not None
        and layer_of(target) > layer_of(module)
    ]
    assert not upward, f"imports from a lower layer to a higher one: {upward}"


def test_registries_import_their_modules_by_name():
    """The model and task registries list their modules in plain ``import`` lines (grep from a
    name reaches its module), not by a string handed to importlib."""
    for registry in ("models", "tasks"):
        source = (SRC / PACKAGE / registry / "__init__.py").read_text()
        assert "importlib" not in source and "__import__" not in source
        graph = import_graph()
        assert {f"nmrnn.{registry}.common"} < graph[f"nmrnn.{registry}"]


@pytest.mark.parametrize(
    "source, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),
    ],
)
def test_the_cycle_finder_finds_a_cycle_and_only_one(source, expected):
    assert find_cycle(source) == expected


def test_imports_inside_functions_count(tmp_path, monkeypatch):
    """A cycle closed by an import inside a function is still a cycle."""
    package = tmp_path / "nmrnn"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from nmrnn import b\n")
    (package / "b.py").write_text("def f():\n    from nmrnn.a import g\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    assert find_cycle(import_graph()) == ["nmrnn.a", "nmrnn.b", "nmrnn.a"]
