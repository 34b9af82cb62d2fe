"""The eval stage: records, summary and metrics, with a scripted engine and (slow) tiny:qwen3 on HF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import BenchmarkEngine, engine_factory
from pipeline.evals.stage import evaluate_model, run, task_intervals
from pipeline.infra.io import read_json, read_jsonl
from pipeline.stats import bootstrap_mean, wilson
from pipeline.stats.ledger import points

def test_stage_with_scripted_engine(smoke_cfg, tmp_path):
    cfg = smoke_cfg()  # gsm8k_test 4, gsm8k_val 4, humaneval 3 items
    del cfg.eval.tasks["gsm8k_sel"]  # scored only by candidates among several (tests/test_selection.py)
    eng, opened = BenchmarkEngine(), []
    out = tmp_path / "eval"
    res = evaluate_model(cfg, Path("/models/m"), out, engine_factory(eng, opened))
    assert opened == [Path("/models/m")] and len(eng.calls) == 3  # one engine, one batched call per task
    assert [len(p) for p, _ in eng.calls] == [4, 4, 3]
    assert eng.calls[0][1].max_tokens == cfg.eval.tasks["gsm8k_test"].max_tokens
    assert {k: v for k, v in points(res.metrics).items() if not k.endswith("format_rate")} == {
        "gsm8k_test.accuracy_strict": 0.5, "gsm8k_test.accuracy_flexible": 0.5,
        "gsm8k_val.accuracy_strict": 0.5, "gsm8k_val.accuracy_flexible": 0.5,
        "humaneval.pass@1": pytest.approx(2 / 3),
    }
    # every scripted answer ends in `#### N`, so every completion has a strict-extractable answer
    assert res.metrics["gsm8k_test.format_rate"] == res.metrics["gsm8k_val.format_rate"] == 1.0
    # every metric carries its n and 95% interval: one sample per item, so Wilson (2 of 4 correct)
    w = wilson(2, 4)
    assert set(res.metrics) - set(points(res.metrics)) == {f"{k}{s}" for k in points(res.metrics)
                                                          for s in ("_lo", "_hi", "_n")}
    assert (res.metrics["gsm8k_val.accuracy_flexible_lo"], res.metrics["gsm8k_val.accuracy_flexible_hi"],
            res.metrics["gsm8k_val.accuracy_flexible_n"]) == (w.lo, w.hi, 4)
    assert res.metrics["humaneval.pass@1_n"] == 3
    assert res.tokens == 7 * 11 and res.info["tasks"]["gsm8k_val"] == {
        "n": 4, "version": "gsm8k-chat-v1", "key": res.info["tasks"]["gsm8k_val"]["key"],
        "benchmark": "gsm8k", "split": "validation", "protocol": "chat",
        "directions": {"accuracy_strict": "higher", "accuracy_flexible": "higher", "format_rate": "higher"},
        "items": {"slice": "validation", "version": 2, "n": 4, "ids_hash": res.inputs["gsm8k_val"]}}
    assert res.info["engine"]["backend"] == "scripted"

    g = read_jsonl(out / "gsm8k_val.jsonl")
    assert [r["correct"] for r in g] == [True, False, True, False]
    assert all(r["id"].startswith("gsm8k-train-") and r["version"] == "gsm8k-chat-v1" for r in g)
    assert {"prompt", "completion", "extracted_strict", "extracted_flexible", "correct_strict",
            "correct_flexible", "answer"} <= set(g[0])
    h = read_jsonl(out / "humaneval.jsonl")
    assert [r["correct"] for r in h] == [True, False, True] and h[0]["passed"] == [True]
    assert h[0]["id"].startswith("HumanEval/")
    summary = read_json(out / "summary.json")
    assert summary["metrics"]["gsm8k_val.accuracy_flexible"] == 0.5
    assert summary["intervals"]["gsm8k_val.accuracy_flexible"] == {**w.as_dict(), "method": "wilson"}
    assert summary["intervals"]["humaneval.pass@1"]["n"] == 3
    assert summary["specs"]["humaneval"]["version"] == "humaneval-chat-v1"

    # Same items for the next generation, and finished tasks are not generated again.
    again = evaluate_model(cfg, Path("/models/m"), out, engine_factory(BenchmarkEngine(), opened))
    assert len(opened) == 1 and again.metrics == res.metrics and sorted(again.info["reused"]) == sorted(cfg.eval.tasks)
    # A changed spec regenerates only that task.
    cfg.eval.tasks["gsm8k_test"].max_tokens += 1
    eng3 = BenchmarkEngine()
    third = evaluate_model(cfg, Path("/models/m"), out, engine_factory(eng3, opened))
    assert len(eng3.calls) == 1 and sorted(third.info["reused"]) == ["gsm8k_val", "humaneval"]


def test_few_shot_spec_puts_train_exemplars_in_the_prompt(smoke_cfg, tmp_path):
    cfg = smoke_cfg("eval.tasks.gsm8k_val.prompt=few_shot", "eval.tasks.gsm8k_val.few_shot=2")
    eng = BenchmarkEngine(wrong_every=1)
    evaluate_model(cfg, Path("/m"), tmp_path, engine_factory(eng, []))
    rec = read_jsonl(tmp_path / "gsm8k_val.jsonl")[0]
    assert rec["n_shots"] == 2 and rec["correct"]


def test_bad_specs_fail_naming_the_key(smoke_cfg):
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="eval.tasks.*.few_shot"):
        smoke_cfg("eval.tasks.humaneval.prompt=few_shot")
    with pytest.raises(ConfigError, match="eval.tasks.*.k"):
        smoke_cfg("eval.tasks.humaneval.k=[1,10]")
    with pytest.raises(ConfigError, match="HumanEval has only a test split"):
        smoke_cfg("eval.tasks.humaneval.split=validation")


@pytest.mark.slow
def test_stage_on_tiny_qwen3_with_hf(smoke_cfg, tiny_qwen3):
    from pipeline.lineage.runner import StageContext
    from pipeline.lineage import Lineage

    cfg = smoke_cfg("engine.backend=hf")
    lineage = Lineage(cfg.paths.root, cfg.paths.lineage)
    lineage.init(cfg.model.spec, tiny_qwen3)
    gen0 = lineage.gen(0)
    ctx = StageContext(cfg=cfg, lineage=lineage, gen=gen0, teacher=gen0, stage="eval")
    res = run(ctx)
    for key in ("gsm8k_test.accuracy_strict", "gsm8k_test.accuracy_flexible", "gsm8k_val.accuracy_flexible",
                "humaneval.pass@1", cfg.gate.metric):
        assert 0.0 <= res.metrics[key] <= 1.0
    assert res.info["engine"]["backend"] == "hf" and res.info["engine"]["calls"] == 3
    assert res.tokens > 0
    from pipeline.evals import selection

    for name, task in selection.tasks_for(cfg, gen0.name, 0).eval.tasks.items():  # gen 0 ranks nothing: no selection task
        rows = read_jsonl(ctx.out / f"{name}.jsonl")
        assert len(rows) == task.n and all(isinstance(r["correct"], bool) and r["id"] for r in rows)
    summary = json.loads((ctx.out / "summary.json").read_text())
    assert summary["model_dir"] == str(tiny_qwen3) and summary["chat_template_kwargs"] == {"enable_thinking": False}


def test_intervals_are_wilson_for_0_1_items_and_bootstrap_for_averaged_samples(smoke_cfg):
    spec = smoke_cfg().eval.tasks["gsm8k_val"]
    # accuracy averaged over 2 samples per item (0.5 = one of two right): a mean, so bootstrap
    recs = [{"metrics": {"accuracy_strict": v, "accuracy_flexible": f, "format_rate": 1.0}}
            for v, f in [(0.5, 1.0), (1.0, 1.0), (0.0, 0.0), (0.5, 0.0), (1.0, 1.0)]]
    ivs = task_intervals(spec, recs)
    assert ivs["accuracy_strict"] == bootstrap_mean([0.5, 1.0, 0.0, 0.5, 1.0])
    assert ivs["accuracy_strict"].method == "bootstrap" and ivs["accuracy_strict"].estimate == 0.6
    assert ivs["accuracy_flexible"] == wilson(3, 5)
    lo, hi = ivs["accuracy_strict"].lo, ivs["accuracy_strict"].hi
    assert 0 <= lo < 0.6 < hi <= 1
