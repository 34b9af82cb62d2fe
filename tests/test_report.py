"""The report renders every format from ledger rows, and refuses what is not a lineage."""

from __future__ import annotations

import csv
import io
import json

import pytest

from pipeline import report
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


def test_proposal_sources_line():
    rows = [{"name": "gen_000"}, {"name": "gen_001", "hparams_source": "echo"},
            {"name": "gen_002", "hparams_source": "teacher"}, {"name": "gen_003", "hparams_source": "echo"},
            {"name": "gen_004", "hparams_source": "clamped"}]
    assert report.proposal_sources(rows) == ("proposals (4 trained): echo 2 (50%), clamped 1 (25%), "
                                             "fallback 0 (0%), teacher 1")
    assert report.proposal_sources([{"name": "gen_000"}]) == ""
