"""Train stage: data checks, loss masking, launch commands (fast); real training on tiny models (slow)."""

from __future__ import annotations

import json
import sys

import pytest

from pipeline.train.stage import TrainDataError, prepare_job, run
from pipeline.train.launch import LaunchError, worker_command
from pipeline.train.worker import batch_layout, build_trainer, drop_incomplete, latest_complete
from tests.support.train import LORA, arithmetic_rows, chat, make_ctx


# -- fixtures: a lineage in tmp with propose/ and synth/ outputs written by hand ------------------------

# -- bad input ----------------------------------------------------------------------------------------

def test_missing_proposal_is_a_clear_error(smoke_cfg):
    ctx = make_ctx(smoke_cfg(), arithmetic_rows(4), hparams=None)
    with pytest.raises(FileNotFoundError, match="accepted.json is missing"):
        run(ctx)


def test_missing_hparam_field_is_named(smoke_cfg):
    cfg = smoke_cfg()
    ctx = make_ctx(cfg, arithmetic_rows(4), hparams={})
    p = ctx.gen.path / "propose" / "accepted.json"
    p.write_text(json.dumps({"hparams": {"learning_rate": 1e-3}}))
    with pytest.raises(ValueError, match="missing .*epochs"):
        run(ctx)


@pytest.mark.parametrize("rows, match", [
    ([], "0 usable training examples"),
    ([{"messages": [{"role": "user", "content": "hi"}]}], "user and an assistant turn"),
    ([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}], "non-empty 'assistant'"),
])
def test_bad_training_data_is_rejected(smoke_cfg, rows, match):
    cfg = smoke_cfg()
    with pytest.raises(TrainDataError, match=match):
        prepare_job(make_ctx(cfg, rows, hparams={}))


def test_too_long_examples_are_dropped_and_counted(smoke_cfg):
    cfg = smoke_cfg("train.min_examples=2")
    rows = arithmetic_rows(3) + [chat("Long?", "word " * 400)]
    _, job, data = prepare_job(make_ctx(cfg, rows, hparams={"max_seq_length": 64}))
    assert data["sft"] == {**data["sft"], "read": 4, "used": 3, "dropped_too_long": 1}
    # when everything is too long the stage refuses to run instead of training zero steps
    with pytest.raises(TrainDataError, match="dropped 4 longer than max_seq_length=8"):
        prepare_job(make_ctx(cfg, rows, hparams={"max_seq_length": 8}))


def test_missing_training_file_and_chat_template(smoke_cfg, tmp_path, tiny_qwen3):
    cfg = smoke_cfg()
    with pytest.raises(TrainDataError, match="does not exist"):
        prepare_job(make_ctx(cfg, None, hparams={}))
    from transformers import AutoTokenizer

    from pipeline.train.data import require_chat_template

    tok = AutoTokenizer.from_pretrained(str(tiny_qwen3))
    tok.chat_template = None
    with pytest.raises(TrainDataError, match="no chat template"):
        require_chat_template(tok, tiny_qwen3)


def test_dpo_without_pairs_is_an_error(smoke_cfg):
    cfg = smoke_cfg("train.method=sft+dpo")
    with pytest.raises(TrainDataError, match="pairs.jsonl does not exist"):
        prepare_job(make_ctx(cfg, arithmetic_rows(4), hparams={}))


