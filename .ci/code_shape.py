"""The shape of the code, measured with `ast`: long functions and classes, import cycles
(function-level imports included, `TYPE_CHECKING` blocks left out), the depth of the import
graph, and the files outside the algorithms that name ILQL.

    python .ci/code_shape.py            # a report
    python .ci/code_shape.py --json     # the same as JSON (tests/test_code_shape.py reads it)
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "studio")
SKIP = ("core/store/migrations/",)


def sources() -> dict[str, Path]:
    """Module name -> file, for every module of the packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if any(rel.startswith(s) for s in SKIP):
                continue
            parts = rel[:-3].split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_pkg: bool, known: set[str]) -> set[str]:
    """Modules of ours that `module` imports anywhere (functions included)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_pkg else module.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join([*here, base] if base else here)
            for alias in node.names:
                # `from pkg import module` depends on the module, not on pkg's __init__
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in known and m != module}


def _span(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1


def measure() -> dict:
    mods = sources()
    known = set(mods)
    packages = frozenset(n for n, p in mods.items() if p.name == "__init__.py")
    graph, functions, classes, ilql_files = {}, [], [], []
    for name, path in mods.items():
        text = path.read_text()
        tree = ast.parse(text)
        rel = path.relative_to(ROOT).as_posix()
        graph[name] = _imports(tree, name, path.name == "__init__.py", known)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.append((_span(node), f"{rel}:{node.lineno} {node.name}"))
            elif isinstance(node, ast.ClassDef):
                classes.append((_span(node), f"{rel}:{node.lineno} {node.name}"))
        if re.search("ilql", text, re.I) and not (
            rel.startswith("core/algorithms/") or rel == "core/config.py"
        ):
            ilql_files.append(rel)
    functions.sort(reverse=True)
    classes.sort(reverse=True)
    cycles = _cycles(graph)
    return {
        "modules": len(mods),
        "functions": len(functions),
        "longest_functions": functions[:12],
        "functions_over_80": [f for f in functions if f[0] > 80],
        "largest_classes": classes[:8],
        "main_window_lines": next((n for n, w in classes if w.endswith(" MainWindow")), 0),
        "classes_over_500": [c for c in classes if c[0] > 500],
        "import_cycles": cycles,
        "import_depth": _depth(_condensed(graph, cycles)),
        "import_depth_through_faces": _depth(_condensed(graph, cycles), packages),
        "ilql_files_outside_algorithms": ilql_files,
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
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

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    return out


def _condensed(graph: dict[str, set[str]], cycles: list[list[str]]) -> dict[str, set[str]]:
    """The graph with each cycle drawn as one node, so that its depth is defined."""
    rep = {m: comp[0] for comp in cycles for m in comp}
    out: dict[str, set[str]] = {}
    for v, ws in graph.items():
        out.setdefault(rep.get(v, v), set()).update(rep.get(w, w) for w in ws)
    return {v: ws - {v} for v, ws in out.items()}


def _depth(graph: dict[str, set[str]], faces: frozenset[str] = frozenset()) -> int:
    """Floors of the import graph: the longest chain of imports, counted in import steps;
    a step into one of `faces` (a package's __init__ that re-exports) is not counted."""

    @cache
    def floor(v: str) -> int:
        return max(((w not in faces) + floor(w) for w in graph[v]), default=0)

    return max(floor(v) for v in graph)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    m = measure()
    if ap.parse_args().json:
        print(json.dumps(m, indent=1))
        return
    print(f"{m['modules']} modules, {m['functions']} functions")
    print("longest functions:")
    for n, where in m["longest_functions"]:
        print(f"  {n:4d}  {where}")
    print("largest classes:")
    for n, where in m["largest_classes"]:
        print(f"  {n:4d}  {where}")
    print(f"MainWindow: {m['main_window_lines']} lines")
    print(f"import cycles: {m['import_cycles'] or 'none'}")
    print(
        f"import depth (floors): {m['import_depth']} "
        f"({m['import_depth_through_faces']} not counting steps into package faces)"
    )
    files = m["ilql_files_outside_algorithms"]
    print(f"files naming ILQL outside core/algorithms and config.py: {len(files)} {files}")


if __name__ == "__main__":
    main()
