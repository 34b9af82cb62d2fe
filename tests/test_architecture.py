"""The package's shape: no import cycle (imports inside functions count too) and no module over 400 lines.

Edges are read from the source with `ast` (every `import pipeline.x` / `from pipeline.x import y`,
at any depth); `from pipeline.a import b` points at the module `pipeline.a.b` when that is a module,
else at `pipeline.a`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pipeline"
MAX_LINES = 400


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    this = module_name(path)
    return edges(path.read_text(encoding="utf-8"), this, path.name == "__init__.py", known)


def edges(source: str, this: str, is_package: bool, known: set[str]) -> set[str]:
    tree = ast.parse(source)
    package = this if is_package else this.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "pipeline":
                    out.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "pipeline":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in known else base)
    # importing pipeline.a.b first runs pipeline/a/__init__.py: an edge to each enclosing package too,
    # unless the importer lives inside it
    for m in list(out):
        parts = m.split(".")
        for i in range(2, len(parts)):
            pkg = ".".join(parts[:i])
            if not (this == pkg or this.startswith(pkg + ".")):
                out.add(pkg)
    return {m for m in out if m in known and m != this}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycle():
    mods = modules()
    graph = {name: imports(path, set(mods)) for name, path in mods.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_sees_function_level_and_relative_imports():
    known = {"pipeline.a", "pipeline.b", "pipeline.pkg", "pipeline.pkg.c"}
    src = "def f():\n    from pipeline import b\n    from .pkg import c\n"
    assert edges(src, "pipeline.a", False, known) == {"pipeline.b", "pipeline.pkg", "pipeline.pkg.c"}
    graph = {"pipeline.a": {"pipeline.b"}, "pipeline.b": {"pipeline.a"}}
    assert find_cycle(graph) == ["pipeline.a", "pipeline.b", "pipeline.a"]


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_top_level_holds_packages_only():
    """`pipeline/` is grouped into packages whose names say what they hold; no loose modules."""
    loose = sorted(p.name for p in PKG.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert not loose, f"loose modules in pipeline/: {loose}"


def test_tests_share_helpers_one_way():
    """Plain helpers come from tests/support (one import style); fixtures from conftest; no test module
    imports another test module or conftest."""
    bad = []
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                leaf = name.removeprefix("tests.")
                if leaf.startswith(("test_", "conftest")):
                    bad.append(f"{path.relative_to(ROOT)}: imports {name}")
    assert not bad, bad
