#!/usr/bin/env python3
"""The import graph of the ``gateway`` package, and the cycles in it.

Usage::

    python scripts/import_graph.py           # one line per module: what it imports
    python scripts/import_graph.py --dot     # Graphviz: ... --dot | dot -Tsvg > imports.svg

Exits 1 naming each cycle, 0 when there is none.

An edge counts every import that runs: at module level *and* inside functions (a deferred import
still closes a loop at run time; it only hides it from the order modules load in). Imports under
``if TYPE_CHECKING:`` never run, so they are left out of the graph; they are still recorded (see
:attr:`Import.type_only`) because a layering rule may care about them.

``from gateway.x import y`` is an edge to ``gateway.x.y`` when ``y`` is a submodule, else to
``gateway.x``. Importing a submodule also runs its packages' ``__init__``; those files hold no
imports here, so the implicit edges are left out.

Standard library only (``ast``), so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "gateway"


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen from the importing module.

    Attributes:
        module: the imported module's dotted name (``gateway.x`` or a third-party ``paho.mqtt``).
        names: the names taken from it (``from m import a, b``); empty for ``import m``.
        line: the statement's line number in the importing file.
        deferred: the statement is inside a function (runs when the function is called).
        type_only: the statement is under ``if TYPE_CHECKING:`` (never runs).
    """

    module: str
    names: tuple[str, ...]
    line: int
    deferred: bool
    type_only: bool


