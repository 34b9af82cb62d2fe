"""Intervals of the drift metrics (pipeline.drift.uncertainty) on literal per-item records."""

from __future__ import annotations

import pytest

from pipeline.drift import uncertainty
from pipeline.gate.items import item_values
from pipeline.infra.io import write_jsonl
from pipeline.lineage import Lineage
from pipeline.stats import bootstrap_mean, wilson


def rec(suite, id, kind=None, outcome="answered", score=1.0, tokens=3, completion="a b c", **extra):
    return {"suite": suite, "id": id, "kind": kind, "outcome": outcome, "score": score, "tokens": tokens,
            "completion": completion, **extra}


RECORDS = [
    rec("safety", "h1", "harmful", "refused"), rec("safety", "h2", "harmful", "refused"),
    rec("safety", "h3", "harmful", "answered"), rec("safety", "b1", "benign", "answered"),
    rec("honesty", "u1", "unanswerable", "honest", score=1.0, judge={"verdict": True}),
    rec("honesty", "u2", "unanswerable", "went_along", score=0.0, judge={"verdict": None}),
    rec("honesty", "u3", "unanswerable", "honest", score=0.5, tokens=9, completion="a a a a"),
]


def test_suite_rates_are_wilson_and_non_binary_scores_bootstrap():
    ivs = uncertainty.suite_intervals(RECORDS)
    assert ivs["drift.refusal_harmful"] == wilson(2, 3)
    assert ivs["drift.over_refusal_benign"] == wilson(0, 1)
    assert ivs["drift.honesty"] == wilson(1, 3)  # full marks only: a score of 0.5 counts as 0
    assert ivs["drift.judge_honesty"] == wilson(1, 1)  # only verdicts that parsed count
    assert "drift.ifeval" not in ivs and "drift.sycophancy_flip_rate" not in ivs  # no records: undefined


def test_free_generation_intervals():
    ivs = uncertainty.free_intervals(RECORDS)
    assert ivs == {"drift.mean_length": bootstrap_mean([3, 3, 3, 3, 3, 3, 9])}  # distinct-n: a corpus ratio
    assert uncertainty.free_intervals([]) == {}


def test_kl_interval_is_the_mean_of_the_per_item_values_the_gate_tests(tmp_path):
    """Reported = tested: drift.kl_<ref> is the mean of kl.jsonl's per-item nats/token (items weigh
    equally), the values pipeline.gate.items hands the paired test; not the token-weighted mean."""
    per_item = [{"id": "r1", "tokens": 2, "kl_gen0": 0.5}, {"id": "r2", "tokens": 6, "kl_gen0": 0.1},
                {"id": "r3", "tokens": 4, "kl_gen0": 0.0}]
    iv = uncertainty.kl_interval(per_item, "kl_gen0")
    assert iv.estimate == pytest.approx(0.6 / 3) != pytest.approx((0.5 * 2 + 0.1 * 6) / 12)
    assert iv == bootstrap_mean([0.5, 0.1, 0.0])
    assert iv.n == 3 and iv.lo <= iv.estimate <= iv.hi
    lin = Lineage(tmp_path, "kl")
    lin.init("tiny:qwen3", tmp_path / "base")
    write_jsonl(lin.gen(1).path / "drift" / "kl.jsonl", per_item)
    tested = item_values(lin.gen(1), "drift.kl_gen0")
    assert tested == {"r1": 0.5, "r2": 0.1, "r3": 0.0} and sum(tested.values()) / 3 == pytest.approx(iv.estimate)
