"""The synth package's layering: no import cycle between its modules (imports inside functions
included), and every module under 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pipeline.synth

PKG = Path(pipeline.synth.__file__).parent
MODULES = {p.stem for p in PKG.glob("*.py") if p.stem != "__init__"}


def imports(path: Path) -> set[str]:
    """Sibling modules `path` imports anywhere in its body (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            parts = n.split(".")
            if parts[:2] == ["pipeline", "synth"] and len(parts) > 2 and parts[2] in MODULES:
                found.add(parts[2])
    return found - {path.stem}


def test_no_import_cycle_in_synth():
    graph = {m: imports(PKG / f"{m}.py") for m in MODULES}
    assert graph["stage"] and graph["steps"]  # the parser sees imports at all
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        assert m not in path, f"import cycle: {' -> '.join(path[path.index(m):] + [m])}"
        if m not in done:
            for n in sorted(graph[m]):
                visit(n, path + [m])
            done.add(m)

    for m in sorted(MODULES):
        visit(m, [])
    assert "mathgen" not in graph["codegen"] and "codegen" not in graph["mathgen"]


def test_synth_modules_are_small():
    sizes = {p.name: len(p.read_text().splitlines()) for p in PKG.glob("*.py")}
    assert all(n < 400 for n in sizes.values()), sizes
