"""Numbers as people read them: a measurement to the precision its interval supports.

    from pipeline.infra.numbers import narrow, plain, signed
    narrow(0.3158, 0.2103, 0.4571)   # "0.32 [.21,.46]": two significant digits of the half-width
    plain(1175.31), plain(0.000213)  # "1175", "0.000213": three significant digits, no exponent for >= 1
    signed(-0.0213, 0.03)            # "-0.021": a change, to the decimals of a half-width of 0.03

One rule for the text report, the HTML page, the verdict line and the log: a value with an interval
[lo, hi] is printed to the decimal of the second significant digit of the half-width (hi - lo) / 2,
so 0.3158 with [0.2103, 0.4571] is 0.32 and 0.3158 with [0.3101, 0.3215] is 0.3158; a value
without one keeps three significant digits. The narrow interval form drops the leading zero of the
bounds and the spaces, for tables that must fit a terminal.
"""

from __future__ import annotations

import math

PLAIN_DIGITS = 3  # significant digits of a number with no interval


def decimals(lo: float | None, hi: float | None, default: int = 2) -> int:
    """Decimal places that show the interval's half-width to two significant digits (`default` for
    a missing or zero-width interval)."""
    if lo is None or hi is None:
        return default
    half = (float(hi) - float(lo)) / 2
    if not half > 0 or not math.isfinite(half):
        return default
    return max(0, 1 - math.floor(math.log10(half)))


def _fixed(x: float, places: int) -> str:
    text = f"{x:.{places}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text  # no "-0.00"


def _bare(x: float, places: int) -> str:
    """A bound without its leading zero: .21, -.05, 1.00."""
    text = _fixed(x, places)
    if text.startswith("0."):
        return text[1:]
    return "-" + text[2:] if text.startswith("-0.") else text


def plain(v) -> str:
    """A number without an interval: integers as they are, others to three significant digits."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "" if v is None else str(v)
    if isinstance(v, int) or (math.isfinite(v) and v == int(v) and abs(v) < 1e15):
        return str(int(v))
    if not math.isfinite(v):
        return str(v)
    if abs(v) >= 10 ** (PLAIN_DIGITS - 1):
        return f"{v:.0f}"
    if abs(v) >= 1e-4:
        return f"{v:.{PLAIN_DIGITS - 1 - math.floor(math.log10(abs(v)))}f}".rstrip("0").rstrip(".")
    return f"{v:.{PLAIN_DIGITS - 1}e}"


def value(v, lo=None, hi=None) -> str:
    """The value alone, rounded by its interval when it has one (plain otherwise)."""
    if lo is None or hi is None or not isinstance(v, (int, float)) or isinstance(v, bool):
        return plain(v)
    return _fixed(float(v), decimals(lo, hi))


SMALL = 5  # past this many decimals the narrow form shares one exponent: `1.87 [1.22,2.59]e-7`


def narrow(v, lo=None, hi=None) -> str:
    """`0.32 [.21,.46]`: the value and its interval at the interval's precision; plain without one.
    Tiny numbers (a KL of 1e-7 nats) share an exponent instead of a run of zeros."""
    if lo is None or hi is None or not isinstance(v, (int, float)) or isinstance(v, bool):
        return plain(v)
    v, lo, hi = float(v), float(lo), float(hi)
    d = decimals(lo, hi)
    top = max(abs(v), abs(lo), abs(hi))
    if d > SMALL and 0 < top < 1:
        e = math.floor(math.log10(top))
        k = 10.0 ** -e
        d = decimals(lo * k, hi * k)
        return f"{_fixed(v * k, d)} [{_bare(lo * k, d)},{_bare(hi * k, d)}]e{e}"
    return f"{_fixed(v, d)} [{_bare(lo, d)},{_bare(hi, d)}]"


def wide(v, lo=None, hi=None, trim: bool = False) -> str:
    """`0.32 [0.21, 0.46]`: as `narrow`, with leading zeros and a space (pages with room); `trim`
    drops trailing zeros (`0.8 [0.6, 0.9]`) where the numbers need not line up in a column."""
    if lo is None or hi is None or not isinstance(v, (int, float)) or isinstance(v, bool):
        return plain(v)
    d = decimals(lo, hi)
    f = (lambda x: _trim(_fixed(x, d))) if trim else (lambda x: _fixed(x, d))
    return f"{f(float(v))} [{f(float(lo))}, {f(float(hi))}]"


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def signed(x: float | None, half: float | None = None) -> str:
    """A change with its sign (`+0.021`), to two significant digits of `half` when given."""
    if x is None:
        return "-"
    d = decimals(0.0, 2 * half) if half else decimals(None, None)
    text = _fixed(float(x), d)
    return text if text.startswith("-") else "+" + text


def interval(lo: float | None, hi: float | None, signs: bool = True) -> str:
    """`[-0.12, +0.031]`: an interval of a change, at its own precision."""
    if lo is None or hi is None:
        return "[-]"
    d = decimals(lo, hi)
    f = (lambda x: ("" if _fixed(x, d).startswith("-") else "+") + _fixed(x, d)) if signs else (lambda x: _fixed(x, d))
    return f"[{f(float(lo))}, {f(float(hi))}]"


_SUFFIXES = ("_lo", "_hi", "_n")


def compact_metrics(metrics: dict, limit: int | None = None) -> str:
    """`key value [lo, hi] n=N, ...` for a flat metric dict whose intervals and counts sit beside each
    value as `<key>_lo`, `<key>_hi`, `<key>_n` (the stage log's done line, the trainer's step lines);
    `limit` keeps the first that many items (`... and K more`)."""
    bases = [k for k in metrics if not (k.endswith(_SUFFIXES) and k.rsplit("_", 1)[0] in metrics)]
    items = []
    for k in bases:
        n = metrics.get(k + "_n")
        items.append(f"{k} {wide(metrics[k], metrics.get(k + '_lo'), metrics.get(k + '_hi'), trim=True)}"
                     + (f" n={n}" if n is not None else ""))
    if limit is not None and len(items) > limit:
        items = items[:limit] + [f"... and {len(items) - limit} more"]
    return ", ".join(items)
