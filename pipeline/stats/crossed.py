"""A difference between two arms replicated over seeds, on eval items shared by every seed.

A study runs each arm under k seeds and scores every lineage on the same eval items, so the per-item
differences d[seed, item] = b - a are crossed: items are not independent across seeds (the same
hard item is hard under every seed) and seeds are the replicates a study exists to measure. Pooling
the k x n differences into one list and testing them as independent items ignores the seed-to-seed
variance and gives intervals that are too narrow.

`crossed_difference(d)` estimates mean(d) with a two-way (pigeonhole) bootstrap: each resample
draws k seeds and, independently, n items, both with replacement, and takes the mean of d over the
drawn seeds x drawn items (the same item draw for every seed). The percentile interval then carries
both sources of variance. With one seed only the items are resampled: the interval is conditional
on that seed and no between-seed variance is estimated. With few seeds the seed resample takes few
distinct values (3 seeds: 10 multisets) and underestimates the between-seed spread by about
(k-1)/k, so the interval is coarse and the comparison has low power; `note` says so.

Owen, A. B. (2007). The pigeonhole bootstrap. Annals of Applied Statistics 1, 386-411.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.stats.inputs import StatsError, check_alpha, check_n_boot

METHOD = "two-way bootstrap over seeds x items (percentile)"
ITEMS_ONLY = "item bootstrap, one seed (percentile)"
FEW_SEEDS = 5  # below this many seeds the seed resample is coarse: the note says the power is low


@dataclass(frozen=True)
class Crossed:
    """mean(b - a) over seeds x items with its (1 - alpha) interval; `seed_diffs` per seed."""

    diff: float
    lo: float | None
    hi: float | None
    n_seeds: int
    n_items: int
    seed_diffs: list[float]
    method: str
    note: str
    alpha: float
    n_boot: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def note_for(k: int) -> str:
    if k == 1:
        return "one seed: no between-seed variance is estimated; the interval covers item sampling only"
    if k < FEW_SEEDS:
        return (f"only {k} seeds: the between-seed variance is estimated from {k} values, so the interval "
                f"is coarse and the comparison has low power (a real difference is easily missed)")
    return f"{k} seeds x items resampled independently"


def crossed_difference(d: np.ndarray, alpha: float = 0.05, n_boot: int = 4000, seed: int = 0) -> Crossed:
    """`d[s, i]`: arm minus reference on item i under seed s (the same items for every seed)."""
    d = np.asarray(d, dtype=float)
    alpha, n_boot = check_alpha(alpha), check_n_boot(n_boot)
    if d.ndim != 2 or d.size == 0:
        raise StatsError(f"differences must be a non-empty seeds x items matrix, got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise StatsError("differences must be finite")
    k, n = d.shape
    rng = np.random.default_rng(seed)
    # Multinomial counts are the bootstrap draws as weights: mean over drawn seeds x drawn items is
    # ws @ d @ wi / (k n), with the item weights wi shared by all seeds of one resample.
    wi = rng.multinomial(n, np.full(n, 1 / n), size=n_boot).astype(float)
    ws = (rng.multinomial(k, np.full(k, 1 / k), size=n_boot).astype(float) if k > 1
          else np.ones((n_boot, 1)))
    boot = np.einsum("bk,kn,bn->b", ws, d, wi) / (k * n)
    lo, hi = (None, None) if n < 2 and k < 2 else (float(np.quantile(boot, alpha / 2)),
                                                   float(np.quantile(boot, 1 - alpha / 2)))
    return Crossed(float(d.mean()), lo, hi, k, n, [float(x) for x in d.mean(axis=1)],
                   METHOD if k > 1 else ITEMS_ONLY, note_for(k), alpha, n_boot)
