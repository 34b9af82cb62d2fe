"""Retention with uncertainty, for the compounding view: how much of a property one step keeps.

- `ratio_bootstrap(ref, cur)`: retention = mean(cur) / mean(ref) over the same items (matched by id),
  with a percentile bootstrap that resamples items so each item's two values move together;
- `project(retention)`: what that per-step retention implies after N steps, estimate**N with the
  interval lo**N .. hi**N (x**N is increasing for x >= 0, so the bounds map to bounds).

Values must be "good" quantities, >= 0 and larger is better (a score, or 1 - rate for a rate that
should be low), so retention < 1 always means a loss. A zero mean(ref) leaves nothing to retain:
estimate and bounds are None. A resample whose reference mean is zero has unbounded retention
(+inf; 0/0 counts as fully kept), and an infinite bound is reported as None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.stats.inputs import StatsError, align, check_alpha, check_n_boot
from pipeline.stats.intervals import Interval, percentile_bootstrap

HORIZONS = (10, 50, 500)
METHOD = "paired-bootstrap-ratio"


def _ratio(ref: np.ndarray, cur: np.ndarray, axis: int = -1) -> np.ndarray:
    den, num = np.mean(ref, axis=axis), np.mean(cur, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        # x / 0 is unbounded retention (+inf); 0 / 0 (nothing before, nothing after) counts as kept.
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, 1.0))


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def ratio_bootstrap(ref: Mapping | Sequence, cur: Mapping | Sequence, alpha: float = 0.05,
                    n_boot: int = 2000, seed: int = 0) -> Interval:
    """Per-step retention mean(cur) / mean(ref) over shared items, with its bootstrap interval."""
    alpha, n_boot = check_alpha(alpha), check_n_boot(n_boot)
    _, vr, vc = align(ref, cur, names=("ref", "cur"))
    for name, arr in (("ref", vr), ("cur", vc)):
        if np.any(arr < 0):
            raise StatsError(f"{name}: retention needs values >= 0 (a score, or 1 - rate), "
                             f"got {arr[arr < 0][0]!r}")
    n = len(vr)
    if n == 0 or vr.mean() == 0:
        return Interval(None, None, None, n, METHOD, alpha)
    lo, hi = percentile_bootstrap((vr, vc), _ratio, alpha, n_boot, seed)
    return Interval(float(vc.mean() / vr.mean()), _finite(lo), _finite(hi), n, METHOD, alpha)


def project(retention: Interval, horizons: Sequence[int] = HORIZONS) -> dict[int, Interval]:
    """Projected retention after each horizon N: estimate**N and [lo**N, hi**N] (None stays None)."""
    out = {}
    for h in horizons:
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise StatsError(f"horizons must be positive integers, got {h!r}")
        power = [None if x is None else float(x) ** h for x in (retention.estimate, retention.lo, retention.hi)]
        out[h] = Interval(*power, n=retention.n, method=f"{retention.method}^{h}", alpha=retention.alpha)
    return out
