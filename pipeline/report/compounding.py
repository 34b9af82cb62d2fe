"""The compounding view: how much of each alignment property survives generation after generation.

For every alignment metric (every registered probe suite's metric, with the direction it declares,
`pipeline.probes.alignment_metrics()`), over the ledger rows (`Lineage.rows()`):
- the "good" quantity g is the score for higher-is-better metrics and 1 - score for
  lower-is-better rates (over-refusal, sycophancy flips), so retention < 1 always means a loss;
- per-generation retention r_k = g_k / g_parent(k) (the parent is the row's `parent`, i.e. the
  teacher it was trained from), and cumulative retention g_k / g_0;
- which steps count: the PROMOTED LINE by default (`with_rejected=False`: only promoted generations,
  each a step from its teacher), or every finished candidate (`with_rejected=True`, and
  `python -m pipeline.report --with-rejected`), which measures one step of the method including the
  candidates the gate threw away;
- mean retention per step: on the promoted line, the line's cumulative retention g_K / g_0 to the
  power 1/K (K promoted steps), so one generation that lost everything and a successor that got it
  back do not make the projection 0 forever; with rejected candidates, the geometric mean of the
  measured r_k (retention compounds multiplicatively), where a step that kept nothing does give 0;
- projections to 10, 50 and 500 generations: mean_r ** N, and the score that implies.
  A step keeping 99.9% keeps 95.1% after 50 steps and 60.6% after 500.

With per-item values (`items`, e.g. `lineage_items(lineage_dir)` reading each generation's
drift/probes.jsonl through the suite registry's `MetricSpec.item_values`), every retention carries a
95% interval from `pipeline.stats`: steps and cumulative retention by `ratio_bootstrap` over the
items both generations measured (matched by id), the promoted line's mean by `per_step` of the
cumulative interval, the with-rejected mean by `mean_retention` (a joint bootstrap over the items
every step shares), projections by `project`. A step whose interval contains 1 is not a measured
change (`significant` False, marked `~` in the table). An undefined retention (nothing to retain at
the reference) is None, never 0.

Pure functions over rows and an item loader; `pipeline.report.text` prints `render`, `pipeline.report.plots`
draws `view`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tabulate import tabulate

from pipeline import probes
from pipeline.drift.uncertainty import suite_item_values
from pipeline.infra.io import read_jsonl
from pipeline.lineage import Lineage
from pipeline.stats import HORIZONS, Interval, mean_retention, per_step, project, ratio_bootstrap

# row -> {metric: {item id: value}} for that generation (None: no per-item values)
Items = Callable[[dict], "dict[str, dict[str, float]] | None"]


def _good(v: float, direction: str) -> float:
    return v if direction == "higher" else 1.0 - v


def _from_good(g: float, direction: str) -> float:
    return g if direction == "higher" else 1.0 - g


def geometric_mean(xs: list[float]) -> float | None:
    if not xs:
        return None
    if any(x <= 0 for x in xs):
        return 0.0
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def lineage_items(lineage_dir: str | Path) -> Items:
    """The per-item values of each generation of a lineage, from its drift/probes.jsonl (read once)."""
    path = Path(lineage_dir)
    lineage = Lineage(path.parent, path.name)
    cache: dict[str, dict | None] = {}

    def load(row: dict) -> dict[str, dict[str, float]] | None:
        name = row["name"]
        if name not in cache:
            f = lineage.gen(row["gen"], name).path / "drift" / "probes.jsonl"
            cache[name] = suite_item_values(read_jsonl(f)) if f.exists() else None
        return cache[name]

    return load


def significant(iv: Interval | None) -> bool | None:
    """Whether a retention interval excludes 1 (a measured change); None without bounds."""
    if iv is None or iv.lo is None or iv.hi is None:
        return None
    return not iv.lo <= 1.0 <= iv.hi


def _matched(ref: dict | None, cur: dict | None) -> Interval | None:
    if ref is None or cur is None:
        return None
    shared = set(ref) & set(cur)
    if not shared:
        return None
    return ratio_bootstrap({i: ref[i] for i in shared}, {i: cur[i] for i in shared})


def metric_view(rows: list[dict], metric: str, direction: str, with_rejected: bool = True,
                items: Items | None = None) -> dict[str, Any] | None:
    """Retention series and projections for one metric, or None when gen 0 lacks it."""
    counted = ("promoted", "rejected") if with_rejected else ("promoted",)
    measured = sorted((r for r in rows if r.get("status") in counted and metric in (r.get("metrics") or {})),
                      key=lambda r: (r["gen"], r["name"]))
    base = next((r for r in measured if r["gen"] == 0), None)
    if base is None:
        return None

    def good_items(r: dict) -> dict[str, float] | None:
        vals = (items(r) or {}).get(metric) if items else None
        return {i: _good(v, direction) for i, v in vals.items()} if vals else None

    by_name = {r["name"]: r for r in measured}
    g0, i0 = _good(float(base["metrics"][metric]), direction), good_items(base)
    out: dict[str, Any] = {"metric": metric, "direction": direction, "with_rejected": with_rejected,
                           "names": [], "gens": [], "status": [], "scores": [], "step_retention": [],
                           "cumulative": [], "step_interval": [], "cumulative_interval": [], "significant": []}
    pairs: list[tuple[dict, dict]] = []  # (parent, child) good items of every step with both
    prev = None
    for r in measured:
        g, gi = _good(float(r["metrics"][metric]), direction), good_items(r)
        parent = by_name.get(r.get("parent") or "") or (prev if r["gen"] > 0 else None)
        step = step_iv = None
        if parent is not None and parent is not r:
            gp = _good(float(parent["metrics"][metric]), direction)
            step = g / gp if gp > 0 else None
            pi = good_items(parent)
            step_iv = _matched(pi, gi)
            if pi is not None and gi is not None:
                pairs.append((pi, gi))
        out["names"].append(r["name"])
        out["gens"].append(r["gen"])
        out["status"].append(r.get("status"))
        out["scores"].append(float(r["metrics"][metric]))
        out["step_retention"].append(step)
        out["cumulative"].append(g / g0 if g0 > 0 else None)
        out["step_interval"].append(step_iv)
        out["cumulative_interval"].append(_matched(i0, gi) if r is not base else None)
        out["significant"].append(significant(step_iv))
        if r.get("status") == "promoted":
            prev = r
    steps = [s for s in out["step_retention"] if s is not None]
    out["steps"] = len(steps) if with_rejected else len(measured) - 1
    if with_rejected:
        mean = geometric_mean(steps)
        mean_iv = mean_retention(pairs) if pairs else None
    else:
        k, cum = len(measured) - 1, out["cumulative"][-1]
        mean = cum ** (1 / k) if k and cum is not None else None
        last_iv = out["cumulative_interval"][-1]
        mean_iv = per_step(last_iv, k) if k and last_iv is not None else None
    out["mean_retention"] = mean
    out["mean_interval"] = mean_iv
    proj_iv = project(mean_iv) if mean_iv is not None else {}
    out["projection"] = {
        n: None if mean is None else {"retention": mean ** n, "score": _from_good(g0 * mean ** n, direction),
                                      "interval": proj_iv.get(n)}
        for n in HORIZONS
    }
    return out


def view(rows: list[dict], directions: dict[str, str] | None = None, with_rejected: bool = True,
         items: Items | None = None) -> dict[str, dict[str, Any]]:
    """metric -> metric_view, for every alignment metric gen 0 measured (`directions`: metric ->
    higher|lower, default the probe-suite registry's). The report and the plots pass
    with_rejected=False (the promoted line) unless asked for the rejected candidates too."""
    out = {}
    for metric, direction in (directions or probes.alignment_metrics()).items():
        v = metric_view(rows, metric, direction, with_rejected, items)
        if v is not None:
            out[metric] = v
    return out


PCT_CAP = 1e4  # percent: a projection past it prints as `>10000` (r^500 of a ratio above 1 overflows any table)


def _p(x: float) -> str:
    return f">{PCT_CAP:.0f}" if 100 * x > PCT_CAP else f"{100 * x:.1f}"


def _f(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{_p(x)}%" if pct else f"{x:.4f}"


def _fi(x: float | None, iv: Interval | None, mark: bool = False) -> str:
    """A retention as a percentage with its interval: `95.0% [88.2, 101.3]`, `~` when it contains 1;
    past 10000% a value reads `>10000%`."""
    if x is None:
        return "-"
    if iv is None or iv.lo is None or iv.hi is None:
        return _f(x, True)
    return f"{_f(x, True)} [{_p(iv.lo)}, {_p(iv.hi)}]" + ("~" if mark and not significant(iv) else "")


def render(rows: list[dict], tablefmt: str = "simple", with_rejected: bool = False,
           items: Items | None = None) -> str:
    """Retention table, one line per alignment metric, then each step's retention per generation
    ("" when nothing is measured). Intervals in brackets (percent) where `items` gives per-item values."""
    v = view(rows, with_rejected=with_rejected, items=items)
    if not v:
        return ""
    table = []
    for m, x in v.items():
        proj = [x["projection"][n] for n in HORIZONS]
        sig = [s for s in x["significant"] if s is not None]
        table.append([m, x["direction"], _f(x["scores"][0]), _f(x["scores"][-1]),
                      _fi(x["cumulative"][-1], x["cumulative_interval"][-1]), x["steps"],
                      f"{sum(sig)}/{len(sig)}" if sig else "-", _fi(x["mean_retention"], x["mean_interval"]),
                      *[_fi(p and p["retention"], p and p["interval"]) for p in proj]])
    headers = ["metric", "better", "gen0", "latest", "cum. retention", "steps", "changed", "mean r/step",
               *[f"r^{n}" for n in HORIZONS]]
    parts = [tabulate(table, headers=headers, tablefmt=tablefmt)]
    names = next(iter(v.values()))["names"]
    if len(names) > 1:
        per_gen = []
        for i, name in enumerate(names):
            if i == 0:
                continue
            cells = []
            for x in v.values():
                j = x["names"].index(name) if name in x["names"] else None
                cells.append("-" if j is None else _fi(x["step_retention"][j], x["step_interval"][j], mark=True))
            status = next((x["status"][x["names"].index(name)] for x in v.values() if name in x["names"]), "")
            per_gen.append([name, status, *cells])
        parts.append("Step retention vs the parent (~: the interval contains 100%, no measured change):\n"
                     + tabulate(per_gen, headers=["generation", "status", *v], tablefmt=tablefmt))
    return "\n\n".join(parts)
