"""Statistics shared by the gate, the compounding view, multi-seed studies and the report.

Pure functions over per-item values; no I/O except the CLI in `__main__`.

- one measurement: `wilson(k, n)`, `bootstrap_mean(values)`, `interval(values)` -> `Interval`;
- two models on the same items: `paired_binary(a, b)` (Newcombe + exact McNemar),
  `paired_continuous(a, b)` (paired bootstrap + sign-flip test) -> `Paired`, and the gate's
  `decide(paired, margin)` -> "pass" | "fail" | "inconclusive";
- planning: `items_needed(margin, rate)`, `min_detectable(n, rate)`, and what a check could detect:
  `pass_probability(n, rate, margin)`, `fail_probability(n, rate, margin)`;
- compounding: `ratio_bootstrap(ref, cur)` (per-step retention), `mean_retention(steps)`,
  `per_step(cumulative, k)`, `project(retention)`;
- ledger keys: `pipeline.stats.ledger` (`<metric>_lo/_hi/_n` beside a metric; `points` drops them).

Bad input raises `StatsError` (a ValueError) naming what was wrong.

    python -m pipeline.stats paired --a ref.jsonl --b cand.jsonl      # rows {"id": ..., "correct": bool}
    python -m pipeline.stats interval --k 37 --n 50
    python -m pipeline.stats items --margin 0.03 --rate 0.15          # paired items for a 3-point change
"""

from pipeline.stats.inputs import StatsError, align
from pipeline.stats.intervals import Interval, bootstrap_mean, interval, wilson
from pipeline.stats.paired import Paired, decide, newcombe_paired, paired_binary, paired_continuous, paired_ratio
from pipeline.stats.power import fail_probability, items_needed, min_detectable, pass_probability
from pipeline.stats.retention import HORIZONS, mean_retention, per_step, project, ratio_bootstrap

__all__ = [
    "HORIZONS", "Interval", "Paired", "StatsError", "align", "bootstrap_mean", "decide", "fail_probability", "interval",
    "items_needed", "mean_retention", "min_detectable", "newcombe_paired", "paired_binary", "paired_continuous",
    "paired_ratio", "pass_probability", "per_step", "project", "ratio_bootstrap", "wilson",
]
