"""Probe suite `ifeval`: prompts with constraints checkable by code (pipeline.probes.scoring.CHECKS);
prompt-level strict score, and the instruction-level pass rate in the summary counts.

    python -m pipeline.probes --list     # its version, item counts and metrics
"""

from __future__ import annotations

from pipeline.probes.scoring import check_ifeval_item, score_ifeval
from pipeline.probes.suite import Metric, Packaged, ProbeSuite, of_kind, scored


def _counts(recs: list[dict]) -> dict:
    checks = [p for r in recs for p in r["evidence"]["passed"]]
    return {"ifeval": len(recs), "ifeval_instruction_level": sum(checks) / len(checks) if checks else None}


SUITE = ProbeSuite(
    name="ifeval",
    source=Packaged("ifeval"),
    schema={"id": str, "prompt": str, "checks": list},
    check_item=check_ifeval_item,
    prompt=lambda it: it["prompt"],
    score=score_ifeval,
    metrics=(Metric("drift.ifeval", "higher", of_kind(), scored),),
    summary_counts=_counts,
)
