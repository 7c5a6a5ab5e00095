"""The library's import graph: no cycles between vsearch's modules, and no imports of the shells around it.

Read from the source with `ast`, so every import counts: module level, inside functions (deferred imports hide a
cycle from Python but not from a reader), and under `if TYPE_CHECKING:`. Run it alone with
`python tests/test_imports.py` to print the graph's cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "vsearch"
ROOT = Path(__file__).resolve().parent.parent
# the API, the benchmarks and the training scripts are built on the library, never the other way round
OUTSIDERS = ("api", "benchmarks", "training")
# ...except the command line, the other shell like the API: `serve` starts the API, and the research commands (convert-pku,
# eval-footage) run training code, each imported only inside its command
SHELL_IMPORTS = {("vsearch.cli", "api"), ("vsearch.cli", "training")}  # vsearch.cli: the package and its modules


def module_files(package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package (a package is its __init__)."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported_names(module: str, path: Path) -> set[str]:
    """Every module name `module` imports, anywhere in its file; `from a import b` gives both a and a.b."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def import_graph(package: str = PACKAGE) -> dict[str, set[str]]:
    """Intra-package edges: module -> the package's modules it imports (the nearest module for `a.b.attr`)."""
    files = module_files(package)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for name in imported_names(module, path):
            # `from vsearch.embed import Embedder` names vsearch.embed.Embedder: walk up to a real module
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (first module repeated at the end) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm; the graph is tens of modules, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_cycle_through(min(c), c, graph) for c in components]


def _cycle_through(start: str, component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path start -> ... -> start inside one strongly connected component (breadth first)."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{start} is in a strongly connected component but on no cycle")


def test_the_library_has_no_import_cycle() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles in vsearch/:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


def test_the_library_never_imports_its_shells() -> None:
    bad = sorted(
        f"{module} imports {name}"
        for module, path in module_files().items()
        for name in imported_names(module, path)
        if name.split(".")[0] in OUTSIDERS and (".".join(module.split(".")[:2]), name.split(".")[0]) not in SHELL_IMPORTS
    )
    assert not bad, "vsearch/ must not depend on " + ", ".join(OUTSIDERS) + ":\n" + "\n".join(bad)


def test_the_checker_sees_deferred_and_type_checking_imports(tmp_path: Path) -> None:
    """The checker itself: a cycle hidden behind a function-level import and a TYPE_CHECKING block is found."""
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert find_cycles(graph) == [["p.a", "p.b", "p.c", "p.a"]]
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from vsearch.embed import Embedder\n"
        "def f():\n    from vsearch import colors\n    import vsearch.video\n    from .track import SegmentTracker\n"
    )
    names = imported_names("vsearch.m", src)
    assert {"vsearch.embed", "vsearch.colors", "vsearch.video", "vsearch.track"} <= names


if __name__ == "__main__":
    for cycle in find_cycles(import_graph()):
        print(" -> ".join(cycle))
