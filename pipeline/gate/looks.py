"""The capability check: non-inferiority to the teacher, with nested looks while inconclusive.

    from pipeline.gate.looks import capability
    v = capability(g, cand_items, teacher_items, more=lambda n: (cand_n, teacher_n))  # v.check["looks"]

Non-inferiority: the paired (1 - alpha') interval of candidate minus teacher (pipeline.gate.evidence)
passes when its lower bound is above -`gate.epsilon` (the margin, set per profile) and fails when its
upper bound is below it. While inconclusive, the check looks again at the pre-registered sizes
`gate.looks` (e.g. 50/100/200/400; the first is the eval's own n), up to the last one, the cap.
`more(n)` returns both sides' values on the first n items of the validation slice's one fixed
permutation (pipeline.infra.slices.nested_subset), so every look is a superset of the one before and
items already scored are reused, never re-drawn. The error rate is held across looks by Bonferroni:
every look uses alpha' = gate.alpha / len(gate.looks), the number planned, however many are taken.
Futility (non-binding, so it needs no alpha): at an interim look, a candidate whose interval lies
below 0 (shown worse than the teacher) stops and fails; passing later would need the estimate to
climb back past the margin, and stopping early can only lower the chance of a false promotion.
Still inconclusive at the cap: the verdict is `inconclusive` (the gate applies gate.on_inconclusive).

`more` is None when no further items can be scored (a simulated table, a unit test): the check then
decides on the items it has, at alpha'. The stage's `more` scores new items (pipeline.gate.stage);
`pipeline.gate.simulate` slices simulated outcomes: both call this one function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.config import GateConfig
from pipeline.gate.evidence import Values, Verdict, judge

More = Callable[[int], tuple[Mapping[str, float], Mapping[str, float]]]


def look_alpha(g: GateConfig) -> float:
    """The nominal alpha of every look: gate.alpha split evenly over the planned looks (Bonferroni)."""
    return g.alpha / max(1, len(g.looks))


def _look(v: Verdict, alpha: float) -> dict[str, Any]:
    c = v.check
    return {"n": c.get("items"), "alpha": alpha, "diff": c.get("better_diff"), "lo": c.get("better_lo"),
            "hi": c.get("better_hi"), "verdict": c["verdict"]}


def _judge(g: GateConfig, cand: Values, teacher: Values, alpha: float) -> Verdict:
    return judge("capability:", "teacher", cand, teacher, margin=g.epsilon, higher_is_better=True, alpha=alpha,
                 require_improvement=g.require_improvement, margin_name="epsilon", metric=g.metric)


def capability(g: GateConfig, cand: Values | None, teacher: Values | None, more: More | None = None) -> Verdict:
    """The capability verdict on `gate.metric` (module docstring); `check` holds the margin, the
    looks (n, nominal alpha, interval, verdict), the items used, the method and what it could detect."""
    if cand is None or teacher is None:
        who = "candidate" if cand is None else "teacher"
        return Verdict("capability", "fail", f"capability: FAIL, the {who} has no {g.metric} (did its eval stage run "
                       "that task?)", {"metric": g.metric, "verdict": "fail", "passed": False, "margin": g.epsilon,
                                       "looks": [], "items": 0, "method": None})
    alpha = look_alpha(g)
    per_item = isinstance(cand, Mapping) and isinstance(teacher, Mapping)
    n0 = len(set(cand) & set(teacher)) if per_item else 0
    sizes = [n0, *(n for n in g.looks if n > n0)] if per_item and more is not None else [n0]
    looks: list[dict] = []
    stopped = "cap"
    v = _judge(g, cand, teacher, alpha)
    for i, size in enumerate(sizes):
        if i:
            cand, teacher = more(size)
            if len(set(cand) & set(teacher)) <= looks[-1]["n"]:
                stopped = "no further validation items"  # the slice is exhausted before the cap
                break
            v = _judge(g, cand, teacher, alpha)
        if v.check.get("items") is None:  # point estimates: one comparison, no looks
            stopped = "point estimate"
            break
        looks.append(_look(v, alpha))
        if v.verdict != "inconclusive":
            stopped = v.verdict
            break
        hi = v.check.get("better_hi")
        if i < len(sizes) - 1 and hi is not None and hi < 0:
            stopped = "futility"
            v.verdict = "fail"
            v.check.update(verdict="fail", passed=False)
            v.reason = (v.reason.replace("capability: inconclusive", "capability: FAIL (futility stop)", 1)
                        + f"; futility: at look {i + 1} the interval lies below 0 (shown worse than the teacher), "
                        "so the looks stop (non-binding)")
            break
    planned = list(g.looks) or [n0]
    if v.verdict == "inconclusive" and looks:
        v.reason += (f"; still inconclusive after {len(looks)} look(s) of {len(planned)} planned "
                     f"({'/'.join(map(str, planned))}), {looks[-1]['n']} item(s) ({stopped})")
    elif len(looks) > 1 or len(planned) > 1:
        v.reason += f"; look {len(looks)} of {len(planned)} planned ({'/'.join(map(str, planned))})"
    if len(planned) > 1 and looks:
        v.reason += f", Bonferroni alpha {alpha:.4g} per look"
    v.check.update(metric=g.metric, margin=g.epsilon, looks=looks, planned_looks=planned, alpha_per_look=alpha,
                   stopped=stopped, items=looks[-1]["n"] if looks else v.check.get("items"))
    return v
