"""One gated comparison: a candidate against a reference on the same items, decided on evidence.

    from pipeline.gate.evidence import judge
    v = judge("capability", "gsm8k_val.accuracy_flexible", cand_items, teacher_items, margin=0.02,
              higher_is_better=True, alpha=0.05)      # v.verdict: pass | fail | inconclusive

A value is either per-item (a dict id -> value, e.g. from `eval/<task>.jsonl`) or a plain number
(the manifest's point estimate, when a generation left no per-item records). With per-item values
on both sides, the items are matched by id and compared with `pipeline.stats` (0/1 outcomes: the
Newcombe interval with the exact McNemar test; anything else: the paired bootstrap with the
sign-flip test; a probe rate whose two sides counted different items, given as counted values
id -> (value, counted): the paired ratio bootstrap over every item, so the rates tested are the
rates reported); `stats.decide` gives the verdict from the (1 - alpha) interval of
candidate - reference, signed so positive is better, and the margin. An inconclusive 0/1 comparison
also says how many items would decide it (`stats.items_needed` at the observed discordance, for the
distance between the observed difference and the boundary the verdict hinges on). Otherwise the
point estimates are compared (never inconclusive; exactly at the margin passes) and the reason says
"no per-item records: point estimate". `harm=True` (a drift budget) turns "inconclusive" into "pass":
such a rule fails only on a loss shown past its margin. Each paired check records its items, method,
alpha and `power`: what it could detect at the observed discordance (pipeline.stats.power).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

import numpy as np

from pipeline import stats
from pipeline.stats.inputs import is_binary

TOL = 1e-9  # point estimates: "exactly at the boundary" must pass despite float representation (0.5 - 0.02)
POINT = "no per-item records: point estimate"

Values = Mapping[str, float] | Mapping[str, tuple[float, int]] | float | int  # tuples: counted values


@dataclass
class Verdict:
    label: str  # what was judged: "capability", "drift.honesty: step"
    verdict: str  # pass | fail | inconclusive
    reason: str  # "<label>: <verdict>, ..." with the counts, the interval, the method and the margin
    check: dict[str, Any] = field(default_factory=dict)  # the same numbers, for decision.json


def _counted(v: Values | None) -> bool:
    return isinstance(v, Mapping) and bool(v) and all(isinstance(x, tuple) for x in v.values())


def _selected(v: Mapping) -> dict[str, float]:
    """Counted values (id -> (value, counted)) as plain per-item values of the counted items."""
    return {i: float(x) for i, (x, c) in v.items() if c} if _counted(v) else dict(v)


def point(v: Values | None) -> float | None:
    """The point estimate of a value: a number as is, per-item values' mean, counted values' ratio
    (None when empty/absent)."""
    if isinstance(v, Mapping):
        v = _selected(v)
        return fmean(float(x) for x in v.values()) if v else None
    return None if v is None else float(v)


def _f(x: float | None, signed: bool = False) -> str:
    return "None" if x is None else (f"{x:+.4f}" if signed else f"{x:.4f}")


def _items_needed(p: stats.Paired, d: float, boundary: float, alpha: float) -> tuple[int | None, str]:
    """Items that would resolve the observed difference `d` (signed, positive better) against
    `boundary` at the observed discordance; (None, why) when there is no such number."""
    rate = p.discordance
    if rate is None:
        return None, "the sample-size formula is for 0/1 outcomes"
    if rate == 0:
        return None, "no discordant items, so no discordance to size from"
    effect = min(abs(d - boundary), rate)  # a paired difference is at most the discordant share
    if effect <= 0:
        return None, "the observed difference sits on the boundary"
    return stats.items_needed(effect, rate, alpha=alpha), f"at the observed discordance {rate:.4f} (80% power)"


def _power(p: stats.Paired, margin: float, alpha: float, harm: bool) -> dict[str, Any]:
    """What the check could detect at the observed discordance (pipeline.stats.power): non-inferiority,
    the chance an unchanged candidate passes; a harm rule, the chance a loss of twice the margin fails."""
    rate = p.discordance
    if rate is None or rate == 0 or p.n == 0:
        why = "0/1 outcomes only" if rate is None else "no discordant items"
        return {"discordance": rate, "pass_probability": None, "why": why}
    if harm:
        loss = min(2 * margin, rate)
        return {"discordance": rate, "pass_probability": 1 - stats.fail_probability(p.n, rate, margin, alpha),
                "harm_loss": loss, "harm_detection": stats.fail_probability(p.n, rate, margin, alpha, diff=-loss)}
    return {"discordance": rate, "pass_probability": stats.pass_probability(p.n, rate, margin, alpha)}


def _paired(label: str, metric: str, what: str, cand: Mapping, ref: Mapping, margin: float, margin_name: str,
            higher: bool, alpha: float, require_improvement: bool, harm: bool = False) -> Verdict | None:
    ratio = _counted(cand) and _counted(ref) and any(
        cand[i][1] != ref[i][1] for i in set(cand) & set(ref))  # each side counted other items
    if not ratio:  # the same items counted on both sides (or plain values): an ordinary paired test
        cand, ref = _selected(cand), _selected(ref)
    shared = sorted(set(cand) & set(ref), key=repr)
    if not shared:
        return None
    a, b = {i: ref[i] for i in shared}, {i: cand[i] for i in shared}
    binary = not ratio and is_binary(np.asarray([*a.values(), *b.values()], dtype=float))
    p = (stats.paired_ratio(a, b, alpha) if ratio else
         stats.paired_binary(a, b, alpha) if binary else stats.paired_continuous(a, b, alpha))
    verdict = stats.decide(p, margin, higher_is_better=higher, require_improvement=require_improvement)
    shown = verdict
    if harm and verdict == "inconclusive":
        verdict = "pass"  # a harm rule fails only on harm shown past its margin
    sign = 1.0 if higher else -1.0
    d = None if p.diff is None else sign * p.diff + 0.0  # + 0.0: no "-0.0000"
    lo, hi = (p.lo, p.hi) if higher else (None if p.hi is None else -p.hi, None if p.lo is None else -p.lo)
    threshold = 0.0 if require_improvement else -margin
    counts = f"n={p.n}" + (f", both={p.both}, only_a={p.only_a}, only_b={p.only_b}" if binary else "")
    if ratio:
        counts += f", counted {sum(b[i][1] for i in shared)} vs {sum(a[i][1] for i in shared)}"
    dropped = len(set(cand) ^ set(ref))
    if dropped:
        counts += f", {dropped} unmatched item(s) left out"
    pct = round(100 * (1 - alpha))
    bound = "gate.require_improvement" if require_improvement else f"{margin_name} {_f(margin)}"
    tail = {"pass": f"lower bound > {_f(threshold, True)} ({bound})",
            "fail": f"upper bound < {_f(-margin, True)} ({margin_name} {_f(margin)})",
            "inconclusive": f"the interval straddles {_f(threshold, True)} ({bound})"}[shown]
    if harm and shown != "fail":
        tail = f"no harm past the budget shown: upper bound >= {_f(-margin, True)} ({margin_name} {_f(margin)})"
    check: dict[str, Any] = {"verdict": verdict, "passed": verdict == "pass", "margin": margin,
                             "rule": "harm" if harm else "non-inferiority",
                             "direction": "higher" if higher else "lower", "candidate": p.b, "reference": p.a,
                             "better_diff": d, "better_lo": lo, "better_hi": hi, "paired": p.as_dict(),
                             "items": p.n, "method": p.method, "alpha": alpha,
                             "power": _power(p, 0.0 if require_improvement else margin, alpha, harm)}
    extra = ""
    if verdict == "inconclusive" and d is not None:
        needed, how = _items_needed(p, d, threshold, alpha)
        check["items_needed"] = needed
        extra = f"; ~{needed} items would decide {how}" if needed is not None else f"; items needed unknown: {how}"
    better = "higher" if higher else "lower"
    reason = (f"{label} {'FAIL' if verdict == 'fail' else verdict}, {metric}{_f(p.b)} vs {what} {_f(p.a)} "
              f"({better} is better): change {_f(d, True)}, {pct}% CI [{_f(lo, True)}, {_f(hi, True)}] "
              f"({counts}; {p.method}, {p.test} p={_f(p.p_value)}); {tail}{extra}")
    return Verdict(label.rstrip(":"), verdict, reason, check)


def judge(label: str, what: str, cand: Values, ref: Values, *, margin: float, higher_is_better: bool,
          alpha: float, require_improvement: bool = False, margin_name: str = "margin", metric: str = "",
          harm: bool = False) -> Verdict:
    """Compare `cand` with `ref` (see the module docstring). `label` starts the reason
    ("capability:", "drift.honesty: step"), `what` names the reference ("teacher", "parent"), `metric`
    (optional) the metric before the values. `harm`: a harm rule (a drift budget), which fails only
    when the interval shows a loss past the margin and passes otherwise (never inconclusive)."""
    metric = f"{metric} " if metric else ""
    if isinstance(cand, Mapping) and isinstance(ref, Mapping):
        v = _paired(label, metric, what, cand, ref, margin, margin_name, higher_is_better, alpha, require_improvement,
                    harm)
        if v is not None:
            return v
    c, r = point(cand), point(ref)
    loss = (r - c) if higher_is_better else (c - r)
    ok = (-loss > TOL) if require_improvement else (loss <= margin + TOL)
    verdict = "pass" if ok else "fail"
    worse = "drop" if higher_is_better else "rise"
    rule = "> 0 (gate.require_improvement)" if require_improvement else f"{'<=' if ok else '>'} {margin_name} {_f(margin)}"
    reason = (f"{label} {'pass' if ok else 'FAIL'}, {metric}{worse} {_f(loss)} from {what} {_f(r)} to {_f(c)} {rule} "
              f"({POINT})")
    check = {"verdict": verdict, "passed": ok, "margin": margin, "direction": "higher" if higher_is_better else "lower",
             "candidate": c, "reference": r, "loss": loss, "evidence": POINT, "method": "point estimate",
             "rule": "harm" if harm else "non-inferiority", "items": None}
    return Verdict(label.rstrip(":"), verdict, reason, check)
