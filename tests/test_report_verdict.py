"""The verdict line: the deciding reason first, read from the gate's structured decision record (the
real `decide` on per-item values), never from its reason strings; and numbers rounded to their interval."""

from __future__ import annotations

from pipeline.gate import stage as gate
from pipeline.infra import numbers
from pipeline.report import verdict
from tests.support import GATE_METRIC as M, gate_config as cfg


IDS = [f"q{i}" for i in range(400)]
TEACHER = {M: {i: 1.0 for i in IDS}, "drift.refusal_harmful": {f"h{i}": 0.0 for i in range(400)},
           "drift.over_refusal_benign": {f"b{i}": 0.0 for i in range(400)}}
COLLAPSE = "answer collapse: 76 of 78 kept problems have the answer 2"


def record(candidate: dict, flags: list | None, **kw) -> dict:
    """decision.json as the gate stage writes it."""
    status, reasons, checks = gate.decide(cfg(**kw), candidate, TEACHER, TEACHER, flags)
    return {"status": status, "evidence": gate.evidence(checks), "reasons": reasons, "checks": checks}


def row(name: str, status: str) -> dict:
    return {"name": name, "gen": int(name[4:7]), "status": status, "parent": "gen_000",
            "seconds": {"train": 100.0, "eval": 50.0}}


def test_rejected_generation_says_the_deciding_rule_first():
    better_refusal = {**TEACHER, "drift.refusal_harmful": {f"h{i}": 1.0 for i in range(400)}}
    decision = record(better_refusal, [COLLAPSE])
    assert decision["status"] == "rejected"
    line = verdict.build(row("gen_001", "rejected"), decision).line()
    # the data check decided it: named first, though the gate lists it last among its reasons
    assert line.startswith(f"gen_001 rejected by synthesis: 1 red flag(s): {COLLAPSE} | ")
    assert decision["reasons"][-1].startswith("synthesis: FAIL")
    parts = line.split(verdict.SEP)
    assert parts[1] == f"{M} +0.0000 [-0.0095, +0.0095] vs teacher"  # two significant digits of the half-width
    assert parts[2] == "moved: drift.refusal_harmful +1.0000 [+0.9865, +1.0000]"  # significant vs the parent
    assert parts[3] == "wall 2.5 min"
    # capability deciding: its own change is the reason, not repeated after it
    worse = record({**TEACHER, M: {i: float(k >= 200) for k, i in enumerate(IDS)}}, [])
    line = verdict.build(row("gen_002", "rejected"), worse).line()
    assert line.startswith(f"gen_002 rejected by capability: {M}: fail, change -0.500 [-0.549, -0.450] vs teacher")
    assert line.count(M) == 1 and "moved: none" in line


def test_promoted_generation_and_the_v2_deciding_field():
    decision = record(TEACHER, [])
    assert decision["status"] == "promoted"
    v = verdict.build(row("gen_001", "promoted"), decision)
    assert v.line().startswith("gen_001 promoted: every rule passed | ")
    assert v.others == [r for r in decision["reasons"] if r]  # nothing folded away
    # decision.json v2 names its deciding rule itself: that is what the line says
    v2 = {**decision, "deciding": {"rule": "all", "metric": M, "reason": "all rules passed at alpha 0.05"}}
    assert verdict.build(row("gen_001", "promoted"), v2).line().startswith(
        "gen_001 promoted: all rules passed at alpha 0.05 | ")
    # promoted on inconclusive evidence: the inconclusive rule decided, and the gate's lines end with it
    few = [f"q{i}" for i in range(5)]
    small = {**TEACHER, M: {i: 1.0 for i in few}}
    d = {"status": "promoted", "evidence": "inconclusive", "reasons": [], "checks": {}}
    status, reasons, checks = gate.decide(cfg(on_inconclusive="promote"), small, {**TEACHER, M: {i: 1.0 for i in few}},
                                          TEACHER, [])
    d.update(status=status, evidence=gate.evidence(checks), reasons=reasons, checks=checks)
    v = verdict.build(row("gen_003", status), d)
    assert v.line().startswith(f"gen_003 promoted on inconclusive evidence: {M}: inconclusive, change +0.00 [")
    assert "inconclusive" in v.others[-1] and all("inconclusive" not in r for r in v.others[:-2])


def test_numbers_follow_the_interval():
    assert numbers.narrow(0.3158, 0.2103, 0.4571) == "0.32 [.21,.46]"
    assert numbers.narrow(0.3158, 0.3101, 0.3215) == "0.3158 [.3101,.3215]"
    assert numbers.narrow(-0.05, -0.12, 0.02) == "-0.050 [-.120,.020]"
    assert numbers.narrow(1175.3, 1000, 1300) == "1175 [1000,1300]"
    assert numbers.narrow(1.87e-7, 1.22e-7, 2.59e-7) == "1.87 [1.22,2.59]e-7"  # one exponent, not 7 zeros
    assert numbers.narrow(9.8e-5, 8.5e-5, 1.13e-4) == "0.98 [.85,1.13]e-4"
    assert numbers.wide(0.0, 0.0, 0.4899) == "0.00 [0.00, 0.49]"
    assert numbers.plain(1175.31) == "1175" and numbers.plain(0.000213) == "0.000213" and numbers.plain(2e-4) == "0.0002"
    assert numbers.plain(0.333333) == "0.333" and numbers.plain(12) == "12" and numbers.plain(None) == ""
    assert numbers.signed(-0.0213, 0.03) == "-0.021" and numbers.signed(0.0, 0.3) == "+0.00"
