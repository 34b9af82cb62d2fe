"""End to end: two real generations of tiny:qwen3 through each backend, resume, and re-run no-ops."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from pipeline.loop import generation
from pipeline.report import text as report
from pipeline.infra.io import read_json, sha256_file
from pipeline.lineage import Lineage
from pipeline.lineage.runner import read_manifest

STAGES = ("propose", "synth", "train", "eval", "drift", "gate")


def quiet(monkeypatch) -> None:
    """`logs.configure("info")` as an entry point runs it, undone after the test (levels, environment)."""
    import logging

    from pipeline.infra import logs

    # the real environment (the engine's process inherits it); monkeypatch deletes what configure sets
    for var in ("VLLM_LOGGING_LEVEL", "TRANSFORMERS_VERBOSITY", "TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS",
                "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(var, raising=False)
    for name in ("", *logs.LIBRARIES):
        monkeypatch.setattr(logging.getLogger(name or None), "level", logging.getLogger(name or None).level)
    logs.configure("info")


def lineage_of(cfg) -> Lineage:
    return Lineage(cfg.paths.root, cfg.paths.lineage)


def check_lineage(lin: Lineage, n_gens: int) -> None:
    rows = lin.rows()
    assert [r["name"] for r in rows] == [f"gen_{i:03d}" for i in range(n_gens + 1)]
    assert rows[0]["status"] == "promoted" and rows[0]["parent"] is None
    for r in rows[1:]:
        assert r["status"] in ("promoted", "rejected")
        assert r["parent"].startswith("gen_")
        assert set(r["seconds"]) == set(STAGES)
        for key in ("gsm8k_test.accuracy_flexible", "gsm8k_val.accuracy_flexible", "humaneval.pass@1"):
            assert 0.0 <= r["metrics"][key] <= 1.0
    for stage in ("eval", "drift"):
        assert lin.gen(0).is_done(stage)
    for i in range(1, n_gens + 1):
        g = lin.gen(i)
        for stage in STAGES:
            m = read_manifest(g, stage)
            assert m.config_hash and m.versions["torch"]
        assert (g.model_dir / "manifest.json").exists()
    # gen 1's weights differ from gen 0's (the base)
    base = lin.gen(0).model_dir / "model.safetensors"
    assert sha256_file(lin.gen(1).model_dir / "model.safetensors") != sha256_file(base)
    # every number in the table traces to per-item records on disk
    ev = lin.gen(1).path / "eval"
    recs = [json.loads(x) for x in (ev / "gsm8k_test.jsonl").read_text().splitlines()]
    assert len(recs) == read_json(ev / "summary.json")["tasks"]["gsm8k_test"]["n"]
    acc = sum(r["correct"] for r in recs) / len(recs)
    assert acc == pytest.approx(lin.row(lin.gen(1))["metrics"]["gsm8k_test.accuracy_flexible"])
    check_formats(lin, n_gens)
    # the compact table of a real smoke lineage fits 160 columns, verdict lines first (pipeline.report.views)
    table = report.text_view(rows, "table")
    assert max(map(len, table.splitlines())) <= 160 and table.splitlines()[0].split()[:2] == ["gen", "status"]
    assert report.verdict_block(rows, lin.path).splitlines()[1].startswith(f"gen_001 {rows[1]['status']}")


def check_formats(lin: Lineage, n_gens: int) -> None:
    """lm-eval results.json, the model card's model-index (huggingface_hub's parser) and the
    lineage's TensorBoard run agree with the eval summary and the ledger."""
    from huggingface_hub import ModelCard
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from pipeline.engine.models import check_model_dir

    ev = lin.gen(1).path / "eval"
    summary, res = read_json(ev / "summary.json"), read_json(ev / "results.json")
    assert res["results"]["gsm8k_test"]["exact_match,flexible-extract"] == summary["metrics"]["gsm8k_test.accuracy_flexible"]
    card = ModelCard.load(check_model_dir(lin.gen(1).model_dir) / "README.md")  # still valid after the results
    spt = card.data.to_dict()["self_post_training"]
    assert card.data.base_model is None and spt["parent"] == "gen_000"  # tiny:qwen3 has no hub id
    assert spt["data"][0]["path"].startswith("gen_001/") and str(lin.path) not in card.content
    by_name = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert by_name["humaneval.pass@1"] == pytest.approx(summary["metrics"]["humaneval.pass@1"])
    acc = EventAccumulator(str(lin.path / "tensorboard" / "lineage"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("eval/gsm8k_val.accuracy_flexible")]
    assert steps == list(range(n_gens + 1))


@pytest.mark.slow
def test_two_generations_vllm_with_resume(smoke_cfg, capfd, monkeypatch):
    quiet(monkeypatch)
    cfg = smoke_cfg("engine.backend=vllm", "generations=2")
    rows = generation.run(cfg)
    lin = lineage_of(cfg)
    check_lineage(lin, 2)
    # the quiet log (log.level=info): vLLM, its engine process included, says nothing below WARNING, no
    # progress-bar control characters reach a captured stream, and each stage's log.txt ends with its done line
    out, err = capfd.readouterr()
    assert not re.search(r"^(\(\w+ pid=\d+\) )?INFO \d\d-\d\d [\d:]+ \[", out + err, re.M), (out + err)[-3000:]
    assert "\r" not in out + err and "\x1b[" not in out + err
    for log_txt in lin.path.rglob("log.txt"):
        assert ": done in " in log_txt.read_text().strip().splitlines()[-1], log_txt
    table = report.render(rows, "table")
    assert "gen_000" in table and "gen_002" in table and "gsm8k_test.accuracy_flexible" in table

    # a finished run re-run is a no-op: no stage runs again
    stamps = {p: p.stat().st_mtime_ns for p in lin.path.rglob("manifest.json")}
    generation.run(smoke_cfg("engine.backend=vllm", "generations=2"))
    assert {p: p.stat().st_mtime_ns for p in lin.path.rglob("manifest.json")} == stamps

    # a deleted stage is redone, and only that stage
    g2 = lin.gen(2)
    shutil.rmtree(g2.path / "eval")
    lin.record(g2, status="candidate")  # as if the run had crashed during eval
    before = read_manifest(g2, "train").finished
    generation.run(smoke_cfg("engine.backend=vllm", "generations=2"))
    assert g2.is_done("eval") and read_manifest(g2, "train").finished == before
    check_lineage(lin, 2)


@pytest.mark.slow
def test_two_generations_hf(smoke_cfg):
    cfg = smoke_cfg("engine.backend=hf", "generations=2")
    generation.run(cfg)
    lin = lineage_of(cfg)
    check_lineage(lin, 2)
    for g in (1, 2):  # what the loop's engines did, for make bench
        events = read_json(lin.gen(g).path / "engines.json")["events"]
        assert {k for k, _ in events} <= {"start", "wake", "sleep", "close"}
        starts = [p for k, p in events if k == "start"]
        assert str(lin.gen(g).model_dir.resolve()) in starts  # its own eval and drift
        assert len(starts) == len(set(starts))  # no model's engine started twice in a generation


@pytest.mark.slow
def test_candidates_through_the_loop(smoke_cfg):
    """propose.candidates=2: one shared proposal and data set, two successors trained with their own
    settings, the better on validation (among those the gate passed) selected as the generation."""
    cfg = smoke_cfg("engine.backend=hf", "generations=1", "propose.candidates=2")
    generation.run(cfg)
    lin = lineage_of(cfg)
    status = {r["name"]: r["status"] for r in lin.rows()}
    assert set(status) == {"gen_000", "gen_001", "gen_001-c0", "gen_001-c1"}
    proposed = read_json(lin.gen(1).path / "propose" / "accepted.json")["candidates"]
    assert len(proposed) == 2 and proposed[0]["hparams"] != proposed[1]["hparams"]
    for i in (0, 1):
        c = lin.gen_by_name(f"gen_001-c{i}")
        assert (c.path / "synth").resolve() == (lin.gen(1).path / "synth").resolve()  # shared data
        trained = read_manifest(c, "train").info["hparams"]
        assert trained == {k: proposed[i]["hparams"][k] for k in trained}  # its own proposal
        assert c.is_done("gate") and (c.model_dir / "manifest.json").exists()
    selection = read_json(lin.gen(1).path / "selection.json")
    assert selection["metric"] == cfg.candidate.select_metric and len(selection["candidates"]) == 2
    # ranked on the selection slice, which only the candidates scored; the gate on its own slice
    sides = selection["slices"]
    assert sides["gate"]["metric"] == cfg.gate.metric and sides["selection"]["n"] == 4
    assert not set(sides["selection"]["ids"]) & set(sides["gate"]["ids"])
    assert not (lin.gen(0).path / "eval" / "gsm8k_sel.jsonl").exists()
    if selection["selected"]:
        assert status["gen_001"] == "promoted" and status[selection["selected"]] == "promoted"
        assert lin.teacher().name == selection["selected"]
        assert sorted(status[f"gen_001-c{i}"] for i in (0, 1)) == ["promoted", "rejected"]
    else:
        assert status["gen_001"] == "rejected" and lin.teacher().name == "gen_000"
    # re-running with the same target is a no-op (the generation is finished)
    stamps = {p: p.stat().st_mtime_ns for p in lin.path.rglob("manifest.json")}
    generation.run(smoke_cfg("engine.backend=hf", "generations=1", "propose.candidates=2"))
    assert {p: p.stat().st_mtime_ns for p in lin.path.rglob("manifest.json")} == stamps
