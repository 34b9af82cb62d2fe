"""Non-trivial mutants of a reference solution: what a good test set must tell apart from it.

    python -c "from pipeline.synth.mutants import mutants; print(mutants(open('f.py').read(), 'f', 8))"

The synth stage keeps a task when its tests reject seven trivial bodies (codegen.MUTANT_BODIES);
that says little about whether the tests pin the behaviour down. These mutants are small, plausible
bugs made by editing the reference solution's AST (the entry point's body only), one edit each:
- `constant`: a numeric constant c -> c + 1 (off by one);
- `compare`: `<` <-> `<=`, `>` <-> `>=` (boundary off by one);
- `swap`: the operands of a non-commutative binary operation swapped (`a - b` -> `b - a`, `/`, `//`,
  `%`, `**`);
- `drop_if`: an `if`'s condition replaced by False (its body never runs);
- `drop_else`: an `if`'s else branch removed.
Generation is deterministic: edit sites in `ast.walk` order, then taken round-robin over the kinds
so a cap keeps every kind present; a mutant whose source equals the original or an earlier mutant's
(e.g. swapping `x - x`) is left out. `pipeline.synth.verifier` runs them against the kept tests.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from itertools import zip_longest

KINDS = ("constant", "compare", "swap", "drop_if", "drop_else")
_FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


@dataclass(frozen=True)
class Mutant:
    kind: str  # one of KINDS
    line: int  # line of the edited node in the reference solution
    code: str  # the whole mutated solution


def _sites(fn: ast.FunctionDef) -> dict[str, list[tuple[int, int]]]:
    """Per kind, (index of the node in ast.walk(fn), sub-index) of every edit site, in walk order."""
    out: dict[str, list[tuple[int, int]]] = {k: [] for k in KINDS}
    doc = fn.body[0].value if ast.get_docstring(fn) else None
    for i, n in enumerate(ast.walk(fn)):
        if isinstance(n, ast.Constant) and n is not doc and type(n.value) in (int, float):
            out["constant"].append((i, 0))
        elif isinstance(n, ast.Compare):
            out["compare"] += [(i, j) for j, op in enumerate(n.ops) if type(op) in _FLIP]
        elif isinstance(n, ast.BinOp) and isinstance(n.op, _NON_COMMUTATIVE):
            out["swap"].append((i, 0))
        elif isinstance(n, ast.If):
            out["drop_if"].append((i, 0))
            if n.orelse:
                out["drop_else"].append((i, 0))
    return out


def _apply(n: ast.AST, kind: str, j: int) -> None:
    if kind == "constant":
        n.value = n.value + 1
    elif kind == "compare":
        n.ops[j] = _FLIP[type(n.ops[j])]()
    elif kind == "swap":
        n.left, n.right = n.right, n.left
    elif kind == "drop_if":
        n.test = ast.Constant(False)
    elif kind == "drop_else":
        n.orelse = []


def mutants(solution: str, entry_point: str, limit: int) -> list[Mutant]:
    """Up to `limit` distinct mutants of `solution`'s function `entry_point` (none when it does not
    parse or has no such top-level function)."""
    try:
        tree = ast.parse(solution)
    except (SyntaxError, ValueError):
        return []
    idx = next((i for i, n in enumerate(tree.body) if isinstance(n, ast.FunctionDef) and n.name == entry_point), None)
    if idx is None or limit <= 0:
        return []
    sites = _sites(tree.body[idx])
    order = [(k, s) for row in zip_longest(*(sites[k] for k in KINDS)) for k, s in zip(KINDS, row) if s is not None]
    seen, out = {ast.unparse(tree)}, []
    for kind, (i, j) in order:
        t = copy.deepcopy(tree)
        node = list(ast.walk(t.body[idx]))[i]
        _apply(node, kind, j)
        code = ast.unparse(ast.fix_missing_locations(t))
        if code not in seen:
            seen.add(code)
            out.append(Mutant(kind, getattr(node, "lineno", 0), code + "\n"))
        if len(out) == limit:
            break
    return out
