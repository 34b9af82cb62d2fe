"""Compare lineages with their uncertainty: arms x seeds, per generation.

    python -m pipeline.report --compare checkpoints/studies/accumulate          # a study directory
    python -m pipeline.report --compare checkpoints/a checkpoints/b checkpoints/c --format markdown

    from pipeline.report.compare import compare, render
    data = compare(["checkpoints/studies/seeds"])      # plain data (the HTML report renders it too)
    print(render(data, "markdown"))

Members: a study directory (its `study.json`, pipeline.loop.study) gives each lineage's arm and seed; a
plain lineage directory named `<arm>-s<seed>` (the study naming) joins arm `<arm>` with that seed,
any other is an arm of its own (seed from its manifests when recorded).

`compare` returns, per arm, generation and metric (the report's summary metrics, from each ledger's
generation rows; a generation with several candidates is its selected candidate, metrics and
per-item records, pipeline.report.candidates):
- `means`: the mean over seeds with a Student-t interval over seeds (mean +- t_{1-alpha/2, k-1} s/sqrt(k)
  for k seeds; one seed has no interval), and the per-seed values;
- `differences`: every arm against the first (the reference arm), from the per-item records
  (pipeline.gate.items) of the seeds both ran, on the items every one of those seeds scored. The eval
  items are the same for every seed, so seeds and items are crossed: the interval is a two-way
  bootstrap resampling seeds and items independently (`pipeline.stats.crossed`), with seeds as the
  unit of replication; `note` says when it is conditional on one seed or has low power (few seeds).
  `seed_diffs` are the per-seed differences; the 2x2 counts over seed x item cells are descriptive.
  Two lone lineages with different or unknown seeds are paired with each other (one seed).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

import numpy as np
from scipy import stats as sps
from tabulate import tabulate

from pipeline import probes
from pipeline.drift import metrics as drift_metrics
from pipeline.evals import headline_columns
from pipeline.gate.items import item_values
from pipeline.infra.io import read_json
from pipeline.lineage import GenerationDir, Lineage, LineageError
from pipeline.report.candidates import generation_rows, records_dir
from pipeline.stats.crossed import crossed_difference
from pipeline.stats.inputs import is_binary

INTERVAL = "student-t over seeds"
_SEEDED = re.compile(r"(.+)-s(\d+)")


@dataclass(frozen=True)
class Member:
    arm: str
    seed: int | None
    path: Path

    @property
    def lineage(self) -> Lineage:
        return Lineage(self.path.parent, self.path.name)


def _recorded_seed(lin: Lineage) -> int | None:
    try:
        return read_json(lin.gen(0).manifest_path("eval")).get("seed")
    except (OSError, ValueError):
        return None


def members(paths: list[str | Path]) -> list[Member]:
    """The lineages behind `paths` (study directories expanded), each with its arm and seed."""
    out: list[Member] = []
    for p in map(Path, paths):
        if (p / "study.json").exists():
            rec = read_json(p / "study.json")
            main = rec.get("main")  # version 2: the main arm first, the reference of the differences
            for m in sorted(rec.get("lineages", []), key=lambda m: m["arm"] != main if main else 0):
                out.append(Member(m["arm"], m["seed"], Path(m["dir"])))
            continue
        lin = Lineage(p.parent, p.name)
        lin.meta()  # a clear error when this is not a lineage
        m = _SEEDED.fullmatch(p.name)
        out.append(Member(m.group(1), int(m.group(2)), lin.path) if m else
                   Member(p.name, _recorded_seed(lin), lin.path))
    if not out:
        raise LineageError(f"nothing to compare in {[str(p) for p in paths]}")
    return out


def base_rows(lin: Lineage) -> dict[int, dict]:
    """gen index -> ledger row of the generation, with its selected candidate's metrics where it had
    several (pipeline.report.candidates)."""
    return {r["gen"]: r for r in generation_rows(lin.rows())}


def default_metrics(rows: list[dict]) -> list[str]:
    """The metrics worth aggregating that the rows have numbers for, from the registries: each
    benchmark's headline metrics, then every probe suite's and drift's summary metrics."""
    flat = [dict(r.get("metrics") or {}) for r in rows]
    names: list[str] = []
    for f in flat:
        names += [k for k in f if k not in names]
    keys = list(headline_columns(names)) + list(probes.alignment_metrics()) + list(drift_metrics.COLUMNS)
    return [k for k in dict.fromkeys(keys) if any(isinstance(f.get(k), (int, float)) for f in flat)]


