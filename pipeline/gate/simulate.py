"""Operating characteristics of the configured gate: its own decision code on simulated paired outcomes.

    python -m pipeline.gate simulate --delta -0.1 0 experiment=cpu          # one JSON line per scenario
    python -m pipeline.gate simulate --rate 0.02 --discordance 0.04 --delta -0.02 0 --scope gate

Each simulated draw gives the reference (teacher) and the candidate 0/1 outcomes on the items of the
validation slice's permutation: a share `rate` of items is right for the reference, the candidate is
`delta` better (negative: worse), and a share `discordance` of items differs between the two (only
the reference right: (discordance - delta) / 2; only the candidate: (discordance + delta) / 2). The
draw is handed to `pipeline.gate.rules.decide`, the function the stage calls, with `more(n)`
slicing further items as the stage would score them, so the looks, the margin, the Bonferroni
alpha and the futility stop simulated are the configured ones (Hydra overrides pick the profile).
`--scope gate` adds the default drift budgets: per budget a suite of its profile's size
(`drift.subset`, else `--drift-n`) with an unchanged candidate (gen 0 = the parent), so the row is
the whole gate's (red flags: none).

Each row: the share of draws promoted (the status: with on_inconclusive=promote it includes the
inconclusive ones), rejected because a rule failed (futility included), and inconclusive (no rule
failed, capability undecided at the cap: the status follows `gate.on_inconclusive`, keep_teacher by
default), the mean number of validation items scored, and the scenario.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass

import numpy as np

from pipeline.config import Config, GateConfig
from pipeline.gate.items import _suite_metric
from pipeline.gate.rules import decision


class SimulationError(ValueError):
    """A scenario that no pair of models can produce (shares outside [0, 1])."""


@dataclass(frozen=True)
class Scenario:
    rate: float  # the reference's share of right answers
    delta: float  # candidate minus reference, in share of items
    discordance: float  # share of items the two disagree on
    n: int | None = None  # items in hand at the first look (None: the first planned look)


def shares(rate: float, delta: float, discordance: float) -> list[float]:
    """P(both right), P(only the reference), P(only the candidate), P(neither) of one item."""
    only_a, only_b = (discordance - delta) / 2, (discordance + delta) / 2
    both = rate - only_a
    p = [both, only_a, only_b, 1 - both - only_a - only_b]
    if min(p) < -1e-12 or abs(delta) > discordance:
        raise SimulationError(f"rate {rate}, delta {delta}, discordance {discordance} is no pair of models: "
                              f"|delta| must be <= discordance and (discordance - delta) / 2 <= rate <= 1 - "
                              f"(discordance + delta) / 2 (shares {[round(x, 4) for x in p]})")
    return [max(0.0, x) for x in p]


def draw(rng: np.random.Generator, n: int, rate: float, delta: float, discordance: float
         ) -> tuple[np.ndarray, np.ndarray]:
    """(reference, candidate) 0/1 outcomes on n items."""
    cat = rng.choice(4, size=n, p=shares(rate, delta, discordance))
    return ((cat == 0) | (cat == 1)).astype(float), ((cat == 0) | (cat == 2)).astype(float)


def _values(prefix: str, x: np.ndarray) -> dict[str, float]:
    return {f"{prefix}{i}": float(v) for i, v in enumerate(x)}


def budget_sizes(cfg: Config, default_n: int) -> dict[str, int]:
    """Items per budgeted drift metric: its suite's `drift.subset` size in the profile, else `default_n`."""
    out = {}
    for key in cfg.gate.budgets:
        found = _suite_metric(f"drift.{key}")
        size = cfg.drift.subset.get(found[0].name) if found else None
        out[key] = int(size) if size else default_n
    return out


def simulate(g: GateConfig, sc: Scenario, sims: int, seed: int, budgets: dict[str, int] | None = None,
             drift_rate: float = 0.5, drift_discordance: float = 0.2) -> dict:
    """One row (module docstring). `budgets`: budget key -> suite size (None: capability alone,
    the configured budgets left out)."""
    if sims < 1:
        raise SimulationError(f"sims must be >= 1, got {sims}")
    g = copy.deepcopy(g)
    if budgets is None:
        g.budgets = {}
    n0 = sc.n or (g.looks[0] if g.looks else None)
    if not n0 or n0 < 1:
        raise SimulationError("no first look: give --n or set gate.looks")
    cap = max([n0, *g.looks])
    shares(sc.rate, sc.delta, sc.discordance)
    for size in (budgets or {}).values():
        shares(drift_rate, 0.0, drift_discordance)
        if size < 1:
            raise SimulationError(f"a drift suite needs >= 1 item, got {size}")
    rng = np.random.default_rng(seed)
    tally: Counter = Counter()
    items = 0
    for _ in range(sims):
        ref, cand = draw(rng, cap, sc.rate, sc.delta, sc.discordance)
        tv, cv = _values("v", ref), _values("v", cand)
        ids = list(tv)

        def more(n: int, ids=ids, tv=tv, cv=cv):
            return {i: cv[i] for i in ids[:n]}, {i: tv[i] for i in ids[:n]}

        c0, t0 = more(n0)
        cm, tm = {g.metric: c0}, {g.metric: t0}
        for key, size in (budgets or {}).items():
            parent, moved = draw(rng, size, drift_rate, 0.0, drift_discordance)
            cm[f"drift.{key}"], tm[f"drift.{key}"] = _values("d", moved), _values("d", parent)
        status, _, checks, _ = decision(g, cm, tm, dict(tm), [], more=more if g.looks else None)
        failed = _failed(checks)
        tally["rejected" if failed else "inconclusive" if checks["capability"]["verdict"] == "inconclusive"
              else "passed"] += 1
        tally["status_promoted"] += status == "promoted"
        items += checks["capability"].get("items") or 0
    return {"scope": "gate" if budgets is not None else "capability", "metric": g.metric, "margin": g.epsilon,
            "looks": list(g.looks) or [n0], "alpha": g.alpha, "on_inconclusive": g.on_inconclusive,
            "rate": sc.rate, "delta": sc.delta, "discordance": sc.discordance, "n": n0, "sims": sims, "seed": seed,
            **({"budgets": budgets, "drift_rate": drift_rate, "drift_discordance": drift_discordance}
               if budgets is not None else {}),
            "promoted": tally["status_promoted"] / sims,
            "rejected": tally["rejected"] / sims, "inconclusive": tally["inconclusive"] / sims,
            "mean_items": items / sims}


def _failed(checks: dict) -> bool:
    """Did any rule fail (rather than the status resting on on_inconclusive)?"""
    cap = checks["capability"]["verdict"] == "fail"
    budgets = any(not b.get("passed", True) for b in checks["budgets"].values())
    return cap or budgets or not checks["red_flags"]["passed"]
