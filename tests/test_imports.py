"""The package's layout holds: every module says its job, no import circle, no stage importing a
later one, and no two module names a letter apart. Run alone: `.venv/bin/python -m pytest
tests/test_imports.py`; `python tests/test_imports.py` prints the import graph."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "loop"
# The loop's stages in order; a module may import its own stage, an earlier one, or the core (0).
STAGES = {"loop.collect": 1, "loop.improver": 2, "loop.ship": 3, "loop.measure": 4, "loop.cli": 5, "loop.__main__": 5}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path) -> set[str]:
    """Every loop module `path` imports, at its top or inside a function: `from a.b import c` names
    the module a.b.c when there is one, else a.b."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: imported(path) for name, path in MODULES.items()}


def stage(module: str) -> int:
    return next((rank for prefix, rank in STAGES.items() if module == prefix or module.startswith(prefix + ".")), 0)


def circles() -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(GRAPH[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_another_that_imports_it_back():
    assert circles() == []


def test_no_stage_imports_a_later_stage_and_the_core_imports_no_stage():
    upward = [f"{a} ({stage(a)}) imports {b} ({stage(b)})" for a in sorted(GRAPH) for b in sorted(GRAPH[a])
              if stage(b) > stage(a)]
    assert upward == []


def test_every_module_and_subpackage_has_a_docstring_that_says_its_job():
    missing = [name for name, path in MODULES.items()
               if len((ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").split()) < 5]
    assert missing == []


def one_letter_apart(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def test_no_two_module_names_differ_by_one_letter():
    names = {name.rpartition(".")[2] for name in MODULES} - {"__main__"}
    assert [(a, b) for a, b in itertools.combinations(sorted(names), 2) if one_letter_apart(a, b)] == []


def test_the_public_names_are_importable_from_loop_even_once_every_module_is_loaded():
    """A subpackage named like a public function would shadow it once imported (`loop.improve`)."""
    import importlib

    import loop

    for name in MODULES:
        if name != "loop.__main__":
            importlib.import_module(name)
    for name in loop.__all__:
        found = getattr(loop, name)
        assert callable(found) and found.__name__ == name, name


def test_the_walk_sees_the_imports_it_is_meant_to_check():
    """The checks above pass on an empty graph too: this one fails if the walk stops seeing imports."""
    assert "loop.improver.replay" in GRAPH["loop.improver.pipeline"]  # a top-level import
    assert "loop.sheets.google" in GRAPH["loop.sheets"]  # one inside a function
    assert one_letter_apart("stats", "status") and not one_letter_apart("edits", "review_tabs")
    assert stage("loop.measure.report") > stage("loop.improver.edits") > stage("loop.collect.traces") > stage("loop.model")


if __name__ == "__main__":
    for name in sorted(GRAPH):
        print(name, "->", ", ".join(sorted(GRAPH[name])) or "-")
