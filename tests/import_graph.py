"""The package's own import graph, read from the source with `ast` (nothing is imported).

Every `import` and `from ... import` counts, at module top, inside functions, under
`if TYPE_CHECKING:` alike: a cycle hidden in a function is still a cycle, only a later one.
Importing `copilot.a.b` also runs `copilot/a/__init__.py`, so an import from outside package
`copilot.a` gets an edge to that package too (that is how `bench` -> `cli.asr_options` closed a
cycle through `cli/__init__`, which registers `bench_cmd`).

    python tests/import_graph.py          # prints the cycles (none: exit 0) and the inner imports
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "copilot"


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    top: bool  # at module level (or under a module-level if/try), not inside a def or class body


def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that `name` is or lies in (`copilot.x.func` -> `copilot.x`)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(known: dict[str, Path], package: str = PACKAGE) -> list[Import]:
    out: list[Import] = []
    for mod, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_pkg = path.name == "__init__.py"
        for node, top in _walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importer's package, up level-1 steps
                    pkg = mod if is_pkg else mod.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                # `from copilot.server import runner` imports the submodule when there is one.
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            for name in names:
                if not (name == package or name.startswith(package + ".")):
                    continue
                target = _resolve(name, known)
                if target is not None and target != mod:
                    out.append(Import(mod, target, node.lineno, top))
    return out


def _walk(tree: ast.Module):
    """(node, at_top) for every node; at_top is False inside a function or class body."""
    stack: list[tuple[ast.AST, bool]] = [(tree, True)]
    while stack:
        node, top = stack.pop()
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
            yield child, top
            stack.append((child, inner))


def graph(known: dict[str, Path], found: list[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in known}
    for imp in found:
        edges[imp.importer].add(imp.target)
        # Importing copilot.a.b runs copilot.a's __init__ first: an edge to each enclosing package
        # that the importer is not itself inside of (its own packages are already running).
        pkg = imp.target.rpartition(".")[0]
        while pkg and pkg != PACKAGE:
            if not (imp.importer == pkg or imp.importer.startswith(pkg + ".")):
                edges[imp.importer].add(pkg)
            pkg = pkg.rpartition(".")[0]
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    known = modules()
    found = imports(known)
    cyc = cycles(graph(known, found))
    for comp in cyc:
        print("cycle:", " <-> ".join(comp))
    inner = [i for i in found if not i.top]
    print(f"{len(found)} internal imports, {len(inner)} inside functions or classes")
    for i in inner:
        print(f"  {known[i.importer].relative_to(ROOT)}:{i.line}: {i.target}")
    return 1 if cyc else 0


if __name__ == "__main__":
    raise SystemExit(main())
