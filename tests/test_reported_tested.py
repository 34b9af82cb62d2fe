"""Reported = tested: a probe rate over items each model's own outputs select (sycophancy flips among
correct first answers) is tested as the rate the table shows, on every item of the suite."""

from __future__ import annotations

import pytest

from pipeline import stats
from pipeline.gate.evidence import judge
from pipeline.gate.items import counted_values
from pipeline.infra.io import write_jsonl
from pipeline.lineage import Lineage

FLIP, VAL = "drift.sycophancy_flip_rate", "gsm8k_val.accuracy_flexible"


def _records(outcomes: str) -> list[dict]:
    """h: held, f: flipped, w: wrong first answer (no pushback, not counted)."""
    word = {"h": "held", "f": "flipped", "w": "wrong_first"}
    return [{"suite": "sycophancy", "id": f"syc-{i:03d}", "outcome": word[o]} for i, o in enumerate(outcomes)]


def test_paired_ratio_is_the_difference_of_the_reported_rates():
    a = {"1": (1.0, 1), "2": (0.0, 1), "3": (0.0, 0), "4": (0.0, 1)}  # 1 flip of 3 counted
    b = {"1": (1.0, 1), "2": (0.0, 0), "3": (1.0, 1), "4": (1.0, 1)}  # 3 flips of 3 counted
    p = stats.paired_ratio(a, b, n_boot=500)
    assert (p.n, p.a, p.b, p.diff) == (4, pytest.approx(1 / 3), 1.0, pytest.approx(2 / 3))
    assert p.method == stats.paired.RATIO_METHOD
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


def _with_candidates(root, name: str, gen1: dict[str, list[int]], selected: str | None) -> Lineage:
    """gen 0 (10 items, 2 right) and a gen 1 with candidates `gen1` (name -> outcomes), `selected` chosen."""
    lin = Lineage(root, name)
    lin.init("tiny:qwen3", root / "base")
    write_jsonl(lin.gen(0).path / "eval" / "gsm8k_val.jsonl",
                [{"id": f"q{i}", "metrics": {"accuracy_flexible": float(i < 2)}} for i in range(10)])
    lin.record(lin.gen(0), status="promoted", metrics={VAL: 0.2, f"{VAL}_lo": 0.05, f"{VAL}_hi": 0.5})
    for c, out in gen1.items():
        cand = lin.gen_by_name(f"gen_001-{c}")
        write_jsonl(cand.path / "eval" / "gsm8k_val.jsonl",
                    [{"id": f"q{i}", "metrics": {"accuracy_flexible": float(v)}} for i, v in enumerate(out)])
        lin.record(cand, status="promoted" if cand.name == selected else "rejected", parent="gen_000",
                   metrics={VAL: sum(out) / len(out), f"{VAL}_lo": 0.0, f"{VAL}_hi": 1.0})
    lin.record(lin.gen(1), status="promoted" if selected else "rejected", parent="gen_000", selected=selected,
               metrics={"synth.rows": 8})
    return lin


def test_candidates_reach_the_lineage_tensorboard_run(tmp_path):
    from pipeline.report import tensorboard

    lin = _with_candidates(tmp_path, "lin", {"c0": [1] * 3 + [0] * 7, "c1": [1] * 6 + [0] * 4}, "gen_001-c1")
    data = tensorboard.scalars(lin.rows())
    assert data[f"eval/{VAL}"] == [(0, 0.2), (1, 0.6)]  # the generation is its selected candidate
    assert data["synth/synth.rows"] == [(1, 8.0)] and data["status/promoted"] == [(0, 1.0), (1, 1.0)]
    assert data[f"candidates/c0/eval/{VAL}"] == [(1, 0.3)] and data[f"candidates/c1/eval/{VAL}"] == [(1, 0.6)]
    assert data[f"candidates/c0/eval/{VAL}/ci_hi"] == [(1, 1.0)] and data["candidates/c0/status/promoted"] == [(1, 0.0)]
    assert "c0/eval/" + VAL in tensorboard.layout(data)["candidates"]


def test_compare_reads_the_selected_candidates_of_a_generation(tmp_path):
    from pipeline.report import compare

    a = _with_candidates(tmp_path, "a-s0", {"c0": [1] * 2 + [0] * 8, "c1": [1] * 3 + [0] * 7}, "gen_001-c1")
    b = _with_candidates(tmp_path, "b-s0", {"j0": [1] * 8 + [0] * 2}, "gen_001-j0")
    data = compare.compare([a.path, b.path], metrics=[VAL])
    mean = {(r["arm"], r["gen"]): r["mean"] for r in data["means"]}
    assert mean[("a", 1)] == pytest.approx(0.3) and mean[("b", 1)] == pytest.approx(0.8)
    d = next(x for x in data["differences"] if x["gen"] == 1)
    assert (d["n"], d["diff"], d["only_b"], d["only_a"]) == (10, pytest.approx(0.5), 5, 0)  # from c1's and j0's records


def test_html_retention_view_and_alignment_plot_carry_intervals(tmp_path):
    from pipeline.report import text
    from pipeline.report.html.page import render_lineage

    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    for g, right in ((0, 16), (1, 12)):  # honesty 0.8 then 0.6 on the same 20 items
        write_jsonl(lin.gen(g).path / "drift" / "probes.jsonl",
                    [{"suite": "honesty", "id": f"h{i}", "kind": "false_premise", "score": float(i < right),
                      "outcome": "honest"} for i in range(20)])
        lin.record(lin.gen(g), status="promoted", parent=None if g == 0 else "gen_000",
                   metrics={"drift.honesty": right / 20})
    page = render_lineage(lin.path, text.html_table())
    retention = page[page.index("Retention (compounding view)"):]
    assert "75.0% [52.9, 94.1]" in retention and "95% intervals" in retention  # 0.6 / 0.8, bootstrap interval
    assert "95% interval" in page[page.index("alignment_honesty"):]  # the projection's band in the plot legend
