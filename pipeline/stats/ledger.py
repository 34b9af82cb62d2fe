"""How an `Interval` sits in a flat metrics dict (a StageResult's metrics, a ledger row).

A metric `<key>` with an interval carries three more keys beside it: `<key>_lo`, `<key>_hi` (absent
when the interval has no bounds: one item, or an undefined ratio) and `<key>_n` (the items behind
it). Code that iterates metrics as point values (the gate's inputs, the teacher's prompt, the
report's table cells) reads them through `points`; `bounds` reads one metric's interval back.
A key counts as an interval key only when its base metric is in the same dict, so a metric whose
own name ends in `_n` stays a metric.
"""

from __future__ import annotations

from typing import Any, Mapping

from pipeline.infra.metricspec import SUFFIXES, base_of  # the interval keys are metric vocabulary
from pipeline.stats.intervals import Interval

__all__ = ["SUFFIXES", "base_of", "flat", "flat_all", "points", "bounds"]


def flat(key: str, iv: Interval) -> dict[str, Any]:
    """The keys `iv` adds beside metric `key` (its point value stays under `key`)."""
    out: dict[str, Any] = {}
    if iv.lo is not None and iv.hi is not None:
        out[f"{key}_lo"], out[f"{key}_hi"] = iv.lo, iv.hi
    out[f"{key}_n"] = iv.n
    return out


def flat_all(intervals: Mapping[str, Interval]) -> dict[str, Any]:
    return {k: v for key, iv in intervals.items() for k, v in flat(key, iv).items()}


def points(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """`metrics` without the interval keys."""
    return {k: v for k, v in metrics.items() if base_of(k, metrics) is None}


def bounds(metrics: Mapping[str, Any], key: str) -> tuple[float | None, float | None, int | None]:
    """(lo, hi, n) of metric `key` (None where absent)."""
    return metrics.get(f"{key}_lo"), metrics.get(f"{key}_hi"), metrics.get(f"{key}_n")
