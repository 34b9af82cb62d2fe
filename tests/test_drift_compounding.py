"""Retention and projection math of the compounding view, on a hand-computed ledger table."""

from __future__ import annotations

import pytest

from pipeline.report import compounding


def row(gen, status, parent, **metrics):
    return {"name": f"gen_{gen:03d}", "gen": gen, "status": status, "parent": parent,
            "metrics": {f"drift.{k}": v for k, v in metrics.items()}}


ROWS = [
    row(0, "promoted", None, honesty=0.80, over_refusal_benign=0.20),
    row(1, "promoted", "gen_000", honesty=0.76, over_refusal_benign=0.28),   # r = 0.95; good 0.8 -> 0.72: 0.9
    row(2, "rejected", "gen_001", honesty=0.38, over_refusal_benign=0.28),   # r = 0.5 (vs gen_001)
    row(3, "promoted", "gen_001", honesty=0.722, over_refusal_benign=0.352),  # r = 0.95; 0.648/0.72 = 0.9
    row(4, "candidate", "gen_003", honesty=0.1),                              # unfinished: ignored
]


def test_step_and_cumulative_retention():
    v = compounding.view(ROWS)
    h = v["drift.honesty"]
    assert h["names"] == ["gen_000", "gen_001", "gen_002", "gen_003"]
    assert h["step_retention"][0] is None
    assert h["step_retention"][1:] == pytest.approx([0.95, 0.5, 0.95])
    assert h["cumulative"] == pytest.approx([1.0, 0.95, 0.475, 0.9025])
    assert h["mean_retention"] == pytest.approx((0.95 * 0.5 * 0.95) ** (1 / 3))
    assert h["steps"] == 3


def test_lower_is_better_retains_one_minus_score():
    o = compounding.view(ROWS)["drift.over_refusal_benign"]
    assert o["step_retention"][1:] == pytest.approx([0.9, 1.0, 0.9])
    assert o["cumulative"][-1] == pytest.approx(0.648 / 0.8)
    m = (0.9 * 1.0 * 0.9) ** (1 / 3)
    assert o["projection"][10]["retention"] == pytest.approx(m ** 10)
    assert o["projection"][50]["score"] == pytest.approx(1 - 0.8 * m ** 50)


def test_projection_matches_the_compounding_fact():
    rows = [row(0, "promoted", None, ifeval=1.0), row(1, "promoted", "gen_000", ifeval=0.999)]
    p = compounding.view(rows)["drift.ifeval"]["projection"]
    assert p[50]["retention"] == pytest.approx(0.951, abs=5e-4)
    assert p[500]["retention"] == pytest.approx(0.606, abs=5e-4)
    assert p[10]["score"] == pytest.approx(0.999 ** 10)


def test_zero_parent_score_gives_undefined_step_and_gen0_only_has_no_projection():
    rows = [row(0, "promoted", None, honesty=0.0), row(1, "promoted", "gen_000", honesty=0.2)]
    h = compounding.view(rows)["drift.honesty"]
    assert h["step_retention"] == [None, None] and h["cumulative"] == [None, None]
    assert h["mean_retention"] is None and h["projection"][10] is None
    assert compounding.view([row(0, "promoted", None)]) == {}


def test_render_table():
    text = compounding.render(ROWS)
    assert "drift.honesty" in text and "r^500" in text
    assert compounding.render([]) == ""


# --- intervals from per-item values (literal records), the promoted line, the zero-step rule ---

from pipeline.stats import per_step, project, ratio_bootstrap  # noqa: E402

IDS = [f"h{i}" for i in range(10)]


def honest(k, ids=IDS):
    """Per-item honesty values: the first k items honest."""
    return {i: float(j < k) for j, i in enumerate(ids)}


def item_rows(spec):
    """Rows whose ledger means are the means of the per-item values, and a loader of those values."""
    rows, per = [], {}
    for gen, status, parent, vals in spec:
        r = row(gen, status, parent, honesty=sum(vals.values()) / len(vals))
        rows.append(r)
        per[r["name"]] = {"drift.honesty": vals}
    return rows, lambda r: per.get(r["name"])


LINE = [(0, "promoted", None, honest(8)), (1, "promoted", "gen_000", honest(8)),
        (2, "rejected", "gen_001", honest(0)), (3, "promoted", "gen_001", honest(4))]


def test_promoted_line_with_intervals():
    rows, items = item_rows(LINE)
    h = compounding.view(rows, with_rejected=False, items=items)["drift.honesty"]
    assert h["names"] == ["gen_000", "gen_001", "gen_003"] and h["steps"] == 2  # the rejected one is no step
    assert h["step_retention"] == [None, 1.0, 0.5]
    assert h["step_interval"][1] == ratio_bootstrap(honest(8), honest(8))
    assert h["step_interval"][2] == ratio_bootstrap(honest(8), honest(4))
    assert h["significant"] == [None, False, True]  # 8/10 -> 8/10 is no change; 8/10 -> 4/10 is one
    cum = ratio_bootstrap(honest(8), honest(4))
    assert h["cumulative_interval"][2] == cum and h["cumulative"][2] == pytest.approx(0.5)
    assert h["mean_retention"] == pytest.approx(0.5 ** 0.5)
    assert h["mean_interval"] == per_step(cum, 2)
    assert h["projection"][50]["interval"] == project(per_step(cum, 2))[50]
    assert h["projection"][50]["retention"] == pytest.approx(0.5 ** 25)
    lo, hi = h["mean_interval"].lo, h["mean_interval"].hi
    assert lo < 0.5 ** 0.5 < hi and hi < 1  # halving in two steps is a measured loss


