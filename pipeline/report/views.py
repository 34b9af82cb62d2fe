"""The text report's readable views of flat table rows: the compact table and the long view.

    python -m pipeline.report                                  # compact: one row per generation, fits 160 columns
    python -m pipeline.report --columns 'gsm8k_val.*,drift.honesty,wall_s'   # pick columns (fnmatch patterns)
    python -m pipeline.report --long                           # one row per metric and generation, as lm-eval prints

The compact table shows a handful of headline columns (the caller picks them from the registries:
pipeline.report.text.compact_columns) and keeps those that fit `WIDTH` characters, naming the rest
under it; a cell with an interval reads `0.32 [.21,.46]`, rounded to two significant digits of
the interval's half-width (pipeline.infra.numbers). Headers break at the first dot
(`gsm8k_test` over `accuracy_flexible`). The long view prints every metric with its direction
(pipeline.report.columns), value, interval and n. Pure functions over flat rows
(pipeline.report.text.flatten); no file is read.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from tabulate import tabulate

from pipeline.infra import numbers
from pipeline.report.columns import describe
from pipeline.stats.ledger import bounds

WIDTH = 160  # a terminal split in two, or a laptop's full screen
LEAD = ("gen", "status")


def header(col: str, multiline: bool) -> str:
    """`gsm8k_test\\naccuracy_flexible` for the table; the full name in markdown."""
    return col.replace(".", "\n", 1) if multiline else col


def cell(row: dict, col: str) -> str:
    v = row.get(col)
    lo, hi, _ = bounds(row, col) if isinstance(v, (int, float)) else (None, None, None)
    return numbers.narrow(v, lo, hi)


def _table(rows: list[dict], cols: list[str], fmt: str) -> str:
    multiline = fmt != "markdown"
    return tabulate([[cell(r, c) for c in cols] for r in rows], headers=[header(c, multiline) for c in cols],
                    tablefmt="github" if fmt == "markdown" else "simple", disable_numparse=True)


def width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def compact(rows: list[dict], headline: list[str], fmt: str = "table", limit: int = WIDTH
            ) -> tuple[str, list[str], list[str]]:
    """(the table, its columns, the headline columns left out): `LEAD` then the headline columns present in
    `rows`, dropped from the end until the table fits `limit` characters (table format only)."""
    have = {k for r in rows for k in r}
    cols = [c for c in LEAD if c in have] + [c for c in dict.fromkeys(headline) if c in have and c not in LEAD]
    dropped: list[str] = []
    text = _table(rows, cols, fmt)
    while fmt == "table" and width(text) > limit and len(cols) > len(LEAD) + 1:
        drop = cols[-2] if cols[-1] == "wall_s" else cols[-1]  # the wall time stays last
        cols.remove(drop)
        dropped.insert(0, drop)
        text = _table(rows, cols, fmt)
    return text, cols, dropped


def pick(rows: list[dict], patterns: list[str], available: list[str]) -> list[str]:
    """The columns `patterns` (names or fnmatch patterns, in order) name among `available`; a pattern
    that names none is a ValueError listing what is there."""
    out: list[str] = [c for c in LEAD if c in available]
    for p in patterns:
        hits = [c for c in available if fnmatchcase(c, p)]
        if not hits:
            raise ValueError(f"--columns: {p!r} names no column; columns: {', '.join(available)}")
        out += [c for c in hits if c not in out]
    return out


def chosen(rows: list[dict], cols: list[str], fmt: str = "table") -> str:
    return _table(rows, cols, fmt)


def long(rows: list[dict], metrics: list[str], fmt: str = "table") -> str:
    """One row per metric and generation: metric, better, gen, value, interval, n (the metric's name
    printed once per group, as lm-eval prints a task's)."""
    out = []
    for m in metrics:
        direction = describe(m)[0] or ""
        first = True
        for r in rows:
            v = r.get(m)
            if v is None:
                continue
            lo, hi, n = bounds(r, m) if isinstance(v, (int, float)) else (None, None, None)
            iv = "" if lo is None or hi is None else numbers.interval(lo, hi, signs=False)
            out.append([m if first else "", direction if first else "", r.get("gen"), numbers.value(v, lo, hi), iv,
                        "" if n is None else n])
            first = False
    return tabulate(out, headers=["metric", "better", "gen", "value", "95% interval", "n"],
                    tablefmt="github" if fmt == "markdown" else "simple", disable_numparse=True)
