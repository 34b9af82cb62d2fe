"""Test splits never decide, the right reference for `*_parent` budgets, and records paired on
(item id, protocol) with the reference re-scored under the candidate's directory when protocols differ.
Scripted engines stand in for models (the model is not what is tested here)."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support import compose
from tests.support import BenchmarkEngine
from pipeline.infra import metricspec
from pipeline.loop import promote
from pipeline.config import Budget, ConfigError
from pipeline.drift import stage as drift
from pipeline.evals.protocol import protocol_key
from pipeline.evals.reference import score_reference
from pipeline.evals.stage import evaluate_model
from pipeline.gate import stage as gate
from pipeline.infra.io import atomic_write_json, read_json, read_jsonl, write_jsonl
from pipeline.lineage import Lineage, LineageError
from pipeline.propose.prompt import val_metrics
from pipeline.lineage.runner import Engines, Manifest, StageContext, StageResult, write_manifest

M = "gsm8k_val.accuracy_flexible"


# -- test splits never decide -----------------------------------------------------------------------

def test_a_budget_on_a_metric_over_a_test_split_is_a_config_error_naming_the_split():
    with pytest.raises(ConfigError, match=r"gate\.budgets\.eval_agreement_test_gen0.*drift\.eval_agreement_test_gen0 "
                                          r"is computed over the test splits gsm8k/test, humaneval/test"):
        compose(["+gate.budgets={eval_agreement_test_gen0: {direction: higher, total: 0.1, step: 0.05}}"])
    # eval agreement itself reads the validation tasks only, so a budget on it is fine
    cfg = compose(["+gate.budgets={eval_agreement_gen0: {direction: higher, total: 0.1, step: 0.05}}"])
    assert metricspec.spec("drift.eval_agreement_gen0", cfg.eval).splits == ("gsm8k/validation",)
    # whatever its name: a task called *_val on the test split is refused by its split
    cfg.eval.tasks["sneaky_val"] = dataclasses.replace(cfg.eval.tasks["gsm8k_test"])
    why = metricspec.decision_refusal("sneaky_val.accuracy_flexible", cfg.eval)
    assert why is not None and "test split gsm8k/test" in why
    shown = val_metrics({M: 0.5, "sneaky_val.accuracy_flexible": 0.9, "gsm8k_val.format_rate": 1.0}, M,
                        eval_cfg=cfg.eval)
    assert shown == {M: 0.5, "gsm8k_val.format_rate": 1.0}


def _eval_records(gen, task: str, correct: list[bool]):
    write_jsonl(gen.stage_dir("eval") / f"{task}.jsonl",
                [{"id": f"{task}-{i}", "correct": c, "protocol": "p"} for i, c in enumerate(correct)])


def test_eval_agreement_reads_validation_tasks_only_and_the_gate_strips_test_reads(tmp_path):
    cfg = compose([f"paths.root={tmp_path}"])
    lin = Lineage(tmp_path, "g")
    lin.init("tiny:qwen3", tmp_path / "base")
    g0, g1 = lin.gen(0), lin.gen(1)
    _eval_records(g0, "gsm8k_val", [True, True, False, False])
    _eval_records(g1, "gsm8k_val", [True, True, False, True])  # 3 of 4 agree
    _eval_records(g0, "gsm8k_test", [True, False])
    _eval_records(g1, "gsm8k_test", [False, True])  # 0 of 2 agree
    metrics, detail, _, splits = drift.behaviour(cfg, g1, {"gen0": g0, "parent": g0}, [])
    assert metrics["drift.eval_agreement_gen0"] == 0.75 and metrics["drift.eval_agreement_test_gen0"] == 0.0
    assert splits["drift.eval_agreement_gen0"] == ["gsm8k/validation"]
    assert splits["drift.eval_agreement_test_gen0"] == ["gsm8k/test"]
    assert splits["drift.items_gained_gen0"] == ["gsm8k/test", "gsm8k/validation"]
    write_manifest(g1, Manifest("drift", StageResult(metrics=metrics, info={"splits": splits})))
    write_manifest(g1, Manifest("eval", StageResult(
        metrics={M: 0.5, "sneaky_val.accuracy_flexible": 0.9},
        info={"tasks": {"gsm8k_val": {"benchmark": "gsm8k", "split": "validation", "directions": {"accuracy_flexible": "higher"}},
                        "sneaky_val": {"benchmark": "gsm8k", "split": "test", "directions": {"accuracy_flexible": "higher"}}}})))
    seen = gate.validation_metrics(g1, cfg.eval)
    assert M in seen and "drift.eval_agreement_gen0" in seen
    assert "sneaky_val.accuracy_flexible" not in seen  # recorded split, whatever the name
    assert not any(k.startswith(("drift.eval_agreement_test", "drift.items_")) for k in seen)
    with pytest.raises(LineageError, match=r"selection .*sneaky_val.accuracy_flexible is computed over the test split"):
        promote.apply(lin, g1, [g1], "sneaky_val.accuracy_flexible")  # candidate selection refuses it too
    # a gated metric that read a test split (records of another config) stops the gate, naming it
    with pytest.raises(LineageError, match="drift.eval_agreement_test_gen0 is computed over the test split gsm8k/test"):
        gate.refuse_test_reads([M, "drift.eval_agreement_test_gen0"], g1, cfg.eval)
    # a drift manifest from before the splits were recorded computed eval agreement over every task
    write_manifest(g1, Manifest("drift", StageResult(metrics=metrics)))
    assert "drift.eval_agreement_gen0" not in gate.validation_metrics(g1, cfg.eval)


# -- the right reference ---------------------------------------------------------------------------

def _gate(**budgets) -> object:
    g = compose([]).gate
    g.budgets = {k: Budget(*v) for k, v in budgets.items()}
    g.on_inconclusive = "promote"  # 10 capability items decide nothing: these tests are about the budgets
    return g


def test_a_parent_budget_judges_the_candidates_own_distance_from_its_parent():
    ids = [f"r{i}" for i in range(20)]
    cap = {f"q{i}": 1.0 for i in range(10)}
    g = _gate(kl_parent=("lower", 1.0, 0.10))
    # the parent moved 0.55 from its own parent; the candidate moves 0.60 from the parent
    cand = {M: cap, "drift.kl_parent": {i: 0.60 + 0.001 * k for k, i in enumerate(ids)}}
    parent = {M: cap, "drift.kl_parent": {i: 0.55 + 0.001 * k for k, i in enumerate(ids)}}
    gen0 = {M: cap, "drift.kl_parent": {i: 0.0 for i in ids}}
    status, reasons, checks = gate.decide(g, cand, parent, gen0, [])
    step = next(r for r in reasons if r.startswith("drift.kl_parent: step"))
    assert status == "rejected" and step.startswith("drift.kl_parent: step FAIL"), reasons
    assert "vs the parent itself 0.0000" in step and "step budget 0.1000" in step
    assert checks["budgets"]["drift.kl_parent"]["step"]["reference"] == 0.0
    # a candidate close to its parent passes, however far the parent had moved
    near = {M: cap, "drift.kl_parent": {i: 0.01 for i in ids}}
    assert gate.decide(g, near, parent, gen0, [])[0] == "promoted"
    # point estimates (agreement has no per-item values): agreement 0.8 with the parent is a 0.2 step
    g = _gate(agreement_parent=("higher", 1.0, 0.05))
    status, reasons, _ = gate.decide(g, {M: cap, "drift.agreement_parent": 0.80},
                                     {M: cap, "drift.agreement_parent": 0.82}, {M: cap, "drift.agreement_parent": 1.0}, [])
    assert status == "rejected" and any(r.startswith("drift.agreement_parent: step FAIL, drop 0.2000") for r in reasons)


# -- records pair on (id, protocol): re-scoring the reference -----------------------------------------

def _one_task(cfg, **change):
    cfg.eval.tasks = {"gsm8k_val": dataclasses.replace(cfg.eval.tasks["gsm8k_val"], **change)}
    cfg.gate.budgets = {}
    return cfg


def test_a_protocol_change_rescores_the_reference_under_the_candidate(smoke_cfg, tmp_path):
    old = _one_task(smoke_cfg(), max_tokens=16)  # gen 0 was scored under another protocol
    cfg = _one_task(smoke_cfg())
    assert protocol_key(old.eval.tasks["gsm8k_val"], old) != protocol_key(cfg.eval.tasks["gsm8k_val"], cfg)
    # the protocol ignores the model and the subset size
    assert protocol_key(dataclasses.replace(cfg.eval.tasks["gsm8k_val"], n=9, seed=3), cfg) == \
        protocol_key(cfg.eval.tasks["gsm8k_val"], cfg)
    lin = Lineage(cfg.paths.root, "g")
    (tmp_path / "base").mkdir()
    lin.init("tiny:qwen3", tmp_path / "base")
    g0, g1 = lin.gen(0), lin.gen(1)
    for gen, c in ((g0, old), (g1, cfg)):
        res = evaluate_model(c, gen.model_dir, gen.stage_dir("eval"), Engines(lambda d: BenchmarkEngine()).use)
        write_manifest(gen, Manifest("eval", res))
    atomic_write_json(g1.stage_dir("synth") / "stats.json", {"red_flags": []})
    engines = Engines(lambda d: BenchmarkEngine(), keep=True)
    ctx = StageContext(cfg=cfg, lineage=lin, gen=g1, teacher=g0, stage="gate", engines=engines)
    info = gate.run(ctx).info
    where = g1.path / "gate" / "reference" / "gen_000" / "gsm8k_val"
    records, manifest = read_jsonl(where / "records.jsonl"), read_json(where / "manifest.json")
    want = protocol_key(cfg.eval.tasks["gsm8k_val"], cfg)
    assert len(records) == 4 and {r["protocol"] for r in records} == {want}
    assert manifest["result"]["info"]["reference"] == "gen_000" and manifest["result"]["info"]["scored_now"] == 4
    assert engines.starts == [str((tmp_path / "base").resolve())]  # gen 0 is teacher and gen 0: scored once
    assert info["checks"]["rescored"] and "gen_000 re-scored on the candidate's 4 item(s)" in info["reasons"][0]
    assert info["checks"]["capability"]["paired"]["n"] == 4
    # resumable: a second call (and a second gate run) does no work, a call with a new id scores only it
    ids = [r["id"] for r in read_jsonl(g1.path / "eval" / "gsm8k_val.jsonl")]
    assert score_reference(ctx, g0, "gsm8k_val", ids) == records
    gate.run(ctx)
    assert len(engines.starts) == 1 and read_json(where / "manifest.json") == manifest
    with pytest.raises(ValueError, match="'gsm8k_val'.*not items of gsm8k split 'validation'"):
        score_reference(ctx, g0, "gsm8k_val", ["no-such-item"])
    # the candidate's own records under another protocol than the config's: stop, naming the task
    ctx.cfg = _one_task(smoke_cfg(), max_tokens=8)
    with pytest.raises(LineageError, match="eval task 'gsm8k_val': gen_001's records were made under"):
        gate.run(ctx)
