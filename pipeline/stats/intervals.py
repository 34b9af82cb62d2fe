"""Confidence intervals for one measurement: a rate (Wilson) or a mean of per-item values (bootstrap).

- `wilson(k, n)`: the Wilson score interval for k successes in n items (statsmodels), which stays
  inside [0, 1] and does not collapse to zero width at 0/n or n/n as the Wald interval does;
- `bootstrap_mean(values)`: a seeded percentile bootstrap over items (scipy) for continuous per-item
  values (KL, unbiased pass@k, diversity), deterministic for a given seed;
- `interval(values)`: Wilson when every value is 0/1, the bootstrap otherwise.

An empty sample gives an `Interval` whose estimate and bounds are None: "not measured", never 0;
a bootstrap over a single item gives the estimate with None bounds (nothing to resample).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from pipeline.stats.inputs import StatsError, check_alpha, check_n_boot, is_binary, values


@dataclass(frozen=True)
class Interval:
    """A point estimate with its (1 - alpha) confidence interval over n items."""

    estimate: float | None
    lo: float | None
    hi: float | None
    n: int
    method: str
    alpha: float = 0.05

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _count(x: Any, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0:
        raise StatsError(f"{what} must be a non-negative integer, got {x!r}")
    return int(x)


def wilson(k: int, n: int, alpha: float = 0.05) -> Interval:
    """Wilson score interval for k successes out of n (n = 0 gives None bounds)."""
    k, n, alpha = _count(k, "k"), _count(n, "n"), check_alpha(alpha)
    if k > n:
        raise StatsError(f"k ({k}) cannot exceed n ({n})")
    if n == 0:
        return Interval(None, None, None, 0, "wilson", alpha)
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    # statsmodels can return -1e-17 or 1 + 1e-16 at the edges; a rate's bounds are in [0, 1].
    return Interval(k / n, max(0.0, float(lo)), min(1.0, float(hi)), n, "wilson", alpha)


def bootstrap_mean(xs: Sequence[float], alpha: float = 0.05, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Percentile-bootstrap interval for the mean of per-item values (resampling items)."""
    arr, alpha, n_boot = values(xs), check_alpha(alpha), check_n_boot(n_boot)
    if len(arr) == 0:
        return Interval(None, None, None, 0, "bootstrap", alpha)
    lo, hi = percentile_bootstrap((arr,), lambda x, axis: np.mean(x, axis=axis), alpha, n_boot, seed)
    return Interval(float(arr.mean()), lo, hi, len(arr), "bootstrap", alpha)


def interval(xs: Sequence[float], alpha: float = 0.05, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Wilson for 0/1 outcomes, percentile bootstrap for anything else."""
    arr = values(xs)
    if is_binary(arr):
        return wilson(int(arr.sum()), len(arr), alpha)
    return bootstrap_mean(arr, alpha, n_boot, seed)


def percentile_bootstrap(data: tuple[np.ndarray, ...], statistic, alpha: float, n_boot: int, seed: int
                         ) -> tuple[float | None, float | None]:
    """(lo, hi) percentile bounds of `statistic(*data, axis=-1)`, resampling the items of every array
    together (paired), with a generator seeded by `seed` so reruns give the same interval.
    One item has no spread to resample: its bounds are None, not a zero-width interval."""
    if len(data[0]) < 2:
        return None, None
    # scipy also takes the standard error of the resamples, which is NaN (with a warning) when a
    # ratio's resamples include +inf; the percentile bounds do not use it.
    with np.errstate(invalid="ignore"):
        res = sps.bootstrap(data, statistic, n_resamples=n_boot, vectorized=True, paired=True,
                            confidence_level=1 - alpha, method="percentile", rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
