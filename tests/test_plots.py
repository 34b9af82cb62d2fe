"""Plots are written from ledger rows: files exist, are PNGs, and are skipped when there is no data."""

from __future__ import annotations

import pytest

from pipeline.report import plots, text as report


def _rows():
    rows = []
    for g, (acc, hon, kl) in enumerate([(0.30, 0.80, 0.0), (0.34, 0.76, 0.05), (0.36, 0.74, 0.09)]):
        rows.append({"name": f"gen_{g:03d}", "gen": g, "status": "rejected" if g == 1 else "promoted",
                     "parent": None if g == 0 else "gen_000",
                     "metrics": {"gsm8k_val.accuracy_flexible": acc, "gsm8k_test.accuracy_flexible": acc - 0.02,
                                 "humaneval.pass@1": acc / 2, "drift.honesty": hon, "drift.ifeval": 0.5,
                                 "drift.kl_gen0": kl, "drift.kl_parent": kl / 2, "drift.distinct_2": 0.6 - kl}})
    return rows


def test_write_all_writes_non_empty_pngs(tmp_path):
    files = plots.write_all(_rows(), tmp_path / "p")
    names = sorted(f.name for f in files)
    assert names == ["alignment_honesty.png", "alignment_ifeval.png", "capability.png", "diversity.png", "kl.png"]
    for f in files:
        data = f.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_gen0_only_and_empty(tmp_path):
    assert plots.write_all([], tmp_path / "empty") == []
    files = plots.write_all(_rows()[:1], tmp_path / "one")
    assert "alignment_honesty.png" in [f.name for f in files]  # the "no retention yet" panel


def test_report_cli_writes_plots_and_retention(tmp_path, capsys):
    from pipeline.lineage import Lineage

    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    for r in _rows():
        lin.record(lin.gen(r["gen"]), status=r["status"], parent=r["parent"], metrics=r["metrics"])
    assert report.main(["--lineage", str(lin.path), "--plots", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "drift.honesty" in out and "r^500" in out
    assert (tmp_path / "plots" / "kl.png").stat().st_size > 0


def test_error_bars_from_intervals_and_retention_bands(tmp_path):
    rows = _rows()
    for r in rows:
        m = r["metrics"]
        for k in ("gsm8k_val.accuracy_flexible", "drift.honesty", "drift.kl_gen0"):
            m |= {f"{k}_lo": max(0.0, m[k] - 0.05), f"{k}_hi": m[k] + 0.05, f"{k}_n": 20}
    per = {r["name"]: {"drift.honesty": {f"h{i}": float(i < round(20 * r["metrics"]["drift.honesty"]))
                                         for i in range(20)}} for r in rows}
    pts = plots._series(rows, "drift.honesty")
    assert pts[0][3:] == pytest.approx((0.75, 0.85))  # (lo, hi) of gen 0 ride with the point
    files = plots.write_all(rows, tmp_path / "p", items=lambda r: per[r["name"]])
    assert sorted(f.name for f in files) == ["alignment_honesty.png", "alignment_ifeval.png", "capability.png",
                                             "diversity.png", "kl.png"]
    fig_keys = {k for r in rows for k in plots.points(r["metrics"])}
    assert "gsm8k_val.accuracy_flexible_lo" not in fig_keys  # an interval is never its own line
    assert plots.write_all(rows, tmp_path / "q", with_rejected=True, items=lambda r: per[r["name"]])


def test_retention_panel_says_why_it_projects_nothing():
    """Three generations with gen 0's refusal rate at 0: nothing to retain, not "no generation yet"."""
    from pipeline.report.compounding import view

    rows = [{"name": f"gen_00{i}", "gen": i, "status": "promoted", "parent": f"gen_00{i - 1}" if i else None,
             "metrics": {"drift.refusal_harmful": 0.0, "drift.honesty": 0.5}} for i in range(3)]
    assert view(rows)["drift.refusal_harmful"]["mean_retention"] is None
    assert plots.no_retention(view(rows)["drift.refusal_harmful"]).startswith("gen 0 scores 0: nothing to retain")
    assert plots.no_retention(view(rows[:1], with_rejected=False)["drift.honesty"]).startswith("no promoted generation after gen 0 yet")
