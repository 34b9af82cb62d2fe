"""Memory preflight (pipeline.train.memory): the estimate on literal configs, the infeasible -> feasible
order (checkpointing, then accumulation, then LoRA), the train stage's record, and (slow) the
estimate against the measured peak of a real CPU training run of tiny:qwen3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from pipeline.config import resolved_dict
from pipeline.infra.io import atomic_write_json, write_jsonl
from pipeline.train.memory import (MB, MemoryPreflightError, ModelShape, Plan, apply, estimate, fit, preflight)
from tests.support import ROOT

# Qwen2.5-0.5B-like: small body, 151k vocabulary (tied), where the logits dominate
QWEN = {"hidden_size": 896, "num_hidden_layers": 24, "vocab_size": 151936, "intermediate_size": 4864,
        "num_attention_heads": 14, "num_key_value_heads": 2, "tie_word_embeddings": True}
SHAPE = ModelShape.from_config(QWEN)
GB = 2**30


def full(**kw) -> Plan:
    return Plan(**{"lora_r": 0, "per_device": 8, "seq": 1024, "gradient_checkpointing": False, "bf16": True, **kw})


def test_parameter_counts_from_config(tiny_qwen3):
    from safetensors import safe_open

    with safe_open(str(tiny_qwen3 / "model.safetensors"), "pt") as f:
        real = sum(f.get_slice(k).get_shape()[0] * (f.get_slice(k).get_shape() + [1])[1] for k in f.keys())
    assert ModelShape.from_dir(tiny_qwen3).params() == real
    assert 490e6 < SHAPE.params() < 500e6  # Qwen2.5-0.5B: 494M
    # LoRA: r x (in + out) per adapted linear, per layer; a regex targets a subset
    h, kv, i = 896, 2 * 64, 4864
    assert SHAPE.lora_params(8, "q_proj|v_proj") == 24 * 8 * ((h + h) + (h + kv))
    assert SHAPE.lora_params(8, "all-linear") == 24 * 8 * (2 * (h + h) + 2 * (h + kv) + 2 * (h + i) + (i + h))


def test_estimate_components():
    e = estimate(SHAPE, full())
    assert e["logits"] == 3 * 8 * 1024 * 151936 * 4  # batch x seq x vocab x fp32, LOGIT_COPIES times
    assert e["gradients"] == 4 * SHAPE.params() and e["optimizer"] == 8 * SHAPE.params()  # AdamW: 2 fp32 states
    lora = estimate(SHAPE, full(lora_r=16))
    assert lora["optimizer"] == 8 * SHAPE.lora_params(16, "all-linear") and lora["weights"] < e["weights"]
    ckpt = estimate(SHAPE, full(gradient_checkpointing=True))
    assert ckpt["activations"] < e["activations"] / 5 and ckpt["logits"] == e["logits"]
    assert estimate(SHAPE, full(per_device=4))["logits"] == e["logits"] // 2
    assert e["total"] == sum(v for k, v in e.items() if k != "total")
    fsdp = estimate(SHAPE, full(shards=4))  # FSDP: weights, gradients and optimizer state split 4 ways
    assert fsdp["optimizer"] == e["optimizer"] // 4 and fsdp["activations"] == e["activations"]


def test_feasible_plan_is_unchanged():
    plan = full()
    assert fit(SHAPE, plan, 200 * GB, [0, 8, 16]) == (plan, [])


def test_infeasible_order_checkpointing_then_accumulation_then_lora():
    plan = full()
    need = {name: estimate(SHAPE, p)["total"] for name, p in {
        "ckpt": replace(plan, gradient_checkpointing=True),
        "ckpt_b2": replace(plan, gradient_checkpointing=True, per_device=2),
        "ckpt_b1": replace(plan, gradient_checkpointing=True, per_device=1),
        "lora": replace(plan, gradient_checkpointing=True, per_device=1, lora_r=8)}.items()}
    # just enough for checkpointing alone
    p, changes = fit(SHAPE, plan, need["ckpt"], [0, 8, 16])
    assert p == replace(plan, gradient_checkpointing=True) and len(changes) == 1
    assert changes[0].startswith("gradient_checkpointing: false -> true (estimate ")
    # checkpointing and a per-device batch of 2 (8 -> 4 -> 2; accumulation makes up the rest)
    p, changes = fit(SHAPE, plan, need["ckpt_b2"], [0, 8, 16])
    assert (p.gradient_checkpointing, p.per_device, p.lora_r) == (True, 2, 0)
    assert [c.split(":")[0] for c in changes] == ["gradient_checkpointing", "per_device_batch_size", "per_device_batch_size"]
    assert "same effective batch" in changes[1]
    # full fine-tuning does not fit at batch 1: LoRA with the smallest positive rank of the space
    p, changes = fit(SHAPE, plan, need["lora"], [32, 0, 16, 8])
    assert (p.gradient_checkpointing, p.per_device, p.lora_r) == (True, 1, 8)
    assert changes[-1].startswith("lora_r: 0 -> 8 (LoRA instead of full fine-tuning")
    assert need["lora"] < need["ckpt_b1"]


def test_nothing_fits_is_a_clear_error():
    with pytest.raises(MemoryPreflightError, match="does not fit even after .*lower max_seq_length"):
        fit(SHAPE, full(), 100 * MB, [0, 8])
    with pytest.raises(MemoryPreflightError, match="propose.space.lora_r \\[0\\] has no positive rank"):
        fit(SHAPE, full(per_device=1), estimate(SHAPE, full(per_device=1, gradient_checkpointing=True))["total"] - 1, [0])
    with pytest.raises(MemoryPreflightError, match="config.json: memory preflight needs integer \\['vocab_size'\\]"):
        ModelShape.from_config({k: v for k, v in QWEN.items() if k != "vocab_size"})


def test_preflight_rewrites_the_job_and_keeps_the_effective_batch(smoke_cfg, tiny_qwen3):
    from pipeline.config import HParams
    from pipeline.train.worker import batch_layout

    cfg = smoke_cfg("train.per_device_batch_size=8")
    hp = HParams(learning_rate=1e-4, epochs=1, lora_r=0, lora_alpha=16, lora_dropout=0.0, batch_size=16,
                 max_seq_length=1024, warmup_ratio=0.0, num_examples=16, math_fraction=1.0, synth_temperature=0.8)
    shape = ModelShape.from_dir(tiny_qwen3)
    small = estimate(shape, Plan(0, 2, 1024, True, False))["total"]
    pre = preflight(cfg, hp, tiny_qwen3, device=("cpu", int(small / 0.9) + MB, 64 * GB))
    assert (pre.plan.gradient_checkpointing, pre.plan.per_device, pre.plan.lora_r) == (True, 2, 0)
    config, hparams = apply(pre, resolved_dict(cfg), {"lora_r": 0, "batch_size": 16})
    assert config["train"]["gradient_checkpointing"] is True and config["train"]["per_device_batch_size"] == 2
    assert batch_layout(16, 2, 1) == (2, 8)  # per-device 2 x accumulation 8 = the proposal's 16
    rec = pre.record()
    assert set(rec) >= {"estimate_mb", "device_mb", "changes"} and rec["estimate_mb"] <= rec["device_mb"]
    unchanged = preflight(cfg, hp, tiny_qwen3, device=("cpu", 64 * GB, 64 * GB))
    assert unchanged.changes == [] and apply(unchanged, resolved_dict(cfg), {"lora_r": 0})[0] == resolved_dict(cfg)


# -- measured (slow): a real CPU training run of tiny:qwen3 -------------------------------------------

MEASURE = r'''
import json, sys
import datasets, peft, torch, transformers, trl  # imported before the baseline: not training memory
from pipeline.train.worker import Job, train
def kb(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
base = kb("VmRSS")
train(Job.load(sys.argv[1]))
print("RESULT", json.dumps({"base_kb": base, "peak_kb": kb("VmHWM")}))
'''


@pytest.mark.slow
@pytest.mark.parametrize("lora_r", [8, 0])
def test_estimate_matches_the_measured_peak_of_a_cpu_run(smoke_cfg, tiny_qwen3, tmp_path, lora_r):
    """Tolerance: measured peak RSS increase within [estimate / 2, estimate * 1.25]. The estimate is
    meant as a safe upper bound (LOGIT_COPIES=3 counts the worst moment of the loss; the allocator
    may free a copy before the next is made, and trl's metrics are chunked), so it may run up to 2x
    high; it must never be far below what training really took, or the preflight would let an
    infeasible plan through. Every row is longer than max_seq_length, so each batch is exactly
    per_device x max_seq_length tokens, the size the estimate assumes."""
    cfg = smoke_cfg("train.max_steps=2", "train.save_steps=100", "train.logging_steps=1", "train.report_to=none")
    hp = {"learning_rate": 1e-3, "epochs": 1, "lora_r": lora_r, "lora_alpha": 16, "lora_dropout": 0.0,
          "batch_size": 2, "max_seq_length": 512, "warmup_ratio": 0.0, "num_examples": 8, "math_fraction": 1.0,
          "synth_temperature": 0.8}
    long = " ".join(str(j) for j in range(1500))  # > 512 tokens: truncated to max_seq_length
    write_jsonl(tmp_path / "sft.jsonl", [{"prompt": [{"role": "user", "content": f"Count {i}"}],
                                          "completion": [{"role": "assistant", "content": long}]} for i in range(4)])
    job = atomic_write_json(tmp_path / "job.json", {
        "config": resolved_dict(cfg), "hparams": hp, "init_dir": str(tiny_qwen3), "out": str(tmp_path / "train"),
        "phases": [{"method": "sft", "data": str(tmp_path / "sft.jsonl"), "val": None}]})
    res = subprocess.run([sys.executable, "-c", MEASURE, str(job)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, res.stderr[-3000:]
    m = json.loads(line[0][len("RESULT "):])
    measured = (m["peak_kb"] - m["base_kb"]) * 1024
    est = estimate(ModelShape.from_dir(tiny_qwen3), Plan(lora_r=lora_r, per_device=2, seq=512,
                                                         gradient_checkpointing=False, bf16=False))["total"]
    assert est / 2 <= measured <= est * 1.25, f"measured {measured / MB:.0f} MB, estimated {est / MB:.0f} MB"


def test_train_stage_writes_the_fitted_plan_into_its_job(smoke_cfg, tiny_qwen3, monkeypatch):
    """prepare_job (the train stage, before the worker starts) writes the changed plan into job.json and
    memory_preflight.json (which the stage copies into its manifest's info); a resume gets the same."""
    from pipeline.infra.io import read_json
    from pipeline.train import memory
    from pipeline.train.stage import prepare_job
    from tests.support.train import arithmetic_rows, make_ctx

    cfg = smoke_cfg()
    hp = {"lora_r": 0, "batch_size": 2, "max_seq_length": 1024}  # full fine-tuning, per-device 2
    shape = ModelShape.from_dir(tiny_qwen3)
    need = estimate(shape, Plan(0, 2, 1024, True, False))["total"]  # fits only with checkpointing
    monkeypatch.setattr(memory, "device_memory", lambda: ("cpu", int(need / memory.HEADROOM) + MB, 64 * GB))
    ctx = make_ctx(cfg, arithmetic_rows(4), hp)
    _, job, _ = prepare_job(ctx)
    assert job.config["train"]["gradient_checkpointing"] is True and job.hparams["lora_r"] == 0
    rec = read_json(ctx.out / memory.FILE)
    assert [c.split(":")[0] for c in rec["changes"]] == ["gradient_checkpointing"]
    assert rec["estimate_mb"] <= rec["device_mb"] and rec["plan"]["gradient_checkpointing"] is True
    assert prepare_job(ctx)[1] == job  # the resumed stage makes the same change, not the crash
