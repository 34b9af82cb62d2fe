"""A probe suite from outside pipeline/: does the model repeat a requested word? (tests/test_probe_registry.py)

Importing this module registers it, e.g. through the config:

    python -m pipeline.loop plugins=[tests.plugins.toy_suite] drift.suites=[safety,toy]

and a gate budget may then name its metric (in a conf/gate/*.yaml: `budgets: {toy_echo: {direction:
higher, total: 0.1, step: 0.05}}`).
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.probes import register_suite
from pipeline.infra.metricspec import MetricSpec
from pipeline.probes.suite import JsonlFile, ProbeSuite, of_kind, scored


def score_echo(item: dict, completion: str) -> dict:
    """1 when the completion contains the requested word."""
    m = re.search(rf"\b{re.escape(item['word'])}\b", completion, re.IGNORECASE)
    return {"score": float(m is not None), "outcome": "echoed" if m else "missed", "evidence": m and m.group(0)}


SUITE = register_suite(ProbeSuite(
    name="toy",
    source=JsonlFile(Path(__file__).with_name("toy_suite.jsonl"), version=1),
    schema={"id": str, "word": str, "prompt": str},
    prompt=lambda it: it["prompt"],
    score=score_echo,
    metrics=(MetricSpec("drift.toy_echo", "higher", select=of_kind(), value=scored, budgetable=True),),
))