def t_interval(xs: list[float], alpha: float) -> tuple[float, float | None, float | None]:
    """(mean, lo, hi) of the values with a Student-t interval; one value has no interval."""
    m = fmean(xs)
    if len(xs) < 2:
        return m, None, None
    half = float(sps.t.ppf(1 - alpha / 2, len(xs) - 1)) * stdev(xs) / math.sqrt(len(xs))
    return m, m - half, m + half


def _pairs(a: list[Member], b: list[Member]) -> list[tuple[str, Member, Member]]:
    by_a = {m.seed: m for m in a if m.seed is not None}
    by_b = {m.seed: m for m in b if m.seed is not None}
    common = [s for s in by_a if s in by_b]
    if common:
        return [(f"s{s}", by_a[s], by_b[s]) for s in common]
    return [("-", a[0], b[0])] if len(a) == len(b) == 1 else []


def _records(m: Member, rows: dict[Path, dict[int, dict]], gen: int) -> GenerationDir:
    """Where the generation's per-item records are: its selected candidate's when it had several."""
    row = rows[m.path].get(gen)
    return records_dir(m.lineage, row) if row else GenerationDir(m.lineage, gen)


def _crossed(pairs, gen: int, key: str, rows: dict[Path, dict[int, dict]]
             ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(ref, arm) values as seeds x items matrices on the items every used seed scored in both arms,
    the seed tags used and the item ids (sorted, so the columns line up across seeds)."""
    per: list[tuple[str, dict, dict]] = []
    for tag, ma, mb in pairs:
        vb = item_values(_records(mb, rows, gen), key)
        va = item_values(_records(ma, rows, gen), key, ids=list(vb) if vb else None)
        if va and vb:
            per.append((tag, va, vb))
    if not per:
        return np.empty((0, 0)), np.empty((0, 0)), [], []
    ids = sorted(set.intersection(*(set(va) & set(vb) for _, va, vb in per)))
    ref = np.asarray([[va[i] for i in ids] for _, va, _ in per], dtype=float)
    arm = np.asarray([[vb[i] for i in ids] for _, _, vb in per], dtype=float)
    return ref, arm, [t for t, _, _ in per], ids


def _difference(ref: np.ndarray, arm: np.ndarray, alpha: float) -> dict[str, Any]:
    """The arm's difference from the reference with seeds as the unit and items crossed with seeds
    (pipeline.stats.crossed), plus the 2x2 counts over seed x item cells for 0/1 outcomes (descriptive:
    the cells are not independent, so no McNemar test is run on them)."""
    c = crossed_difference(arm - ref, alpha)
    out = {"n": c.n_items, "n_seeds": c.n_seeds, "a": float(ref.mean()), "b": float(arm.mean()),
           "diff": c.diff, "lo": c.lo, "hi": c.hi, "p_value": None, "method": c.method, "note": c.note,
           "seed_diffs": c.seed_diffs, "n_boot": c.n_boot, "both": None, "only_a": None, "only_b": None,
           "neither": None}
    if is_binary(np.concatenate([ref.ravel(), arm.ravel()])):
        a, b = ref.astype(bool), arm.astype(bool)
        out.update(both=int((a & b).sum()), only_a=int((a & ~b).sum()), only_b=int((~a & b).sum()),
                   neither=int((~a & ~b).sum()))
    return out


def compare(paths: list[str | Path], alpha: float = 0.05, metrics: list[str] | None = None) -> dict[str, Any]:
    """Aggregate the lineages behind `paths` (see the module docstring). Pure data: no printing."""
    ms = members(paths)
    arms: dict[str, list[Member]] = {}
    for m in ms:
        arms.setdefault(m.arm, []).append(m)
    rows = {m.path: base_rows(m.lineage) for m in ms}
    keys = metrics or default_metrics([r for rs in rows.values() for r in rs.values()])
    gens = sorted({g for rs in rows.values() for g in rs})
    means = []
    for arm, mm in arms.items():
        for g in gens:
            for k in keys:
                vals = [(m.seed, rows[m.path][g]["metrics"][k]) for m in mm
                        if g in rows[m.path] and isinstance((rows[m.path][g].get("metrics") or {}).get(k), (int, float))]
                if not vals:
                    continue
                mean, lo, hi = t_interval([float(v) for _, v in vals], alpha)
                means.append({"arm": arm, "gen": g, "metric": k, "seeds": [s for s, _ in vals],
                              "values": [v for _, v in vals], "n_seeds": len(vals), "mean": mean, "lo": lo, "hi": hi,
                              "statuses": [rows[m.path][g].get("status") for m in mm if g in rows[m.path]]})
    differences = []
    names = list(arms)
    for arm in names[1:]:
        pairs = _pairs(arms[names[0]], arms[arm])
        for g in gens:
            for k in keys:
                ref, cand, used, ids = _crossed(pairs, g, k, rows)
                if not ids:
                    continue
                differences.append({"gen": g, "metric": k, "arm": arm, "reference_arm": names[0],
                                    "seeds": used, **_difference(ref, cand, alpha)})
    return {"alpha": alpha, "interval": INTERVAL, "metrics": keys, "generations": gens,
            "arms": {a: [{"seed": m.seed, "dir": str(m.path)} for m in mm] for a, mm in arms.items()},
            "means": means, "differences": differences}


def _f(x: Any) -> Any:
    return "" if x is None else (round(x, 4) if isinstance(x, float) else x)


def render(data: dict[str, Any], fmt: str = "table") -> str:
    """The comparison as text: `table` or `markdown` (two tables), or `json`."""
    if fmt == "json":
        import json

        return json.dumps(data, indent=2, default=str)
    tf = "github" if fmt == "markdown" else "simple"
    pct = round(100 * (1 - data["alpha"]))
    arms = ", ".join(f"{a} (seeds {', '.join(str(m['seed']) for m in mm)})" for a, mm in data["arms"].items())
    mean_rows = [[r["arm"], r["gen"], r["metric"], r["n_seeds"], _f(r["mean"]), _f(r["lo"]), _f(r["hi"]),
                  " ".join(str(_f(v)) for v in r["values"])] for r in data["means"]]
    out = [f"Comparison of arms: {arms}",
           f"Mean over seeds per generation, {pct}% {data['interval']} interval (none with one seed):",
           tabulate(mean_rows, headers=["arm", "gen", "metric", "seeds", "mean", "lo", "hi", "per seed"], tablefmt=tf)]
    if data["differences"]:
        diff_rows = [[d["gen"], d["metric"], f"{d['arm']} - {d['reference_arm']}", d["n_seeds"], d["n"],
                      _f(d["diff"]), _f(d["lo"]), _f(d["hi"]), " ".join(f"{x:+.4g}" for x in d["seed_diffs"]),
                      "" if d["both"] is None else f"{d['both']}/{d['only_a']}/{d['only_b']}/{d['neither']}"]
                     for d in data["differences"]]
        out += [f"Paired difference between arms per generation, seeds as the unit and the same items for every seed: "
                f"{pct}% two-way bootstrap interval resampling seeds and items independently:",
                tabulate(diff_rows, headers=["gen", "metric", "arms", "seeds", "items", "diff", "lo", "hi",
                                             "per seed", "both/only_ref/only_arm/neither (seed x item cells)"],
                         tablefmt=tf)]
        out += [f"Note: {n}" for n in dict.fromkeys(d["note"] for d in data["differences"])]
    elif len(data["arms"]) > 1:
        out.append("Paired difference between arms: no per-item records shared by the arms")
    return "\n\n".join(out)
