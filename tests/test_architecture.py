"""The package's shape: no import cycle (imports inside functions count too) and no module over 400 lines.

Edges are read from the source with `ast` (every `import pipeline.x` / `from pipeline.x import y`,
at any depth); `from pipeline.a import b` points at the module `pipeline.a.b` when that is a module,
else at `pipeline.a`.
"""

from __future__ import annotations

import ast
import functools
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


@functools.lru_cache(maxsize=1)
def _module_graph() -> dict[str, frozenset[str]]:
    """module -> the modules it imports (read once per test session: several tests walk it)."""
    mods = modules()
    return {name: frozenset(imports(path, set(mods))) for name, path in mods.items()}


def test_no_import_cycle():
    graph = _module_graph()
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


def package_of(module: str) -> str:
    """`pipeline.<first level>` of a module (`pipeline` itself for the top package)."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges between first-level packages, one for every import between their modules (lazy ones too)."""
    out: dict[str, set[str]] = {}
    for mod, targets in graph.items():
        a = package_of(mod)
        for t in targets:
            b = package_of(t)
            if a != b and "pipeline" not in (a, b):
                out.setdefault(a, set()).add(b)
    return out


# Package edges still pending removal, each with the change that removes it. Nothing else may be added.
PENDING_PACKAGE_EDGES = {
    # the report checks every stage manifest with the loop's ledger check (it needs the stage table's names);
    # it moves beside the lineage once the loop's one ledger writer lands
    ("pipeline.report", "pipeline.loop"): "pipeline.report.text/html.page -> pipeline.loop.ledger",
}


def _package_graph() -> dict[str, frozenset[str]]:
    return {a: frozenset(b) for a, b in package_graph(_module_graph()).items()}


def test_no_package_cycle():
    graph = {a: set(b) for a, b in _package_graph().items()}
    for (a, b) in PENDING_PACKAGE_EDGES:
        graph.get(a, set()).discard(b)
    cycle = find_cycle(graph)
    assert cycle is None, "package import cycle: " + " -> ".join(cycle)


def test_package_graph_sees_every_module_edge():
    graph = {"pipeline.a.x": {"pipeline.b.y"}, "pipeline.b.y": {"pipeline.b.z"}, "pipeline.b.z": {"pipeline.a"},
             "pipeline.a": set()}
    pkgs = package_graph(graph)
    assert pkgs == {"pipeline.a": {"pipeline.b"}, "pipeline.b": {"pipeline.a"}}
    assert find_cycle(pkgs) == ["pipeline.a", "pipeline.b", "pipeline.a"]


def test_pending_package_edges_still_exist():
    """An edge that is gone comes off the allow-list (so the list only shrinks)."""
    graph = _package_graph()
    gone = [edge for edge in PENDING_PACKAGE_EDGES if edge[1] not in graph.get(edge[0], frozenset())]
    assert not gone, f"remove from PENDING_PACKAGE_EDGES: {gone}"


def test_infra_imports_no_package_above_it():
    """The bottom layer (files, registries, metric specs) imports nothing else of the pipeline."""
    up = {f"{name} -> {t}" for name, targets in _module_graph().items() if package_of(name) == "pipeline.infra"
          for t in targets if package_of(t) != "pipeline.infra"}
    assert not up, f"pipeline.infra imports upward: {sorted(up)}"


def _code_names(source: str) -> set[str]:
    """Identifiers, imported module names and string constants of a module, without its docstrings and
    comments: what the code itself names."""
    tree = ast.parse(source)
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings:
            out.add(n.value)
        elif isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out.update(a.name for a in n.names)
            out.add(getattr(n, "module", None) or "")
    return out


def test_no_probe_suite_named_outside_probes():
    """A suite is its module, its data and the suite list (conf/): no code outside pipeline/probes names one."""
    import re

    from pipeline import probes

    # the built-in suites: each is the module pipeline/probes/<name>.py (a plugin's registered in a test is not)
    names = sorted(n for n in probes.SUITES.names() if (PKG / "probes" / f"{n}.py").is_file())
    assert len(names) >= 8, names
    word = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, names)) + r")(?![A-Za-z0-9])")
    hits = {}
    for path in PKG.rglob("*.py"):
        if (PKG / "probes") in path.parents:
            continue
        found = sorted({m for s in _code_names(path.read_text(encoding="utf-8")) for m in word.findall(s)})
        if found:
            hits[str(path.relative_to(ROOT))] = found
    assert not hits, f"probe suites named outside pipeline/probes: {hits}"


def test_suite_name_finder_reads_code_not_docstrings():
    src = ('"""The safety suite."""\nfrom pipeline.probes import honesty\n'
           'def f():\n    """Uses sycophancy."""\n    return {"ifeval": 1}  # truthfulqa\n')
    assert {"honesty", "ifeval"} <= _code_names(src)
    assert not {s for s in _code_names(src) if "safety" in s or "sycophancy" in s or "truthfulqa" in s}
