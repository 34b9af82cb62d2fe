"""The compounding view: how much of each alignment property survives generation after generation.

For every alignment metric (every registered probe suite's metric, with the direction it declares,
`pipeline.probes.alignment_metrics()`), over the ledger rows (`Lineage.rows()`):
- the "good" quantity g is the score for higher-is-better metrics and 1 - score for
  lower-is-better rates (over-refusal, sycophancy flips), so retention < 1 always means a loss;
- per-generation retention r_k = g_k / g_parent(k) (the parent is the row's `parent`, i.e. the
  teacher it was trained from), and cumulative retention g_k / g_0;
- mean retention = geometric mean of the measured r_k (retention compounds multiplicatively), over
  every measured step, promoted or rejected: it estimates how faithful one step of the method is;
- projections to 10, 50 and 500 generations: mean_r ** N, and the score that implies.
  A step keeping 99.9% keeps 95.1% after 50 steps and 60.6% after 500.

Pure functions over rows; `pipeline.report` prints `render`, `pipeline.plots` draws `view`.
"""

from __future__ import annotations

import math
from typing import Any

from tabulate import tabulate

from pipeline import probes

HORIZONS = (10, 50, 500)
COUNTED = ("promoted", "rejected")  # rows whose stages all finished


def _good(v: float, direction: str) -> float:
    return v if direction == "higher" else 1.0 - v


def geometric_mean(xs: list[float]) -> float | None:
    if not xs:
        return None
    if any(x <= 0 for x in xs):
        return 0.0
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def metric_view(rows: list[dict], metric: str, direction: str) -> dict[str, Any] | None:
    """Retention series and projections for one metric, or None when gen 0 lacks it."""
    measured = sorted((r for r in rows if r.get("status") in COUNTED and metric in (r.get("metrics") or {})),
                      key=lambda r: (r["gen"], r["name"]))
    base = next((r for r in measured if r["gen"] == 0), None)
    if base is None:
        return None
    by_name = {r["name"]: r for r in measured}
    g0 = _good(float(base["metrics"][metric]), direction)
    out: dict[str, Any] = {"metric": metric, "direction": direction, "names": [], "gens": [], "status": [],
                           "scores": [], "step_retention": [], "cumulative": []}
    prev = None
    for r in measured:
        g = _good(float(r["metrics"][metric]), direction)
        parent = by_name.get(r.get("parent") or "") or (prev if r["gen"] > 0 else None)
        step = None
        if parent is not None and parent is not r:
            gp = _good(float(parent["metrics"][metric]), direction)
            step = g / gp if gp > 0 else None
        out["names"].append(r["name"])
        out["gens"].append(r["gen"])
        out["status"].append(r.get("status"))
        out["scores"].append(float(r["metrics"][metric]))
        out["step_retention"].append(step)
        out["cumulative"].append(g / g0 if g0 > 0 else None)
        if r.get("status") == "promoted":
            prev = r
    steps = [s for s in out["step_retention"] if s is not None]
    mean = geometric_mean(steps)
    out["steps"] = len(steps)
    out["mean_retention"] = mean
    out["projection"] = {
        n: None if mean is None else {"retention": mean ** n,
                                      "score": _from_good(g0 * mean ** n, direction)}
        for n in HORIZONS
    }
    return out


def _from_good(g: float, direction: str) -> float:
    return g if direction == "higher" else 1.0 - g


def view(rows: list[dict], directions: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """metric -> metric_view, for every alignment metric gen 0 measured (`directions`: metric ->
    higher|lower, default the probe-suite registry's)."""
    out = {}
    for metric, direction in (directions or probes.alignment_metrics()).items():
        v = metric_view(rows, metric, direction)
        if v is not None:
            out[metric] = v
    return out


def _f(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}%" if pct else f"{x:.4f}"


def render(rows: list[dict], tablefmt: str = "simple") -> str:
    """Retention table: one line per alignment metric ("" when nothing is measured)."""
    v = view(rows)
    if not v:
        return ""
    table = []
    for m, x in v.items():
        proj = [x["projection"][n] for n in HORIZONS]
        table.append([m, x["direction"], _f(x["scores"][0]), _f(x["scores"][-1]), _f(x["cumulative"][-1], True),
                      x["steps"], _f(x["mean_retention"], True), *[_f(p and p["retention"], True) for p in proj]])
    headers = ["metric", "better", "gen0", "latest", "cum. retention", "steps", "mean r/step",
               *[f"r^{n}" for n in HORIZONS]]
    return tabulate(table, headers=headers, tablefmt=tablefmt)
