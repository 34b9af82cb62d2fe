"""The ledger comes from the manifests: a deleted or corrupt ledger is rebuilt (or named with the command
that rebuilds it), a corrupt manifest is an error, and the report's protocol legend is printed, all on a
lineage written by the real eval stage, manifest writer and promotion path (a scripted engine answers)."""

from __future__ import annotations

import shutil

import pytest

from pipeline.loop import ledger, promote, table as stages
from pipeline.report import text as report
from pipeline.evals import selection
from pipeline.evals.stage import evaluate_model
from pipeline.lineage import Lineage, LineageError
from pipeline.lineage.runner import Engines, StageContext, StageResult, config_hash, new_manifest, record, run_stage, write_manifest
from tests.support import compose
from tests.support import BenchmarkEngine, engine_factory


KEYS = ("name", "gen", "status", "parent", "teacher", "metrics", "seconds", "tokens", "hparams", "gate_reasons")


@pytest.fixture(scope="module")
def built(tmp_path_factory, models_dir) -> Lineage:
    """gen_000: the eval stage run by the loop's runner; gen_001: proposed, evaluated, rejected by the gate."""
    root = tmp_path_factory.mktemp("ledger")
    cfg = compose(["model=tiny:qwen3", "experiment=smoke", f"paths.root={root}", f"paths.models={models_dir}"])
    lin = Lineage(cfg.paths.root, cfg.paths.lineage)
    lin.init(cfg.model.spec, root / "base")
    gen0, gen1 = lin.gen(0), lin.gen(1)
    lin.record(gen0, parent=None, teacher=None, status="promoted", config_hash=config_hash(cfg))
    run_stage(stages.EVAL, StageContext(cfg, lin, gen0, gen0, "eval", Engines(lambda d: BenchmarkEngine())))
    lin.record(gen1, parent="gen_000", teacher="gen_000", status="candidate", config_hash=config_hash(cfg))
    results = {"propose": StageResult(info={"hparams": {"learning_rate": 2e-4, "epochs": 1}, "source": "teacher"}),
               "eval": evaluate_model(selection.tasks_for(cfg, gen1.name, 1), gen1.model_dir, gen1.stage_dir("eval"),
                                     engine_factory(BenchmarkEngine(wrong_every=3), [])),  # as the eval stage: no selection task
               "gate": StageResult(info={"status": "rejected", "reasons": ["capability: FAIL (scripted)"]})}
    for stage, result in results.items():
        gen1.stage_dir(stage)
        m = new_manifest(cfg, stage, gen0, result, 1.5)
        write_manifest(gen1, m)
        record(lin, gen1, m)
    lin.record(gen1, hparams=results["propose"].info["hparams"], hparams_source="teacher")
    promote.apply(lin, gen1, [gen1], cfg.gate.metric)
    return lin


@pytest.fixture
def lineage(built, tmp_path) -> tuple[Lineage, None]:
    """A copy of the built lineage each test may break."""
    shutil.copytree(built.path, tmp_path / built.name)
    return Lineage(tmp_path, built.name), None


def view(rows: list[dict]) -> list[dict]:
    return [{k: r.get(k) for k in KEYS} for r in rows]


def test_protocol_legend_through_the_cli(lineage, capsys):
    lin, _ = lineage
    assert report.main(["--lineage", str(lin.path)]) == 0
    out = capsys.readouterr().out
    assert "protocols: chat = gsm8k_test, humaneval, gsm8k_val" in out  # the eval manifests' protocols
    assert report.main(["--lineage", str(lin.path), "--format", "csv"]) == 0
    assert "protocols:" not in capsys.readouterr().out  # csv stays a table