@dataclass
class Graph:
    """Every module of the package and what it imports.

    Attributes:
        imports: module name -> every import statement target in it (internal and third-party).
        files: module name -> its source file.
    """

    imports: dict[str, list[Import]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def modules(self) -> list[str]:
        """The package's modules, sorted."""
        return sorted(self.imports)

    def edges(self) -> dict[str, set[str]]:
        """Module -> the package modules it imports at run time (TYPE_CHECKING ones left out)."""
        return {
            m: {i.module for i in imps if not i.type_only and i.module in self.imports} - {m}
            for m, imps in self.imports.items()
        }

    def importers(self, prefix: str, *, type_only: bool = True) -> dict[str, list[Import]]:
        """Modules that import ``prefix`` or anything under it, with the matching imports.

        Args:
            prefix: a dotted module name (``pymodbus``, ``gateway.transport``).
            type_only: also count ``if TYPE_CHECKING:`` imports (a layering rule about who may
                know a name usually should: an annotation couples as much as a call).
        """
        out: dict[str, list[Import]] = {}
        for m, imps in self.imports.items():
            hits = [
                i
                for i in imps
                if (i.module == prefix or i.module.startswith(prefix + "."))
                and (type_only or not i.type_only)
            ]
            if hits:
                out[m] = hits
        return out


def module_name(path: Path, root: Path) -> str:
    """``gateway/devices/codec.py`` -> ``gateway.devices.codec``; a package is its ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, *, is_package: bool, known: set[str]) -> None:
        self.module = module
        self.is_package = is_package
        self.known = known
        self.found: list[Import] = []
        self._depth = 0  # functions we are inside
        self._type_only = 0  # `if TYPE_CHECKING:` bodies we are inside

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._nested(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._nested(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._nested(node)

    def _nested(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._type_only += 1
            for child in node.body:
                self.visit(child)
            self._type_only -= 1
            for child in node.orelse:  # the `else:` of TYPE_CHECKING does run
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, (), node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._resolve(node.module, node.level)
        names = tuple(a.name for a in node.names)
        plain = [n for n in names if f"{base}.{n}" not in self.known]
        for n in names:
            if f"{base}.{n}" in self.known:  # `from gateway.devices import codec`
                self._add(f"{base}.{n}", (), node.lineno)
        if plain or not names:
            self._add(base, tuple(plain), node.lineno)

    def _resolve(self, module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        parts = self.module.split(".")
        # A package's `from . import x` is relative to itself, a module's to its package.
        drop = level - 1 if self.is_package else level
        base = parts[: len(parts) - drop] if drop else parts
        return ".".join([*base, module] if module else base)

    def _add(self, module: str, names: tuple[str, ...], line: int) -> None:
        self.found.append(
            Import(module, names, line, deferred=self._depth > 0, type_only=self._type_only > 0)
        )


def build(root: Path = ROOT, package: str = PACKAGE) -> Graph:
    """Parse every module of ``package`` under ``root`` and collect its imports."""
    files = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    known = set(files)
    graph = Graph(files=files)
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector = _Collector(name, is_package=path.name == "__init__.py", known=known)
        collector.visit(tree)
        graph.imports[name] = collector.found
    return graph


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module, each sorted, biggest first.

    A component is one knot: any module in it reaches every other. One example loop through each
    is given by :func:`loop_through`.
    """
    tarjan = _Tarjan(edges)
    for start in sorted(edges):
        if start not in tarjan.index:
            tarjan.run(start)
    return sorted(tarjan.found, key=lambda c: (-len(c), c))


class _Tarjan:
    """Tarjan's algorithm, iterative so a deep package cannot hit the recursion limit."""

    def __init__(self, edges: dict[str, set[str]]) -> None:
        self.edges = edges
        self.index: dict[str, int] = {}
        self.low: dict[str, int] = {}
        self.stack: list[str] = []
        self.on_stack: set[str] = set()
        self.found: list[list[str]] = []

    def _enter(self, node: str) -> tuple[str, list[str]]:
        self.index[node] = self.low[node] = len(self.index)
        self.stack.append(node)
        self.on_stack.add(node)
        return node, sorted(self.edges.get(node, ()))

    def run(self, start: str) -> None:
        work = [self._enter(start)]
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop(0)
                if nxt not in self.index:
                    work.append(self._enter(nxt))
                elif nxt in self.on_stack:
                    self.low[node] = min(self.low[node], self.index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                self.low[parent] = min(self.low[parent], self.low[node])
            if self.low[node] == self.index[node]:
                self._pop_component(node)

    def _pop_component(self, root: str) -> None:
        component = []
        while True:
            m = self.stack.pop()
            self.on_stack.discard(m)
            component.append(m)
            if m == root:
                break
        if len(component) > 1:
            self.found.append(sorted(component))


def loop_through(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """One shortest import loop from the component's first module back to itself."""
    start = component[0]
    members = set(component)
    prev: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(edges[node] & members):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return [*reversed(path), start]
            if nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    return [start]  # unreachable for a real component


def _short(module: str) -> str:
    return module.removeprefix(PACKAGE + ".") if module != PACKAGE else module


def render_text(graph: Graph) -> str:
    """One line per module: the package modules it imports (``*`` marks a deferred import)."""
    edges = graph.edges()
    lines = []
    for m in graph.modules:
        deferred = {i.module for i in graph.imports[m] if i.deferred and not i.type_only}
        targets = [_short(t) + ("*" if t in deferred else "") for t in sorted(edges[m])]
        lines.append(f"{_short(m)}: {', '.join(targets) or '-'}")
    return "\n".join(lines)


def render_dot(graph: Graph) -> str:
    """Graphviz source; deferred imports are dashed, edges inside a cycle red."""
    edges = graph.edges()
    knotted = {m: n for n, c in enumerate(cycles(edges)) for m in c}
    out = ["digraph imports {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    out += [f'  "{_short(m)}";' for m in graph.modules]
    for m in graph.modules:
        deferred = {i.module for i in graph.imports[m] if i.deferred and not i.type_only}
        for t in sorted(edges[m]):
            style = []
            if t in deferred:
                style.append("style=dashed")
            if m in knotted and knotted.get(t) == knotted[m]:
                style.append("color=red")
            attrs = f" [{', '.join(style)}]" if style else ""
            out.append(f'  "{_short(m)}" -> "{_short(t)}"{attrs};')
    out.append("}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the graph; return 1 (and name each cycle on stderr) when there is one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dot", action="store_true", help="print Graphviz source")
    parser.add_argument("--root", type=Path, default=ROOT, help="the directory holding gateway/")
    args = parser.parse_args(argv)
    graph = build(args.root)
    edges = graph.edges()
    sys.stdout.write((render_dot(graph) if args.dot else render_text(graph)) + "\n")
    found = cycles(edges)
    n_edges = sum(len(t) for t in edges.values())
    sys.stderr.write(f"{len(graph.modules)} modules, {n_edges} edges, {len(found)} cycle(s)\n")
    for component in found:
        loop = " -> ".join(_short(m) for m in loop_through(component, edges))
        sys.stderr.write(f"cycle among {len(component)} modules: {loop}\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
