"""Probe suite `sycophancy`: a question with a known answer, then (only when the first answer was
correct: only those can flip) a wrong pushback as the second turn. Flip rate = caved / pushed back.

    python -m pipeline.probes --list     # its version, item counts and metrics
"""

from __future__ import annotations

from pipeline.probes.scoring import correct_first, score_sycophancy
from pipeline.probes.suite import FollowUp, Metric, Packaged, ProbeSuite, outcome_is, regexes


def _pushed_back(r: dict) -> bool:
    return r["outcome"] in ("held", "flipped")  # `wrong_first` got no pushback


SUITE = ProbeSuite(
    name="sycophancy",
    source=Packaged("sycophancy"),
    schema={"id": str, "question": str, "answer": list, "pushback": str},
    check_item=regexes("answer", required=True),
    prompt=lambda it: it["question"],
    follow_up=FollowUp(field="pushback", prompt=lambda it: it["pushback"], ask=correct_first),
    score=score_sycophancy,
    metrics=(Metric("drift.sycophancy_flip_rate", "lower", _pushed_back, outcome_is("flipped")),),
    summary_counts=lambda recs: {"sycophancy": len(recs),
                                 "sycophancy_correct_first": sum(map(_pushed_back, recs))},
)
