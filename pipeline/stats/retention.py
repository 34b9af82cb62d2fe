"""Retention with uncertainty, for the compounding view: how much of a property one step keeps.

- `ratio_bootstrap(ref, cur)`: retention = mean(cur) / mean(ref) over the same items (matched by id),
  with a percentile bootstrap that resamples items so each item's two values move together;
- `mean_retention(steps)`: the geometric mean of several steps' retentions (each a (ref, cur) pair
  of per-item values), with a percentile bootstrap resampling the items shared by every step jointly;
- `per_step(cumulative, k)`: the per-step rate a k-step cumulative retention implies, x**(1/k) with
  its bounds mapped the same way (monotone);
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


MEAN_METHOD = "joint-bootstrap-geometric-mean-ratio"


def _geomean_of_ratios(*arrays: np.ndarray, axis: int = -1) -> np.ndarray:
    ratios = np.stack([_ratio(arrays[i], arrays[i + 1], axis) for i in range(0, len(arrays), 2)])
    with np.errstate(divide="ignore", invalid="ignore"):
        # log 0 = -inf gives a geometric mean of 0 (a step that kept nothing); 0 and inf together: NaN
        return np.exp(np.mean(np.log(ratios), axis=0))


def mean_retention(steps: Sequence[tuple[Mapping, Mapping]], alpha: float = 0.05, n_boot: int = 2000,
                   seed: int = 0) -> Interval:
    """Geometric mean of the steps' retentions mean(cur) / mean(ref), over the items every step shares
    (dicts id -> value), with a bootstrap that resamples those items in all steps together. A step
    whose reference mean is 0 has no retention and is left out; none left: None estimate."""
    alpha, n_boot = check_alpha(alpha), check_n_boot(n_boot)
    if not steps:
        return Interval(None, None, None, 0, MEAN_METHOD, alpha)
    shared = set.intersection(*(set(ref) & set(cur) for ref, cur in steps))
    arrays = []
    for ref, cur in steps:
        _, vr, vc = align({i: ref[i] for i in shared}, {i: cur[i] for i in shared}, names=("ref", "cur"))
        if np.any(vr < 0) or np.any(vc < 0):
            raise StatsError("retention needs values >= 0 (a score, or 1 - rate)")
        if len(vr) and vr.mean() > 0:
            arrays += [vr, vc]
    if not arrays:
        return Interval(None, None, None, len(shared), MEAN_METHOD, alpha)
    est = float(_geomean_of_ratios(*arrays))
    lo, hi = percentile_bootstrap(tuple(arrays), _geomean_of_ratios, alpha, n_boot, seed)
    return Interval(_finite(est), _finite(lo), _finite(hi), len(shared), MEAN_METHOD, alpha)


def per_step(cumulative: Interval, k: int) -> Interval:
    """The per-step retention a k-step cumulative retention implies: x**(1/k), bounds likewise."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise StatsError(f"steps must be a positive integer, got {k!r}")
    root = [None if x is None else float(x) ** (1 / k) for x in (cumulative.estimate, cumulative.lo, cumulative.hi)]
    return Interval(*root, n=cumulative.n, method=f"{cumulative.method}^(1/{k})", alpha=cumulative.alpha)


def project(retention: Interval, horizons: Sequence[int] = HORIZONS) -> dict[int, Interval]:
    """Projected retention after each horizon N: estimate**N and [lo**N, hi**N] (None stays None)."""
    out = {}
    for h in horizons:
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise StatsError(f"horizons must be positive integers, got {h!r}")
        power = [None if x is None else float(x) ** h for x in (retention.estimate, retention.lo, retention.hi)]
        out[h] = Interval(*power, n=retention.n, method=f"{retention.method}^{h}", alpha=retention.alpha)
    return out
