"""How many items a comparison needs, and the smallest difference a given number of items resolves.

Paired (the default: both models answer the same items), for 0/1 outcomes compared with McNemar's
test, Connor's (1987) sample size: to detect a difference `margin` = p_b - p_a when a fraction
`rate` = P(the two models disagree on an item) of items is discordant,

    n = (z_{1-alpha/2} sqrt(rate) + z_{power} sqrt(rate - margin^2))^2 / margin^2.

Assumption: the discordant rate is known (estimate it from an earlier pair of runs, e.g.
`(only_a + only_b) / n` of a `Paired`); the formula is the normal approximation to the exact
McNemar test, accurate once the expected discordant count n * rate is a dozen or more.
`margin` cannot exceed `rate` (every discordant item would have to favour one side).

Unpaired (paired=False: two independent item sets of n each), `rate` is the baseline rate and the
count is statsmodels' two-proportion z-test size (`samplesize_proportions_2indep_onetail`). The
alternative lies on the 0.5 side of the baseline (baseline + margin below 0.5, baseline - margin
above it), the larger-variance side, so the count holds whichever way the change goes.

Connor, R. J. (1987). Sample size for testing differences in proportions for the paired-sample
design. Biometrics 43, 207-211.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq
from scipy.stats import norm
from statsmodels.stats.proportion import power_proportions_2indep, samplesize_proportions_2indep_onetail

from pipeline.stats.inputs import StatsError, check_alpha


def _check(name: str, x: float, upper_open: bool = False) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not (0 < x < 1 if upper_open else 0 < x <= 1):
        raise StatsError(f"{name} must lie in (0, 1{')' if upper_open else ']'}, got {x!r}")
    return float(x)


def _connor(margin: float, rate: float, alpha: float, power: float) -> float:
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    return (za * math.sqrt(rate) + zb * math.sqrt(max(0.0, rate - margin ** 2))) ** 2 / margin ** 2


def _unpaired_diff(margin: float, baseline: float) -> float:
    diff = margin if baseline < 0.5 else -margin
    if not 0 <= baseline + diff <= 1:
        raise StatsError(f"margin {margin} is too large for baseline rate {baseline}: "
                         f"{baseline + diff:g} is not a rate")
    return diff


def items_needed(margin: float, rate: float, alpha: float = 0.05, power: float = 0.8,
                 paired: bool = True) -> int:
    """Items needed to detect a difference of `margin` with two-sided level `alpha` at `power`.

    paired: `rate` is the discordant-pair rate (items the two models disagree on);
    unpaired: `rate` is the baseline success rate, and the count is per arm.
    """
    margin, rate, alpha = _check("margin", margin), _check("rate", rate), check_alpha(alpha)
    power = _check("power", power, upper_open=True)
    if paired:
        if margin > rate:
            raise StatsError(f"margin {margin} exceeds the discordant rate {rate}: a paired difference "
                             "is at most the share of items the two models disagree on")
        return math.ceil(_connor(margin, rate, alpha, power))
    n = samplesize_proportions_2indep_onetail(_unpaired_diff(margin, rate), rate, power, alpha=alpha)
    return math.ceil(float(n))


def min_detectable(n: int, rate: float, alpha: float = 0.05, power: float = 0.8,
                   paired: bool = True) -> float | None:
    """Smallest difference n items detect at `power` (the inverse of `items_needed`; `rate` as
    there). None when even the largest possible difference needs more than n items."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise StatsError(f"n must be a positive integer, got {n!r}")
    rate, alpha, power = _check("rate", rate), check_alpha(alpha), _check("power", power, upper_open=True)
    if paired:
        # The required n falls monotonically as the difference grows towards `rate`.
        if _connor(rate, rate, alpha, power) > n:
            return None
        return float(brentq(lambda d: _connor(d, rate, alpha, power) - n, 1e-9, rate, xtol=1e-10))
    largest = (1 - rate if rate < 0.5 else rate) - 1e-9

    def shortfall(d: float) -> float:
        diff = d if rate < 0.5 else -d
        return power_proportions_2indep(diff, rate, n, alpha=alpha).power - power

    if largest <= 0 or shortfall(largest) < 0:
        return None
    return float(brentq(shortfall, 1e-9, largest, xtol=1e-10))


def _paired_se(n: int, rate: float, diff: float) -> float:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise StatsError(f"n must be a positive integer, got {n!r}")
    if abs(diff) > rate:
        raise StatsError(f"diff {diff} exceeds the discordant rate {rate}: a paired difference is at most "
                         "the share of items the two models disagree on")
    return math.sqrt(max(rate - diff ** 2, 1e-12) / n)


def _margin(margin: float) -> float:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin < 0:
        raise StatsError(f"margin must be a number >= 0, got {margin!r}")
    return float(margin)


def pass_probability(n: int, rate: float, margin: float, alpha: float = 0.05, diff: float = 0.0) -> float:
    """Probability that a paired 0/1 comparison on n items shows non-inferiority (the lower bound of
    its two-sided (1 - alpha) interval above -margin) when the true difference is `diff` and a share
    `rate` of items is discordant: the normal approximation behind Connor's formula,
    Phi((diff + margin) / se - z_{1-alpha/2}) with se = sqrt((rate - diff^2) / n). What a gate check
    could detect, stated beside its verdict. `margin` 0: the chance of showing an improvement."""
    rate, alpha, margin = _check("rate", rate), check_alpha(alpha), _margin(margin)
    se = _paired_se(n, rate, diff)
    return float(norm.cdf((diff + margin) / se - norm.ppf(1 - alpha / 2)))


def fail_probability(n: int, rate: float, margin: float, alpha: float = 0.05, diff: float = 0.0) -> float:
    """Probability that the interval shows a loss past `margin` (its upper bound below -margin) when
    the true difference is `diff`: Phi((-diff - margin) / se - z_{1-alpha/2}); a harm rule's chance to
    fail (pass_probability's mirror image)."""
    rate, alpha, margin = _check("rate", rate), check_alpha(alpha), _margin(margin)
    se = _paired_se(n, rate, diff)
    return float(norm.cdf((-diff - margin) / se - norm.ppf(1 - alpha / 2)))
