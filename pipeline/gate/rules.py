"""The gate's rules and its decision: a pure function over metric dicts (values: numbers or per-item
dicts id -> value), called by the stage (pipeline.gate.stage) and by the simulator
(pipeline.gate.simulate) alike.

    from pipeline.gate.rules import decide
    status, reasons, checks = decide(g, cand, teacher, gen0, red_flags=[], more=None)
    status, reasons, checks, deciding = decision(...)   # deciding: {"rule", "metric", "reason"}

What each rule must show:
- capability (pipeline.gate.looks): non-inferiority to the teacher within `gate.epsilon`, with nested
  looks while inconclusive; pass / fail / inconclusive;
- drift budgets: a harm rule per budget and reference (gen 0 with `total`, the parent with `step`):
  it fails only when its interval shows a loss past the budget, and passes otherwise (CPU suites of
  30-200 items cannot show non-inferiority, and requiring a dozen budgets to show it would reject
  nearly every candidate); at gate.alpha each;
- synthesis: no red flags.
Promotion needs every rule to pass: an intersection-union test. A false promotion needs every
rule's test to err, so each test at alpha already bounds its chance and no family correction is
added across rules (the decision says so). Only capability can be inconclusive; then the status is
`gate.on_inconclusive` (default keep_teacher: rejected).

`deciding`: for a rejection the first failing rule in the fixed order capability, budgets (config
order; total, then step), synthesis; for a promotion "all rules passed"; for a status resting on
on_inconclusive, the inconclusive capability rule.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.config import GateConfig
from pipeline.drift.metrics import identity_value
from pipeline.gate.evidence import Values, Verdict, judge
from pipeline.gate.looks import More, capability

Metrics = dict[str, Values]  # ledger key -> a number, or per-item values id -> number

FAMILY = ("intersection-union: promotion needs every rule to pass, and a false promotion needs every "
          "rule's test to err, so each test at its own alpha bounds the chance of one; no correction "
          "across rules. Capability's looks share its alpha by Bonferroni.")


def _budget(g: GateConfig, name: str, b, cand: Metrics, teacher: Metrics, gen0: Metrics
            ) -> tuple[list[Verdict], dict]:
    c = cand.get(name)
    if c is None:
        if gen0.get(name) is None and teacher.get(name) is None:
            # Not measurable for anyone (e.g. no sycophancy item answered correctly at gen 0): say so.
            return [Verdict(name, "pass", f"{name}: skipped, not measured for the candidate, its teacher or gen 0")], \
                {"direction": b.direction, "verdict": "pass", "passed": True, "skipped": "not measured"}
        return [Verdict(name, "fail", f"{name}: FAIL, the candidate has no value but its references do")], \
            {"direction": b.direction, "verdict": "fail", "passed": False}
    out, check = [], {"direction": b.direction}
    for kind, ref_name, ref, margin in (("total", "gen 0", gen0, b.total), ("step", "parent", teacher, b.step)):
        ref_value = ref.get(name)
        identity = identity_value(name) if kind == "step" else None
        if identity is not None:
            # a distance from the parent: the step is the candidate's own distance, judged against the
            # parent's distance from itself (KL 0, agreement 1), not the parent's from the grandparent
            ref_name = "the parent itself"
            ref_value = {i: identity for i in c} if isinstance(c, Mapping) else identity
        if ref_value is None:
            out.append(Verdict(f"{name}: {kind}", "pass", f"{name}: {kind} budget skipped, {ref_name} has no value"))
            check[kind] = {"verdict": "pass", "skipped": f"{ref_name} not measured"}
            continue
        v = judge(f"{name}: {kind}", ref_name, c, ref_value, margin=margin, higher_is_better=b.direction == "higher",
                  alpha=g.alpha, margin_name=f"{kind} budget", harm=True)
        v.check["against"] = ref_name  # gen 0, the parent, or the parent itself (a `*_parent` step)
        v.check["looks"] = ([{"n": v.check["items"], "alpha": g.alpha, "diff": v.check.get("better_diff"),
                              "lo": v.check.get("better_lo"), "hi": v.check.get("better_hi"),
                              "verdict": v.verdict}] if v.check.get("items") else [])
        out.append(v)
        check[kind] = v.check
    check["passed"] = all(v.verdict == "pass" for v in out)
    return out, check


def _red_flags(g: GateConfig, flags: list | None) -> tuple[bool, str, dict]:
    if flags is None:
        if g.require_synth_stats:
            return False, "synthesis: FAIL, no red-flag record (synth/stats.json with a red_flags list)", \
                {"flags": None, "passed": False}
        return True, "synthesis: pass, no red-flag record (gate.require_synth_stats is false)", \
            {"flags": None, "passed": True}
    if flags:
        return False, f"synthesis: FAIL, {len(flags)} red flag(s): " + "; ".join(map(str, flags)), \
            {"flags": list(flags), "passed": False}
    return True, "synthesis: pass, no red flags", {"flags": [], "passed": True}


def _metric(v: Verdict, g: GateConfig) -> str:
    return g.metric if v.label == "capability" else v.label.split(":", 1)[0]


def decide(g: GateConfig, candidate: Metrics, teacher: Metrics, gen0: Metrics,
           red_flags: list | None, more: More | None = None) -> tuple[str, list[str], dict]:
    """(status, reasons, checks): `promoted` when every rule passes, or when none fails and
    `gate.on_inconclusive` is `promote`. `red_flags` is the synth stage's list (None when it left no
    record); `more(n)`: capability values on the first n validation items, for further looks (None:
    decide on the items given)."""
    return decision(g, candidate, teacher, gen0, red_flags, more)[:3]


def decision(g: GateConfig, candidate: Metrics, teacher: Metrics, gen0: Metrics, red_flags: list | None,
             more: More | None = None) -> tuple[str, list[str], dict, dict]:
    """`decide`'s (status, reasons, checks) and `deciding` {rule, metric, reason} (module docstring)."""
    verdicts = [capability(g, candidate.get(g.metric), teacher.get(g.metric), more)]
    cap = verdicts[0].check
    budgets = {}
    for key, b in g.budgets.items():
        name = f"drift.{key}"
        vs, budgets[name] = _budget(g, name, b, candidate, teacher, gen0)
        verdicts += vs
    ok_flags, why_flags, flags = _red_flags(g, red_flags)
    reasons = [v.reason for v in verdicts] + [why_flags]
    checks = {"capability": cap, "budgets": budgets, "red_flags": flags}
    failing = [v for v in verdicts if v.verdict == "fail"]
    if failing or not ok_flags:
        first = failing[0] if failing else None
        deciding = ({"rule": first.label, "metric": _metric(first, g), "reason": first.reason} if first else
                    {"rule": "synthesis", "metric": "synth.red_flags", "reason": why_flags})
        return "rejected", reasons, checks, deciding
    if all(v.verdict == "pass" for v in verdicts):
        deciding = {"rule": "all rules passed", "metric": g.metric,
                    "reason": f"all {len(verdicts) + 1} checks passed ({FAMILY.split(':')[0]})"}
        return "promoted", reasons, checks, deciding
    undecided = [v for v in verdicts if v.verdict == "inconclusive"]
    status = "promoted" if g.on_inconclusive == "promote" else "rejected"
    why = (f"gate: {status} on inconclusive evidence (gate.on_inconclusive={g.on_inconclusive}): "
           f"{', '.join(v.label for v in undecided)} could not be decided at alpha {g.alpha}")
    reasons.append(why)
    return status, reasons, checks, {"rule": undecided[0].label, "metric": _metric(undecided[0], g), "reason": why}


def evidence(checks: dict) -> str:
    """What decision.json records: `inconclusive` when the status rests on `gate.on_inconclusive`
    (no rule failed, some comparison could not be decided), else `decisive`."""
    budgets = checks["budgets"].values()
    verdicts = [checks["capability"]["verdict"], *(b["verdict"] for b in budgets if "verdict" in b),
                *(b[k]["verdict"] for b in budgets for k in ("total", "step") if k in b)]
    if "fail" in verdicts or not checks["red_flags"]["passed"]:
        return "decisive"
    return "inconclusive" if "inconclusive" in verdicts else "decisive"
