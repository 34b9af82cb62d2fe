"""The report renders every format from ledger rows, and refuses what is not a lineage."""

from __future__ import annotations

import csv
import io
import json

import pytest

from pipeline.report import text as report
from pipeline.lineage import Lineage


@pytest.fixture
def lineage(tmp_path) -> Lineage:
    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    lin.record(lin.gen(0), status="promoted", parent=None, metrics={"gsm8k_test.accuracy_flexible": 0.25,
                                                                       "humaneval.pass@1": 0.1})
    lin.record(lin.gen(1), status="rejected", parent="gen_000", hparams={"learning_rate": 2e-4, "epochs": 1},
               hparams_source="clamped", metrics={"gsm8k_test.accuracy_flexible": 0.3, "drift.kl_gen0": 0.5},
               seconds={"train": 10.0, "eval": 2.5}, tokens={"train": 1000, "eval": 20})
    return lin


def test_every_format(lineage):
    rows = lineage.rows()
    table = report.render(rows, "table")
    assert table.splitlines()[0].split()[:4] == ["gen", "status", "parent", "gsm8k_test.accuracy_flexible"]
    assert "rejected" in table and "clamped" in table
    md = report.render(rows, "markdown")
    assert md.startswith("| gen") and "| gen_001 |" in md.replace("  ", " ")
    parsed = list(csv.DictReader(io.StringIO(report.render(rows, "csv"))))
    assert parsed[1]["drift.kl_gen0"] == "0.5" and parsed[1]["wall_s"] == "12.5" and parsed[1]["tokens"] == "1020"
    assert parsed[1]["wall_s.train"] == "10.0" and parsed[1]["tokens.eval"] == "20"  # per stage too
    assert parsed[0]["drift.kl_gen0"] == ""  # missing metrics are blank, not zero
    assert "wall_s" in table and "hp.source" in table
    data = json.loads(report.render(rows, "json"))
    assert data[1]["hp.learning_rate"] == 2e-4
    with pytest.raises(ValueError, match="unknown format"):
        report.render(rows, "xlsx")


def test_cli(lineage, tmp_path, capsys):
    assert report.main(["--lineage", str(lineage.path), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("gen,status,parent")
    assert report.main(["--compare", str(lineage.path), str(lineage.path), "--format", "markdown"]) == 0
    assert capsys.readouterr().out.count("## ") == 2
    assert report.main(["--lineage", str(tmp_path / "nothing")]) == 2
    assert "not a lineage" in capsys.readouterr().err


def _iv_rows(tmp_path):
    lin = Lineage(tmp_path, "iv")
    lin.init("tiny:qwen3", tmp_path / "base")
    lin.record(lin.gen(0), status="promoted", parent=None, metrics={
        "gsm8k_test.accuracy_flexible": 0.32, "gsm8k_test.accuracy_flexible_lo": 0.21,
        "gsm8k_test.accuracy_flexible_hi": 0.46, "gsm8k_test.accuracy_flexible_n": 50,
        "drift.kl_gen0": 0.0, "drift.honesty": 1.0, "drift.honesty_n": 1})  # one item: no bounds
    return lin.rows()


def test_table_and_markdown_show_intervals_in_the_metric_cell(tmp_path):
    rows = _iv_rows(tmp_path)
    for fmt in ("table", "markdown"):
        for all_columns in (False, True):
            text = report.render(rows, fmt, all_columns)
            assert "0.32 [0.21, 0.46]" in text
            assert "_lo" not in text and "_hi" not in text and "_n " not in text and "_n|" not in text
    assert report.render(rows, "table").splitlines()[0].split()[:4] == [
        "gen", "status", "parent", "gsm8k_test.accuracy_flexible"]


def test_csv_and_json_carry_interval_columns_beside_each_metric(tmp_path):
    rows = _iv_rows(tmp_path)
    text = report.render(rows, "csv")
    header = text.splitlines()[0].split(",")
    i = header.index("gsm8k_test.accuracy_flexible")
    assert header[i:i + 4] == ["gsm8k_test.accuracy_flexible", "gsm8k_test.accuracy_flexible_lo",
                               "gsm8k_test.accuracy_flexible_hi", "gsm8k_test.accuracy_flexible_n"]
    j = header.index("drift.honesty")
    assert header[j + 1] == "drift.honesty_n" and "drift.honesty_lo" not in header
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[0]["gsm8k_test.accuracy_flexible_lo"] == "0.21" and parsed[0]["gsm8k_test.accuracy_flexible_n"] == "50"
    data = json.loads(report.render(rows, "json"))
    keys = list(data[0])
    k = keys.index("gsm8k_test.accuracy_flexible")
    assert keys[k:k + 4] == header[i:i + 4] and data[0]["gsm8k_test.accuracy_flexible_hi"] == 0.46


def test_fmt_interval_cell():
    assert report._fmt(0.31579, 0.21034, 0.45712) == "0.3158 [0.2103, 0.4571]"
    assert report._fmt(0.5, None, 0.6) == 0.5 and report._fmt(None) == "" and report._fmt("x", 0.1, 0.2) == "x"


def test_proposal_sources_line():
    rows = [{"name": "gen_000"}, {"name": "gen_001", "hparams_source": "echo"},
            {"name": "gen_002", "hparams_source": "teacher"}, {"name": "gen_003", "hparams_source": "echo"},
            {"name": "gen_004", "hparams_source": "clamped"}]
    assert report.proposal_sources(rows) == ("proposals (4 trained): echo 2 (50%), clamped 1 (25%), "
                                             "fallback 0 (0%), teacher 1")
    assert report.proposal_sources([{"name": "gen_000"}]) == ""
