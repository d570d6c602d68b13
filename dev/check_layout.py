#!/usr/bin/env python
"""
Check the package layout rules (run by ``tests/test_layout.py``; also ``python dev/check_layout.py``):

- no module in ``yolox_d2/`` over ``MAX_MODULE_LINES`` lines;
- no import cycle among the modules of ``yolox_d2/`` (module-level and function-level imports
  alike: a lazy import only hides a cycle);
- no cross-module read of a private attribute: ``obj._name`` (``obj`` not ``self`` / ``cls``)
  where ``_name`` is an attribute or method defined in another ``yolox_d2`` module;
- every ``tools/*.py`` under ``MAX_TOOL_LINES`` lines;
- no test loads a file of ``tools/`` by path (``runpy.run_path`` / ``spec_from_file_location``):
  tests import the library; running a tool as a user does (a subprocess) is fine.

Prints one line per violation and exits 1 when there is any.
"""
import ast
import os
import re
import sys
from typing import Dict, Iterable, List, Optional, Set, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "yolox_d2"
MAX_MODULE_LINES = 500
MAX_TOOL_LINES = 150
_LOAD_BY_PATH_RE = re.compile(r"\b(run_path|spec_from_file_location)\(")
_TOOLS_PATH_RE = re.compile(r"""["']tools["']|["']tools/|TRAIN_NET\b""")


def _py_files(root: str) -> Iterable[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, REPO)[: -len(".py")].split(os.sep)
    if rel[-1] == "__init__":
        rel = rel[:-1]
    return ".".join(rel)


def _line_count(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f)


def _resolve(module: str, is_package: bool, level: int, target: Optional[str]) -> str:
    """Absolute module name of ``from <level dots><target> import ...`` inside ``module``."""
    if level == 0:
        return target or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph(modules: Dict[str, str]) -> Dict[str, Set[str]]:
    """``module -> modules of the package it imports`` (a package's submodule when it is one)."""
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        is_package = path.endswith("__init__.py")
        edges: Set[str] = set()
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                targets = []
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            else:
                continue
            for target in targets:
                # `import a.b.c` imports a, a.b and a.b.c; keep the deepest one that is ours
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    cycles: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def _private_definitions(tree: ast.AST) -> Set[str]:
    """Private names a module defines as attributes: ``def _x``, ``self._x = ...``, class-level ``_x``."""
    names: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                    targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                    names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_reads(modules: Dict[str, str]) -> List[Tuple[str, int, str, str]]:
    """``(path, line, expression, defining module)`` for each cross-module private read."""
    trees = {name: ast.parse(open(path, encoding="utf-8").read(), path) for name, path in modules.items()}
    defined_in: Dict[str, Set[str]] = {}
    for name, tree in trees.items():
        for attr in _private_definitions(tree):
            defined_in.setdefault(attr, set()).add(name)
    found = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)):
                continue
            owners = defined_in.get(node.attr, set())
            if not owners or name in owners:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "super":
                continue
            found.append((modules[name], node.lineno, f"{ast.unparse(node.value)}.{node.attr}", sorted(owners)[0]))
    return found


def check() -> List[str]:
    problems: List[str] = []
    modules = {_module_name(p): p for p in _py_files(os.path.join(REPO, PACKAGE))}
    for path in modules.values():
        n = _line_count(path)
        if n > MAX_MODULE_LINES:
            problems.append(f"{os.path.relpath(path, REPO)}: {n} lines (limit {MAX_MODULE_LINES})")
    for cycle in find_cycles(import_graph(modules)):
        problems.append("import cycle: " + " <-> ".join(cycle))
    for path, line, expr, owner in private_reads(modules):
        problems.append(f"{os.path.relpath(path, REPO)}:{line}: reads {expr}, private to {owner}")
    for path in _py_files(os.path.join(REPO, "tools")):
        n = _line_count(path)
        if n > MAX_TOOL_LINES:
            problems.append(f"{os.path.relpath(path, REPO)}: {n} lines (tool limit {MAX_TOOL_LINES})")
    for path in _py_files(os.path.join(REPO, "tests")):
        text = open(path, encoding="utf-8").read()
        if not _TOOLS_PATH_RE.search(text):
            continue
        for match in _LOAD_BY_PATH_RE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            problems.append(f"{os.path.relpath(path, REPO)}:{line}: loads a tools/ file by path")
    return problems


def main() -> int:
    problems = check()
    for p in problems:
        print(p)
    print(f"check_layout: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