def test_verdicts_then_the_compact_table_through_the_cli(lineage, capsys):
    lin, _ = lineage
    assert report.main(["--lineage", str(lin.path)]) == 0
    verdicts, table, *rest = capsys.readouterr().out.split("\n\n")
    first, second = verdicts.splitlines()
    assert first.startswith("gen_000 promoted: the baseline (gen 0 is not gated) | wall ")
    assert second.startswith("gen_001 rejected: capability: FAIL (scripted) | wall ")  # the ledger's gate line
    lines = table.splitlines()
    assert max(map(len, lines)) <= 160 and lines[0].split()[:3] == ["gen", "status", "gsm8k_test"]
    assert lines[1].split() == ["accuracy_strict", "pass@1", "accuracy_flexible"]  # headers break at the dot
    assert "0.67 [.21,.94]" in lines[3]  # gen_000: 2 of 3 right, rounded to its interval
    assert lines[-1] == "protocols: chat = gsm8k_test, humaneval, gsm8k_val"
    assert report.main(["--lineage", str(lin.path), "--long", "--columns", "gsm8k_val.*"]) == 0
    long = capsys.readouterr().out.split("\n\n")[1].splitlines()
    assert long[0].split() == ["metric", "better", "gen", "value", "95%", "interval", "n"]
    assert long[2].split()[:3] == ["gsm8k_val.accuracy_flexible", "higher", "gen_000"]
    assert report.main(["--lineage", str(lin.path), "--columns", "nothing.*"]) == 2
    assert "--columns: 'nothing.*' names no column" in capsys.readouterr().err


def test_deleted_ledger_is_named_then_rebuilt(lineage, capsys):
    lin, _ = lineage
    before = view(lin.rows())
    assert [r["status"] for r in before] == ["promoted", "rejected"]
    (lin.path / "ledger.sqlite").unlink()
    assert report.main(["--lineage", str(lin.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ledger.sqlite is missing" in err
    assert f"python -m pipeline.loop.ledger --rebuild {lin.path}" in err
    assert ledger.main(["--rebuild", str(lin.path)]) == 0
    assert view(lin.rows()) == before


def test_corrupt_ledger_is_an_error_and_the_loop_repairs_it(lineage, capsys):
    lin, _ = lineage
    before = view(lin.rows())
    (lin.path / "ledger.sqlite").write_bytes(b"this is not sqlite" * 100)
    assert report.main(["--lineage", str(lin.path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a readable ledger" in err and "--rebuild" in err
    ledger.repair(lin)  # what the generation loop does when it starts
    assert view(lin.rows()) == before
    assert list(lin.path.glob("ledger.sqlite.bad-*"))  # the broken file is kept, not overwritten


def test_corrupt_manifest_is_an_error_not_a_status(lineage, capsys):
    lin, _ = lineage
    bad = lin.gen(1).manifest_path("eval")
    bad.write_text('{"stage": "eval", "result": ')
    assert report.main(["--lineage", str(lin.path)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not a stage manifest" in err and "rejected" not in err
    with pytest.raises(LineageError, match="not a stage manifest"):
        ledger.rebuild(lin)
    assert view(lin.rows())[1]["status"] == "rejected"  # a refused rebuild leaves the old ledger alone


def test_rebuild_follows_a_selection_among_candidates(lineage):
    """gen_002 with two candidates, both passed by the gate: the better on validation is selected
    (selection.json); a rebuilt ledger gives every row the status the promotion gave it."""
    lin, _ = lineage
    cfg = compose(["model=tiny:qwen3", "experiment=smoke"])
    gen2, teacher = lin.gen(2), lin.gen(0)
    lin.record(gen2, parent="gen_000", teacher="gen_000", status="candidate")
    proposed = new_manifest(cfg, "propose", teacher, StageResult(info={"hparams": {"epochs": 1}}), 1.0)
    gen2.stage_dir("propose")
    write_manifest(gen2, proposed)
    record(lin, gen2, proposed)
    lin.record(gen2, hparams={"epochs": 1}, hparams_source=None)
    cands = [lin.gen_by_name("gen_002-c0"), lin.gen_by_name("gen_002-c1")]
    for cand, acc in zip(cands, (0.25, 0.75)):
        lin.record(cand, parent="gen_000", teacher="gen_000", status="candidate")
        for stage, result in (("eval", StageResult(metrics={cfg.gate.metric: acc})),
                              ("gate", StageResult(info={"status": "promoted", "reasons": ["all checks pass"]}))):
            cand.stage_dir(stage)
            m = new_manifest(cfg, stage, teacher, result, 1.0)
            write_manifest(cand, m)
            record(lin, cand, m)
    assert promote.apply(lin, gen2, cands, cfg.gate.metric) == "gen_002-c1"
    before = view(lin.rows())
    (lin.path / "ledger.sqlite").unlink()
    ledger.rebuild(lin)
    after = view(lin.rows())
    assert {r["name"]: r["status"] for r in after} == {"gen_000": "promoted", "gen_001": "rejected", "gen_002": "promoted",
                                                       "gen_002-c0": "rejected", "gen_002-c1": "promoted"}
    assert after == before