# -- masking --------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["tiny:qwen3", "tiny:llama"])
def test_loss_only_on_the_answer_including_end_of_turn(smoke_cfg, spec):
    """Prompt tokens get label -100; every answer token is a label, and so is <|im_end|> even where it is
    also the pad token (SmolLM2's tokenizer, tiny:llama)."""
    cfg = smoke_cfg(f"model={spec}", "train.report_to=none")
    _, job, _ = prepare_job(make_ctx(cfg, [chat("What is 2 + 3?", "5"), chat("Say hi", "hi there")], hparams={}))
    trainer = build_trainer(job)
    tok = trainer.processing_class
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    for ex, answer in zip(trainer.train_dataset, ["5", "hi there"]):
        ids, labels = ex["input_ids"], ex["labels"]
        trained = [t for t, lab in zip(ids, labels) if lab != -100]
        assert tok.decode(trained).strip() == answer + "<|im_end|>"
        first = labels.index(next(lab for lab in labels if lab != -100))
        assert all(lab == -100 for lab in labels[:first]) and "user" in tok.decode(ids[:first])
    batch = trainer.data_collator([dict(x) for x in trainer.train_dataset])  # pads with the pad token
    assert (batch["labels"] == eot).sum() == 2  # one end-of-turn label per example survives padding


def test_packing_builds_padding_free_rows_with_answer_labels(smoke_cfg):
    cfg = smoke_cfg("train.packing=true", "train.report_to=none")
    _, job, _ = prepare_job(make_ctx(cfg, arithmetic_rows(6), hparams={"max_seq_length": 128}))
    trainer = build_trainer(job)
    rows = list(trainer.train_dataset)
    assert len(rows) < 6 and sum(len(r["seq_lengths"]) for r in rows) == 6  # 6 examples packed into fewer rows
    batch = trainer.data_collator(rows[:2])
    assert "attention_mask" not in batch and batch["position_ids"].shape == batch["input_ids"].shape
    assert (batch["labels"] != -100).sum() > 0 and (batch["labels"] == -100).sum() > 0


# -- launch and checkpoints ---------------------------------------------------------------------------

def test_worker_commands(smoke_cfg, tmp_path):
    job = tmp_path / "job.json"
    assert worker_command(job, smoke_cfg().train) == [sys.executable, "-m", "pipeline.train", str(job)]
    t = smoke_cfg("train.num_gpus=2", "train.isolate=true", "train.launcher=torchrun").train
    assert worker_command(job, t) == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                      "--nproc_per_node", "2", "-m", "pipeline.train", str(job)]
    for name in ("ddp", "fsdp"):
        t = smoke_cfg("train.num_gpus=8", "train.isolate=true", f"train.accelerate_config={name}").train
        cmd = worker_command(job, t, port=29555)
        assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
        assert cmd[cmd.index("--config_file") + 1].endswith(f"conf/accelerate/{name}.yaml")
        assert cmd[cmd.index("--num_processes") + 1] == "8" and cmd[cmd.index("--main_process_port") + 1] == "29555"
        assert cmd[-3:] == ["-m", "pipeline.train", str(job)]
    with pytest.raises(LaunchError, match="known: \\['ddp', 'fsdp'\\]"):
        worker_command(job, smoke_cfg("train.num_gpus=2", "train.isolate=true", "train.accelerate_config=zero9").train)


def test_multi_gpu_requires_isolation(smoke_cfg):
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="train.isolate"):
        smoke_cfg("train.num_gpus=2", "train.isolate=false")


def test_batch_layout_keeps_the_effective_batch():
    assert batch_layout(8, 4, 1) == (4, 2)
    assert batch_layout(64, 8, 8) == (8, 1)
    assert batch_layout(2, 4, 1) == (2, 1)
    assert batch_layout(16, 4, 2) == (4, 2)


