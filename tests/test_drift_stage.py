"""The drift stage end to end on tiny:qwen3 with the HF backend: gen 0 (baseline), then a gen 1 whose
model took one SGD step, with scripted eval records and synth stats beside it."""

from __future__ import annotations

import json

import pytest

from pipeline.drift import stage as drift
from pipeline.lineage.runner import StageContext
from pipeline.infra.io import atomic_write_json, read_json, read_jsonl, write_jsonl
from pipeline.lineage import Lineage
from tests.support import sgd_step_copy


@pytest.mark.slow
def test_drift_stage_gen0_then_gen1(smoke_cfg, tiny_qwen3):
    cfg = smoke_cfg("engine.backend=hf", "drift.max_items_per_suite=2", "drift.kl_prompts=3")
    lin = Lineage(cfg.paths.root, cfg.paths.lineage)
    lin.init(cfg.model.spec, tiny_qwen3)
    g0, g1 = lin.gen(0), lin.gen(1)
    write_jsonl(g0.stage_dir("eval") / "gsm8k_val.jsonl",
                [{"id": "a", "correct": True}, {"id": "b", "correct": False}, {"id": "c", "correct": False}])
    write_jsonl(g1.stage_dir("eval") / "gsm8k_val.jsonl",
                [{"id": "a", "correct": False}, {"id": "b", "correct": True}, {"id": "c", "correct": True}])
    atomic_write_json(g1.stage_dir("synth") / "stats.json", {"diversity": {"distinct_2": 0.42}, "red_flags": []})

    r0 = drift.run(StageContext(cfg=cfg, lineage=lin, gen=g0, teacher=g0, stage="drift"))
    m0 = r0.metrics
    assert m0["drift.kl_gen0"] == 0.0 and m0["drift.kl_parent"] == 0.0
    assert m0["drift.agreement_gen0"] == 1.0 and m0["drift.eval_agreement_gen0"] == 1.0
    assert m0["drift.items_gained_gen0"] == 0 and m0["drift.items_lost_gen0"] == 0
    for k in ("drift.refusal_harmful", "drift.over_refusal_benign", "drift.honesty", "drift.ifeval",
              "drift.mean_length", "drift.distinct_2"):
        assert 0 <= m0[k] <= max(1, cfg.drift.max_tokens), k
    recs = read_jsonl(g0.path / "drift" / "probes.jsonl")
    assert len(recs) == 2 * 2 + 2 * 2 + 2 + 2  # safety and honesty: 2 of each kind
    assert {r["suite"] for r in recs} == {"safety", "honesty", "sycophancy", "ifeval"}
    # every aggregate is traceable to the records
    harm = [r for r in recs if r["suite"] == "safety" and r["kind"] == "harmful"]
    assert m0["drift.refusal_harmful"] == sum(r["outcome"] == "refused" for r in harm) / len(harm)
    assert m0["drift.mean_length"] == sum(r["tokens"] for r in recs) / len(recs)

    sgd_step_copy(tiny_qwen3, g1.path / "model")
    r1 = drift.run(StageContext(cfg=cfg, lineage=lin, gen=g1, teacher=g0, stage="drift"))
    m1 = r1.metrics
    assert m1["drift.kl_gen0"] > 0 and m1["drift.kl_parent"] == m1["drift.kl_gen0"]  # parent is gen 0
    assert m1["drift.items_gained_gen0"] == 2 and m1["drift.items_lost_gen0"] == 1
    assert m1["drift.eval_agreement_gen0"] == 0.0
    assert 0 <= m1["drift.agreement_gen0"] <= 1
    assert m1["drift.synth_distinct_2"] == 0.42
    summary = read_json(g1.path / "drift" / "summary.json")
    assert summary["behaviour"]["gen0"]["eval"]["gsm8k_val"]["gained"] == ["b", "c"]
    assert summary["behaviour"]["gen0"]["eval"]["humaneval"] == "eval/<task>.jsonl absent"
    assert summary["kl"]["reference_items"] == 3 and "mean over reference items" in summary["kl"]["statistic"]
    kl_items = read_jsonl(g1.path / "drift" / "kl.jsonl")
    assert len(kl_items) == 3 and all(r["kl_gen0"] > 0 for r in kl_items)
    json.dumps(summary)
    # intervals beside the metrics, each with the method behind it (pipeline.drift.uncertainty)
    iv = summary["intervals"]
    assert iv["drift.kl_gen0"]["method"] == "bootstrap" and m1["drift.kl_gen0_n"] == 3
    assert iv["drift.kl_gen0"]["estimate"] == pytest.approx(m1["drift.kl_gen0"])
    assert iv["drift.eval_agreement_gen0"]["method"] == "wilson" and m1["drift.eval_agreement_gen0_n"] == 3
    assert iv["drift.refusal_harmful"]["method"] == "wilson" and m1["drift.refusal_harmful_n"] == 2
    assert m1["drift.mean_length_n"] == len(recs) and iv["drift.mean_length"]["method"] == "bootstrap"
    assert "drift.distinct_2" not in iv  # a corpus ratio, no per-item values (pipeline.drift.uncertainty)
    assert "drift.kl_gen0_n" not in m0 and "drift.items_gained_gen0_n" not in m1  # exact 0; a count
