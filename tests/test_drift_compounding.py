"""Retention and projection math of the compounding view, on a hand-computed ledger table."""

from __future__ import annotations

import pytest

from pipeline.drift import compounding


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
