"""Numbers as a reader wants them: a measurement rounded to two significant digits of its interval's
half-width (0.4213 [0.31, 0.53] -> 0.42 [0.31, 0.53]), a number without an interval to three.

    from pipeline.infra.numbers import compact_metrics
    compact_metrics({"acc": 0.42134, "acc_lo": 0.3123, "acc_hi": 0.5311, "acc_n": 50})
    # 'acc 0.42 [0.31, 0.53] n=50'

Metric dicts keep a measurement's interval and count beside it as `<key>_lo`, `<key>_hi`, `<key>_n`
(pipeline.infra.metricspec); `compact_metrics` folds them into one item. Used by the stage log's done
line and the dry run; a lowest-floor module (imports nothing of the pipeline).
"""

from __future__ import annotations

import math
from typing import Any

_SUFFIXES = ("_lo", "_hi", "_n")


def decimals_for(half_width: float) -> int:
    """Decimal places that keep two significant digits of the half-width (at least 0)."""
    if not half_width > 0 or not math.isfinite(half_width):
        return 3
    return max(0, 1 - math.floor(math.log10(half_width)))


def fmt_number(x: Any, digits: int = 3) -> str:
    """A number without an interval: `digits` significant digits; ints and non-numbers as they are."""
    if isinstance(x, bool) or not isinstance(x, float):
        return str(x)
    if not math.isfinite(x):
        return str(x)
    if x.is_integer() and abs(x) < 1e15:  # a count kept as a float (trainer logs: num_tokens 1212.0)
        return str(int(x))
    return f"{x:.{digits}g}"


def fmt_interval(x: float, lo: float | None, hi: float | None, n: int | None = None) -> str:
    """`x [lo, hi]` rounded to two significant digits of the half-width, then ` n=N` when given."""
    if lo is None or hi is None or x is None:
        out = fmt_number(x)
    else:
        half = (float(hi) - float(lo)) / 2
        if half > 0:
            d = decimals_for(half)
            out = f"{float(x):.{d}f} [{float(lo):.{d}f}, {float(hi):.{d}f}]"
        else:  # a point interval (every item alike): the value's own digits
            out = f"{fmt_number(float(x))} [{fmt_number(float(lo))}, {fmt_number(float(hi))}]"
    return out + (f" n={n}" if n is not None else "")


def compact_metrics(metrics: dict[str, Any], limit: int | None = None) -> str:
    """`key value [lo, hi] n=N, ...` for a flat metric dict; `limit` keeps the first that many items
    (`... and K more`)."""
    bases = [k for k in metrics if not (k.endswith(_SUFFIXES) and k.rsplit("_", 1)[0] in metrics)]
    items = [f"{k} {fmt_interval(metrics[k], metrics.get(k + '_lo'), metrics.get(k + '_hi'), metrics.get(k + '_n'))}"
             for k in bases]
    if limit is not None and len(items) > limit:
        items = items[:limit] + [f"... and {len(items) - limit} more"]
    return ", ".join(items)
