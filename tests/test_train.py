"""Train stage: data checks, loss masking, launch commands (fast); real training on tiny models (slow)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import arithmetic_rows, chat, make_ctx  # noqa: E402

from pipeline.train import TrainDataError, prepare_job, run  # noqa: E402
from pipeline.train.launch import LaunchError, worker_command  # noqa: E402
from pipeline.train.worker import batch_layout, build_sft_trainer, drop_incomplete, latest_complete  # noqa: E402


# -- bad input ----------------------------------------------------------------------------------------

def test_missing_proposal_is_a_clear_error(smoke_cfg):
    ctx = make_ctx(smoke_cfg(), arithmetic_rows(4), hparams=None)
    with pytest.raises(FileNotFoundError, match="accepted.json is missing"):
        run(smoke_cfg(), ctx)


def test_missing_hparam_field_is_named(smoke_cfg):
    cfg = smoke_cfg()
    ctx = make_ctx(cfg, arithmetic_rows(4), hparams={})
    p = ctx.gen.path / "propose" / "accepted.json"
    p.write_text(json.dumps({"hparams": {"learning_rate": 1e-3}}))
    with pytest.raises(ValueError, match="missing .*epochs"):
        run(cfg, ctx)


@pytest.mark.parametrize("rows, match", [
    ([], "0 usable training examples"),
    ([{"messages": [{"role": "user", "content": "hi"}]}], "user and an assistant turn"),
    ([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}], "non-empty 'assistant'"),
])
def test_bad_training_data_is_rejected(smoke_cfg, rows, match):
    cfg = smoke_cfg()
    with pytest.raises(TrainDataError, match=match):
        prepare_job(cfg, make_ctx(cfg, rows, hparams={}))


def test_too_long_examples_are_dropped_and_counted(smoke_cfg):
    cfg = smoke_cfg("train.min_examples=2")
    rows = arithmetic_rows(3) + [chat("Long?", "word " * 400)]
    _, job, data = prepare_job(cfg, make_ctx(cfg, rows, hparams={"max_seq_length": 64}))
    assert data["sft"] == {**data["sft"], "read": 4, "used": 3, "dropped_too_long": 1}
    # when everything is too long the stage refuses to run instead of training zero steps
    with pytest.raises(TrainDataError, match="dropped 4 longer than max_seq_length=8"):
        prepare_job(cfg, make_ctx(cfg, rows, hparams={"max_seq_length": 8}))


def test_missing_training_file_and_chat_template(smoke_cfg, tmp_path, tiny_qwen3):
    cfg = smoke_cfg()
    with pytest.raises(TrainDataError, match="does not exist"):
        prepare_job(cfg, make_ctx(cfg, None, hparams={}))
    from transformers import AutoTokenizer

    from pipeline.train.data import require_chat_template

    tok = AutoTokenizer.from_pretrained(str(tiny_qwen3))
    tok.chat_template = None
    with pytest.raises(TrainDataError, match="no chat template"):
        require_chat_template(tok, tiny_qwen3)


def test_dpo_enabled_without_pairs_is_an_error(smoke_cfg):
    cfg = smoke_cfg("train.dpo.enabled=true")
    with pytest.raises(TrainDataError, match="pairs.jsonl does not exist"):
        prepare_job(cfg, make_ctx(cfg, arithmetic_rows(4), hparams={}))


# -- masking --------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["tiny:qwen3", "tiny:llama"])
def test_loss_only_on_the_answer_including_end_of_turn(smoke_cfg, spec):
    """Prompt tokens get label -100; every answer token is a label, and so is <|im_end|> even where it is
    also the pad token (SmolLM2's tokenizer, tiny:llama)."""
    cfg = smoke_cfg(f"model={spec}", "train.report_to=none")
    _, job, _ = prepare_job(cfg, make_ctx(cfg, [chat("What is 2 + 3?", "5"), chat("Say hi", "hi there")], hparams={}))
    trainer = build_sft_trainer(job)
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
        assert cmd[-3:] == ["pipeline.train", str(job)][:0] + ["-m", "pipeline.train", str(job)][-3:]
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