def test_only_marked_checkpoints_count(tmp_path):
    for step, marked in ((2, True), (4, True), (6, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if marked:
            (tmp_path / f"checkpoint-{step}" / "COMPLETE").write_text("{}")
    best = latest_complete(tmp_path)
    assert best.name == "checkpoint-4"
    assert drop_incomplete(tmp_path, best) == ["checkpoint-6"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert latest_complete(tmp_path / "nothing") is None


# -- real training (slow) -----------------------------------------------------------------------------

SLOW_ARGS = ("train.max_steps=6", "train.save_steps=2", "train.logging_steps=1", "train.report_to=none")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, models_dir):
    """One uninterrupted LoRA run on 6 arithmetic examples (6 steps, checkpoints every 2)."""
    from tests.support import compose

    cfg = compose(["model=tiny:qwen3", "experiment=smoke", f"paths.root={tmp_path_factory.mktemp('ref')}",
                   f"paths.models={models_dir}", *SLOW_ARGS])
    ctx = make_ctx(cfg, arithmetic_rows(6), LORA)
    return cfg, ctx, run(ctx)


@pytest.mark.slow
def test_lora_sft_loss_falls_weights_change_and_model_dir_is_complete(reference_run):
    import torch
    from safetensors.torch import load_file

    from pipeline.engine.models import check_model_dir

    cfg, ctx, res = reference_run
    assert res.metrics["train.loss_last"] < res.metrics["train.loss_first"]
    assert res.info["steps"] == {"sft": 6} and res.tokens > 0 and res.metrics["train.tokens_per_s"] > 0
    assert res.info["examples"]["sft"]["used"] == 6 and res.info["resumed_from"] == {"sft": None}
    model_dir = check_model_dir(ctx.gen.model_dir)  # manifest checksums verify
    base = load_file(str(ctx.base_model_dir / "model.safetensors"))
    merged = load_file(str(model_dir / "model.safetensors"))
    assert set(merged) == set(base)  # merged: plain weights, no lora_A/lora_B keys
    changed = [k for k in base if not torch.equal(base[k], merged[k])]
    assert any("q_proj" in k for k in changed) and any("down_proj" in k for k in changed)
    card = (model_dir / "README.md").read_text()
    from huggingface_hub import ModelCard

    data = ModelCard(card).data  # the Hub's own parser
    spt = data.to_dict()["self_post_training"]
    assert data.base_model is None and spt["base model spec"] == "tiny:qwen3"  # random weights: no hub id
    assert data.datasets == ["openai/gsm8k"] and spt["data"][0]["path"].startswith(f"{ctx.gen.name}/")
    assert spt["parent"] == "gen_000" and spt["hparams"]["lora_r"] > 0 and str(ctx.gen.path) not in card
    assert "6 examples read, 6 used" in card
    gen = json.loads((model_dir / "generation_config.json").read_text())
    assert 151645 in gen["eos_token_id"]  # <|im_end|>: generation stops at the end of the turn
    for f in ("chat_template.jinja", "tokenizer.json"):
        assert (model_dir / f).exists()
    assert not list(ctx.gen.path.glob(".model.*"))  # no temp dir left behind


@pytest.mark.slow
def test_killed_run_resumes_at_its_checkpoint_with_the_same_loss_curve(reference_run, smoke_cfg):
    """A crash after step 5 leaves complete checkpoint-4 (plus a half-written checkpoint-6 and model dir
    we fake): the rerun resumes at step 4, continues to step 6, reproduces the uninterrupted loss curve,
    and replaces the partial model dir."""
    from transformers import TrainerCallback

    from pipeline.engine.models import check_model_dir
    from pipeline.train.worker import train

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 5:
                raise KeyboardInterrupt("simulated kill")

    _, ref_ctx, ref = reference_run
    cfg = smoke_cfg(*SLOW_ARGS)
    ctx = make_ctx(cfg, arithmetic_rows(6), LORA)
    _, job, _ = prepare_job(ctx)
    with pytest.raises(KeyboardInterrupt):
        train(job, callbacks=[Crash()])
    ckpts = ctx.out / "sft" / "checkpoints"
    assert latest_complete(ckpts).name == "checkpoint-4"
    (ckpts / "checkpoint-6").mkdir()  # a save that died half-way: no COMPLETE marker
    (ckpts / "checkpoint-6" / "trainer_state.json").write_text("{trunc")
    ctx.gen.model_dir.mkdir()  # and a model dir from an interrupted export: no manifest
    (ctx.gen.model_dir / "config.json").write_text("{")
    (ctx.gen.path / ".model.abc123").mkdir()
    res = run(ctx)
    assert res.info["resumed_from"] == {"sft": "checkpoint-4"}
    assert res.info["steps"] == {"sft": 6}
    assert res.info["losses"]["sft"] == pytest.approx(ref.info["losses"]["sft"], rel=1e-5)  # same seed, same curve
    assert res.metrics["train.loss_last"] == pytest.approx(ref.metrics["train.loss_last"], rel=1e-5)
    check_model_dir(ctx.gen.model_dir)
    assert not (ctx.gen.path / ".model.abc123").exists()


@pytest.mark.slow
def test_merged_model_reproduces_a_memorized_answer_in_hf_and_vllm(smoke_cfg):
    """LoRA at a high learning rate memorizes one short answer; the merged dir answers it greedily in
    both engines and stops at the end of the turn."""
    from pipeline.engine import GenParams, open_engine

    cfg = smoke_cfg("train.max_steps=14", "train.save_steps=100", "train.report_to=none")
    ctx = make_ctx(cfg, [chat("What is 2 + 3?", "2 + 3 = 5")],
                   {"learning_rate": 1e-2, "lora_r": 16, "lora_alpha": 32, "batch_size": 1, "epochs": 1})
    run(ctx)
    prompt = [[{"role": "user", "content": "What is 2 + 3?"}]]
    for backend in ("hf", "vllm"):
        engine_cfg = smoke_cfg(f"engine.backend={backend}").engine
        with open_engine(ctx.gen.model_dir, cfg.model, engine_cfg, seed=0) as eng:
            out = eng.generate(prompt, GenParams(max_tokens=16))[0]
        assert (out.texts[0].strip(), out.finish_reasons[0]) == ("2 + 3 = 5", "stop"), backend


@pytest.mark.slow
def test_dpo_after_sft_on_constructed_pairs(smoke_cfg):
    """SFT then DPO (+ NLL on chosen) on correct-vs-wrong pairs: both phases train, the exported model
    merges both adapters, and DPO moves the policy towards the chosen answers (reward margin > 0)."""
    pairs = [{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
              "chosen": [{"role": "assistant", "content": f"#### {2 * i}"}],
              "rejected": [{"role": "assistant", "content": f"#### {2 * i + 7}"}]} for i in range(4)]
    cfg = smoke_cfg("train.max_steps=2", "train.method=sft+dpo", "train.dpo.max_steps=4", "train.dpo.learning_rate=5e-3",
                    "train.logging_steps=1", "train.report_to=none")
    ctx = make_ctx(cfg, arithmetic_rows(4), LORA, pairs=pairs)
    res = run(ctx)
    assert res.info["steps"] == {"sft": 2, "dpo": 4}
    assert res.info["examples"]["dpo"]["used"] == 4
    assert {"train.dpo_loss_first", "train.dpo_loss_last"} <= set(res.metrics)
    assert json.loads((ctx.gen.model_dir / "manifest.json").read_text())["phases"] == ["sft", "dpo"]
    state = json.loads((ctx.out / "dpo" / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    margins = [h["rewards/margins"] for h in state["log_history"] if "rewards/margins" in h]
    assert margins[-1] > 0
    assert "DPO with an NLL term" in (ctx.gen.model_dir / "README.md").read_text()


@pytest.mark.slow
def test_two_process_ddp_on_cpu_with_torchrun(smoke_cfg):
    """train.num_gpus=2 with torchrun: a real 2-process gloo DDP run of the worker in child processes."""
    cfg = smoke_cfg("train.max_steps=2", "train.num_gpus=2", "train.isolate=true", "train.launcher=torchrun",
                    "train.report_to=none")
    ctx = make_ctx(cfg, arithmetic_rows(8), {**LORA, "batch_size": 4})
    res = run(ctx)
    assert res.info["batch"] == {"per_device": 2, "world": 2, "accumulation": 1}
    assert res.info["steps"] == {"sft": 2}
    assert "torch.distributed.run" in (ctx.out / "worker.log").read_text()
    assert (ctx.gen.model_dir / "manifest.json").exists()
