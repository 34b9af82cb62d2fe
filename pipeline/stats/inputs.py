"""Checking and pairing the per-item values the statistics take.

Every public function of `pipeline.stats` reads its values through here, so bad input fails the
same way everywhere: a `StatsError` (a `ValueError`) that names what was wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class StatsError(ValueError):
    """Input a statistic cannot be computed from (named in the message)."""


def values(xs: Sequence[Any], what: str = "values") -> np.ndarray:
    """A 1-d float array of finite numbers (bools count as 0/1)."""
    try:
        arr = np.asarray(list(xs), dtype=float)
    except (TypeError, ValueError) as e:
        raise StatsError(f"{what}: every value must be a number ({e})") from None
    if arr.ndim != 1:
        raise StatsError(f"{what}: expected a flat list of numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise StatsError(f"{what}: NaN or infinite value at index {int(np.flatnonzero(~np.isfinite(arr))[0])}")
    return arr


def is_binary(arr: np.ndarray) -> bool:
    return bool(np.all((arr == 0) | (arr == 1)))


def binary(xs: Sequence[Any], what: str = "values") -> np.ndarray:
    """Like `values`, but every value must be 0/1 (or False/True)."""
    arr = values(xs, what)
    if not is_binary(arr):
        bad = int(np.flatnonzero((arr != 0) & (arr != 1))[0])
        raise StatsError(f"{what}: outcomes must be 0/1 or booleans, got {arr[bad]!r} at index {bad}")
    return arr


def _preview(ids: set) -> str:
    shown = sorted(map(repr, ids))
    return ", ".join(shown[:10]) + (f" (and {len(shown) - 10} more)" if len(shown) > 10 else "")


def align(a: Mapping | Sequence, b: Mapping | Sequence, names: tuple[str, str] = ("a", "b")
          ) -> tuple[list, np.ndarray, np.ndarray]:
    """Pair two measurements of the same items: (ids, a values, b values).

    Either two dicts id -> value (matched by id; an id in only one of them is an error naming it,
    since a paired statistic over unmatched items would silently compare different things) or two
    aligned sequences of equal length (ids are then the positions).
    """
    na, nb = names
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise StatsError(f"{na} and {nb} must both be dicts id -> value or both be aligned lists")
    if isinstance(a, Mapping):
        only_a, only_b = set(a) - set(b), set(b) - set(a)
        if only_a or only_b:
            parts = [f"only in {n}: {_preview(s)}" for n, s in ((na, only_a), (nb, only_b)) if s]
            raise StatsError("items do not match by id; " + "; ".join(parts))
        ids = sorted(a, key=repr)
        return ids, values([a[i] for i in ids], na), values([b[i] for i in ids], nb)
    va, vb = values(a, na), values(b, nb)
    if len(va) != len(vb):
        raise StatsError(f"{na} has {len(va)} items and {nb} has {len(vb)}; paired values must be aligned")
    return list(range(len(va))), va, vb


def check_alpha(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    return float(alpha)


def check_n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise StatsError(f"n_boot must be an integer >= 100, got {n_boot!r}")
    return int(n_boot)
