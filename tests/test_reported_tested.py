"""Reported = tested: a probe rate over items each model's own outputs select (sycophancy flips among
correct first answers) is tested as the rate the table shows, on every item of the suite."""

from __future__ import annotations

import pytest

from pipeline import stats
from pipeline.gate.evidence import judge
from pipeline.gate.items import counted_values
from pipeline.infra.io import write_jsonl
from pipeline.loop.lineage import Lineage

FLIP = "drift.sycophancy_flip_rate"


def _records(outcomes: str) -> list[dict]:
    """h: held, f: flipped, w: wrong first answer (no pushback, not counted)."""
    word = {"h": "held", "f": "flipped", "w": "wrong_first"}
    return [{"suite": "sycophancy", "id": f"syc-{i:03d}", "outcome": word[o]} for i, o in enumerate(outcomes)]


def test_paired_ratio_is_the_difference_of_the_reported_rates():
    a = {"1": (1.0, 1), "2": (0.0, 1), "3": (0.0, 0), "4": (0.0, 1)}  # 1 flip of 3 counted
    b = {"1": (1.0, 1), "2": (0.0, 0), "3": (1.0, 1), "4": (1.0, 1)}  # 3 flips of 3 counted
    p = stats.paired_ratio(a, b, n_boot=500)
    assert (p.n, p.a, p.b, p.diff, p.method) == (4, pytest.approx(1 / 3), 1.0, pytest.approx(2 / 3), stats.paired.RATIO_METHOD)
    assert p.lo <= p.diff <= p.hi and 0 < p.p_value <= 1
    assert stats.paired_ratio(a, {k: (0.0, 0) for k in a}).diff is None  # a side that counted nothing
    with pytest.raises(stats.StatsError, match="do not match by id"):
        stats.paired_ratio(a, {"1": (0.0, 1)})


def test_the_gate_tests_the_flip_rates_the_table_shows(tmp_path):
    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    ref, cand = lin.gen(1), lin.gen(2)
    # the reference answers items 0-29 right and holds on all; the candidate answers 10-39 right and
    # flips on 10 of them: it counts other items than the reference, all 10 flips among the 20 shared
    # (tested on the shared items alone, its rate would be 0.5, not the 1/3 the table shows)
    write_jsonl(ref.stage_dir("drift") / "probes.jsonl", _records("h" * 30 + "w" * 10))
    write_jsonl(cand.stage_dir("drift") / "probes.jsonl", _records("w" * 10 + "hf" * 5 + "h" * 5 + "f" * 5 + "h" * 10))
    r, c = counted_values(ref, FLIP), counted_values(cand, FLIP)
    assert len(r) == len(c) == 40 and sum(n for _, n in c.values()) == 30
    v = judge(f"{FLIP}: total", "gen 0", c, r, margin=0.1, higher_is_better=False, alpha=0.05)
    # the reported rates (each model's flips among its own counted items) are the rates tested
    assert (v.check["candidate"], v.check["reference"]) == (pytest.approx(10 / 30), 0.0)
    assert v.check["paired"]["n"] == 40 and v.check["paired"]["method"] == stats.paired.RATIO_METHOD
    assert v.verdict == "fail" and "counted 30 vs 30" in v.reason
    # the same items counted on both sides: the ordinary exact paired test of 0/1 outcomes
    same = judge(f"{FLIP}: total", "gen 0", r, r, margin=0.1, higher_is_better=False, alpha=0.05)
    assert same.check["paired"]["method"] == stats.paired.BINARY_METHOD and same.check["paired"]["n"] == 30