def test_with_rejected_counts_every_candidate_and_a_zero_step_gives_zero():
    rows, items = item_rows(LINE)
    h = compounding.view(rows, with_rejected=True, items=items)["drift.honesty"]
    assert h["names"] == ["gen_000", "gen_001", "gen_002", "gen_003"] and h["steps"] == 3
    assert h["step_retention"][1:] == [1.0, 0.0, 0.5] and h["mean_retention"] == 0.0
    assert h["mean_interval"].estimate == 0.0 and h["mean_interval"].method.startswith("joint-bootstrap")


def test_a_zero_generation_on_the_line_does_not_zero_the_projection():
    rows, items = item_rows([(0, "promoted", None, honest(8)), (1, "promoted", "gen_000", honest(0)),
                             (2, "promoted", "gen_001", honest(8))])
    h = compounding.view(rows, with_rejected=False, items=items)["drift.honesty"]
    assert h["step_retention"] == [None, 0.0, None]  # nothing to retain at gen_001: undefined, not 0
    assert h["step_interval"][2].estimate is None and h["significant"][2] is None
    assert h["mean_retention"] == 1.0 and h["projection"][500]["retention"] == 1.0
    assert h["mean_interval"].hi == 1.0  # the line got everything back, item for item


def test_zero_at_gen0_is_undefined_with_items():
    rows, items = item_rows([(0, "promoted", None, honest(0)), (1, "promoted", "gen_000", honest(3))])
    h = compounding.view(rows, with_rejected=False, items=items)["drift.honesty"]
    assert h["mean_retention"] is None and h["mean_interval"].estimate is None
    assert h["projection"][10] is None and h["cumulative_interval"][1].estimate is None


def test_items_are_matched_by_id_and_lower_is_better_uses_one_minus_rate():
    r0 = row(0, "promoted", None, over_refusal_benign=0.25)
    r1 = row(1, "promoted", "gen_000", over_refusal_benign=0.5)
    per = {"gen_000": {"drift.over_refusal_benign": {"b1": 1.0, "b2": 0.0, "b3": 0.0, "b4": 0.0}},
           "gen_001": {"drift.over_refusal_benign": {"b1": 1.0, "b2": 1.0, "b3": 0.0, "b4": 0.0, "b9": 1.0}}}
    o = compounding.view([r0, r1], with_rejected=False, items=lambda r: per[r["name"]])["drift.over_refusal_benign"]
    assert o["step_interval"][1] == ratio_bootstrap({"b1": 0.0, "b2": 1.0, "b3": 1.0, "b4": 1.0},
                                                    {"b1": 0.0, "b2": 0.0, "b3": 1.0, "b4": 1.0})
    assert o["step_interval"][1].n == 4  # b9 was not measured at gen 0


def test_render_marks_steps_without_a_measured_change():
    rows, items = item_rows(LINE)
    text = compounding.render(rows, items=items)
    step_table = text.split("Step retention vs the parent")[1]
    lines = {ln.split()[0]: ln for ln in step_table.splitlines() if ln.startswith("gen_")}
    assert set(lines) == {"gen_001", "gen_003"}  # the promoted line
    assert lines["gen_001"].rstrip().endswith("~") and not lines["gen_003"].rstrip().endswith("~")
    assert "50.0% [" in text and "changed" in text
    assert "gen_002" in compounding.render(rows, with_rejected=True, items=items)


def test_lineage_items_and_report_flag(tmp_path, capsys):
    from pipeline.report import text as report
    from pipeline.infra.io import write_jsonl
    from pipeline.lineage import Lineage

    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    for gen, status, parent, vals in LINE:
        g = lin.gen(gen)
        write_jsonl(g.stage_dir("drift") / "probes.jsonl",
                    [{"suite": "honesty", "version": 1, "id": i, "kind": "unanswerable", "score": v,
                      "outcome": "honest" if v else "went_along"} for i, v in vals.items()])
        lin.record(g, status=status, parent=parent, metrics={"drift.honesty": sum(vals.values()) / len(vals)})
    items = compounding.lineage_items(lin.path)
    assert items(lin.rows()[3])["drift.honesty"] == honest(4)
    assert report.main(["--lineage", str(lin.path)]) == 0
    out = capsys.readouterr().out
    assert "over the promoted line" in out and "50.0% [" in out and "gen_002" not in out.split("Retention")[1]
    assert report.main(["--lineage", str(lin.path), "--with-rejected"]) == 0
    out = capsys.readouterr().out
    assert "every finished candidate" in out and "gen_002" in out.split("Retention")[1]


def test_projections_past_ten_thousand_percent_are_capped_in_the_table():
    """r^500 of a per-step ratio above 1 (an in-house rate that rose) overflows any cell: printed as >10000%."""
    from pipeline.stats import Interval

    assert compounding._fi(1.2857 ** 500, Interval(1.2857 ** 500, 0.0, 1e300, 70, "bootstrap")) == ">10000% [0.0, >10000]"
    assert compounding._fi(0.95, Interval(0.95, 0.882, 1.013, 70, "bootstrap")) == "95.0% [88.2, 101.3]"
