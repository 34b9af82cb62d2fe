"""The 95% interval of every drift metric that has per-item values, for `drift/summary.json` and the
ledger (`<metric>_lo`, `_hi`, `_n`, pipeline.stats.ledger). Which statistic each uses:

- probe-suite rates and scores (and the judge's): `pipeline.stats.interval` over the per-item values
  of the suite's `Metric.item_values` (Wilson when every value is 0/1, else a bootstrap over items);
- probe agreement and eval agreement with a reference: Wilson over the items compared;
- KL from a reference: the metric is the mean over reference items of each item's nats/token (the
  per-item values the gate tests, pipeline.drift.kl), so its interval is `bootstrap_mean` of them;
  an identical model's KL is exactly 0 with no per-item values, and gets no interval;
- mean length: bootstrap over free generations (the metric is their mean);
- no interval: items gained/lost (counts), and distinct-n of the free generations and of the
  synthetic data. Distinct-n is one corpus-level ratio, not a mean of per-item values, and
  resampling completions with replacement repeats their n-grams, so a bootstrap's resamples sit
  below the reported value and a percentile interval would not contain it.

Pure functions over records.
"""

from __future__ import annotations

from pipeline import probes
from pipeline.drift.metrics import MEAN_LENGTH
from pipeline.stats import Interval, bootstrap_mean, interval, wilson

ALPHA, N_BOOT, SEED = 0.05, 2000, 0


def suite_item_values(records: list[dict]) -> dict[str, dict[str, float]]:
    """metric key -> {item id: value} for every registered suite's metric (scored, and the judge's
    over the judged records) that counts at least one record: what the intervals and the
    compounding view resample."""
    out: dict[str, dict[str, float]] = {}
    for spec in probes.SUITES:
        mine = [r for r in records if r["suite"] == spec.name]
        judged = [r for r in mine if "judge" in r]
        pairs = [(m, mine) for m in spec.metrics] + [(m, judged) for m in (spec.judge.metrics if spec.judge else ())]
        for m, recs in pairs:
            vals = m.item_values(recs)
            if vals:
                out[m.key] = vals
    return out


def suite_intervals(records: list[dict]) -> dict[str, Interval]:
    """The interval of every suite metric with per-item values."""
    return {k: interval(list(v.values()), ALPHA, N_BOOT, SEED) for k, v in suite_item_values(records).items()}


def free_intervals(records: list[dict]) -> dict[str, Interval]:
    """Mean length of the free generations (bootstrap over them)."""
    if not records:
        return {}
    return {MEAN_LENGTH.key: bootstrap_mean([r["tokens"] for r in records], ALPHA, N_BOOT, SEED)}


def agreement_interval(agree: int, n: int) -> Interval:
    return wilson(agree, n, ALPHA)


def kl_interval(per_item: list[dict], field: str) -> Interval:
    """KL as reported: the mean over reference items of each item's nats/token, bootstrapped over items."""
    # per-token KL >= 0; a tiny negative value is float round-off, as in pipeline.drift.kl
    return bootstrap_mean([max(0.0, float(r[field])) for r in per_item], ALPHA, N_BOOT, SEED)
