"""Paired comparisons: a reference `a` and a candidate `b` measured on the same items.

Pairing matters: when two models are scored on the same items, their outcomes are correlated
(easy items are easy for both), so the difference is far more precise than two separate intervals
suggest. Every function here returns `Paired`, with diff = mean(b) - mean(a).

- `paired_binary(a, b)`: 0/1 outcomes. Interval: Newcombe (1998) method 10, the square-and-add
  combination of the two marginal Wilson intervals corrected by the (continuity-adjusted) phi
  correlation of the 2x2 table; test: the exact two-sided McNemar test on the discordant pairs.
- `paired_continuous(a, b)`: real-valued per-item values. Interval: percentile bootstrap over item
  indices (both values of an item move together); test: a sign-flip permutation test (swapping
  a and b within items, which is what "no difference" makes exchangeable).
- `paired_ratio(a, b)`: a rate over items each side selected itself (`id -> (num, den)` on every
  item): the difference of the two reported rates, bootstrapped over all the items.
- `decide(paired, margin)`: the gate's three-way verdict from the interval and a tolerated margin.

Newcombe, R. G. (1998). Improved confidence intervals for the difference between binomial
proportions based on paired data. Statistics in Medicine 17, 2635-2650.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar

from pipeline.stats.inputs import StatsError, align, binary, check_alpha, check_n_boot
from pipeline.stats.intervals import percentile_bootstrap, wilson

Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Paired:
    """b versus a on n shared items: means, diff = b - a with its (1 - alpha) interval, and a
    two-sided p-value for "no difference". The 2x2 counts are set for binary outcomes only."""

    n: int
    a: float | None
    b: float | None
    diff: float | None
    lo: float | None
    hi: float | None
    p_value: float | None
    method: str  # how [lo, hi] was computed
    test: str  # how p_value was computed
    alpha: float = 0.05
    both: int | None = None
    only_a: int | None = None
    only_b: int | None = None
    neither: int | None = None

    @property
    def discordance(self) -> float | None:
        """Share of items the two disagree on (binary only): the `rate` `items_needed` takes."""
        if self.only_a is None or self.only_b is None or self.n == 0:
            return None
        return (self.only_a + self.only_b) / self.n

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


BINARY_METHOD, BINARY_TEST = "newcombe-paired-wilson", "mcnemar-exact"
CONTINUOUS_METHOD, CONTINUOUS_TEST = "paired-bootstrap-percentile", "sign-flip-permutation"


def newcombe_paired(both: int, only_a: int, only_b: int, neither: int, alpha: float = 0.05
                    ) -> tuple[float, float]:
    """Newcombe's method 10 interval for p_b - p_a from the paired 2x2 counts (n > 0).

    With p1 = p_b, p2 = p_a, their Wilson intervals (l1, u1), (l2, u2) and phi the correlation
    estimate below, the limits are
        lo = d - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)
        hi = d + sqrt((p2 - l2)^2 - 2 phi (p2 - l2)(u1 - p1) + (u1 - p1)^2).
    phi is (AD - BC) / sqrt(product of the four margins), with the numerator shrunk towards zero
    by n/2 when positive (Newcombe's adjustment, so a weakly positive table is treated as
    uncorrelated), and 0 when any margin is empty.
    """
    n = both + only_a + only_b + neither
    p1, p2 = (both + only_b) / n, (both + only_a) / n
    w1, w2 = wilson(both + only_b, n, alpha), wilson(both + only_a, n, alpha)
    margins = (both + only_b) * (only_a + neither) * (both + only_a) * (only_b + neither)
    cross = both * neither - only_a * only_b
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:
        phi = (cross - n / 2 if cross > 0 else cross) / math.sqrt(margins)
    dl1, du1, dl2, du2 = p1 - w1.lo, w1.hi - p1, p2 - w2.lo, w2.hi - p2
    d = p1 - p2
    # max(0, .) and the clip only guard float rounding: the exact expressions stay in range.
    lo = d - math.sqrt(max(0.0, dl1 ** 2 - 2 * phi * dl1 * du2 + du2 ** 2))
    hi = d + math.sqrt(max(0.0, dl2 ** 2 - 2 * phi * dl2 * du1 + du1 ** 2))
    return max(-1.0, lo), min(1.0, hi)


def paired_binary(a: Mapping | Sequence, b: Mapping | Sequence, alpha: float = 0.05) -> Paired:
    """Compare 0/1 outcomes of a (reference) and b (candidate) on the same items."""
    alpha = check_alpha(alpha)
    _, va, vb = align(a, b)
    va, vb = binary(va, "a"), binary(vb, "b")
    n = len(va)
    both = int(np.sum((va == 1) & (vb == 1)))
    only_a = int(np.sum((va == 1) & (vb == 0)))
    only_b = int(np.sum((va == 0) & (vb == 1)))
    neither = n - both - only_a - only_b
    counts = dict(both=both, only_a=only_a, only_b=only_b, neither=neither)
    if n == 0:
        return Paired(0, None, None, None, None, None, None, BINARY_METHOD, BINARY_TEST, alpha, **counts)
    lo, hi = newcombe_paired(both, only_a, only_b, neither, alpha)
    # Exact McNemar = a two-sided binomial test of only_b among the discordant pairs at p = 1/2;
    # with no discordant pair there is no evidence either way (p = 1).
    p = float(mcnemar([[both, only_a], [only_b, neither]], exact=True).pvalue)
    return Paired(n, float(va.mean()), float(vb.mean()), (only_b - only_a) / n, lo, hi, min(1.0, p),
                  BINARY_METHOD, BINARY_TEST, alpha, **counts)


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(y, axis=axis) - np.mean(x, axis=axis)


def paired_continuous(a: Mapping | Sequence, b: Mapping | Sequence, alpha: float = 0.05,
                      n_boot: int = 2000, seed: int = 0) -> Paired:
    """Compare real-valued per-item values of a (reference) and b (candidate) on the same items.

    The p-value is exact (all 2^n sign flips) when 2^n <= n_boot, else from n_boot random flips.
    A single item gives the diff with None bounds and p-value.
    """
    alpha, n_boot = check_alpha(alpha), check_n_boot(n_boot)
    _, va, vb = align(a, b)
    n = len(va)
    if n == 0:
        return Paired(0, None, None, None, None, None, None, CONTINUOUS_METHOD, CONTINUOUS_TEST, alpha)
    lo, hi = percentile_bootstrap((va, vb), _mean_diff, alpha, n_boot, seed)
    p = None  # one item: no resampling distribution, as for the interval
    if n >= 2:
        perm = sps.permutation_test((va, vb), _mean_diff, permutation_type="samples", vectorized=True,
                                    n_resamples=n_boot, alternative="two-sided",
                                    rng=np.random.default_rng(seed))
        p = min(1.0, float(perm.pvalue))
    return Paired(n, float(va.mean()), float(vb.mean()), float(np.mean(vb - va)), lo, hi, p,
                  CONTINUOUS_METHOD, CONTINUOUS_TEST, alpha)


RATIO_METHOD, RATIO_TEST = "paired-bootstrap-ratio", "swap-permutation"


def _ratios(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return num.sum(axis=-1) / den.sum(axis=-1)


def paired_ratio(a: Mapping[str, tuple[float, float]], b: Mapping[str, tuple[float, float]], alpha: float = 0.05,
                 n_boot: int = 2000, seed: int = 0) -> Paired:
    """Compare two ratios sum(num)/sum(den) measured on the same items, each item `id -> (num, den)`:
    a rate over the items a model's own outputs selected (sycophancy: flips among the items whose
    first answer was right, so each side counts different items). The ratios are exactly each side's
    reported rate, and every item of the suite is paired, counted or not; interval: percentile
    bootstrap over items (an item's four numbers move together; resamples where a side counts no
    item are left out); test: a permutation test swapping a's and b's (num, den) within items."""
    alpha, n_boot = check_alpha(alpha), check_n_boot(n_boot)
    ids, _, _ = align({i: 0.0 for i in a}, {i: 0.0 for i in b})
    na, da, nb, db = (np.asarray([float(side[i][k]) for i in ids]) for side in (a, b) for k in (0, 1))
    ra, rb = _ratios(na, da), _ratios(nb, db)
    n = len(ids)
    if n == 0 or not da.sum() or not db.sum():
        return Paired(n, None if not da.sum() else float(ra), None if not db.sum() else float(rb),
                      None, None, None, None, RATIO_METHOD, RATIO_TEST, alpha)
    rng = np.random.default_rng(seed)
    lo = hi = p = None
    if n >= 2:
        idx = rng.integers(0, n, size=(n_boot, n))
        d = _ratios(nb[idx], db[idx]) - _ratios(na[idx], da[idx])
        d = d[np.isfinite(d)]
        lo, hi = (float(q) for q in np.quantile(d, [alpha / 2, 1 - alpha / 2]))
        swap = rng.random((n_boot, n)) < 0.5
        pa, pb = np.where(swap, nb, na), np.where(swap, na, nb)
        qa, qb = np.where(swap, db, da), np.where(swap, da, db)
        null = _ratios(pb, qb) - _ratios(pa, qa)
        null = null[np.isfinite(null)]
        p = min(1.0, float((1 + np.sum(np.abs(null) >= abs(rb - ra) - 1e-12)) / (1 + len(null))))
    return Paired(n, float(ra), float(rb), float(rb - ra), lo, hi, p, RATIO_METHOD, RATIO_TEST, alpha)


def decide(paired: Paired, margin: float, higher_is_better: bool = True,
           require_improvement: bool = False) -> Verdict:
    """Three-way verdict on candidate b against reference a, tolerating a loss of `margin`.

    With [lo, hi] the interval of b - a, signed so that positive is better (negated when lower is
    better): "pass" when lo > -margin (the candidate is at worst `margin` behind; with
    require_improvement, lo > 0: it is shown better), "fail" when hi < -margin (it is shown worse
    than the margin allows), else "inconclusive" (the items cannot tell; more are needed, see
    `pipeline.stats.power`). A comparison without an interval is inconclusive.
    """
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
        raise StatsError(f"margin must be a number >= 0, got {margin!r}")
    if paired.lo is None or paired.hi is None:
        return "inconclusive"
    lo, hi = (paired.lo, paired.hi) if higher_is_better else (-paired.hi, -paired.lo)
    if lo > (0.0 if require_improvement else -margin):
        return "pass"
    if hi < -margin:
        return "fail"
    return "inconclusive"
