"""Training throughput: our train stage vs a bare trl `SFTTrainer` script, same data and settings.

    .venv/bin/python -m scripts.bench_train            # prints the dict `bench()` returns
    make bench                                         # (the lead wires bench() into scripts.bench)

Both sides train the same LoRA SFT on the same prompt/completion rows (the ones our stage prepares),
same model, batch, length, learning rate, steps and seed, in this process, in alternating order so
machine load hits both alike; the best round of each side is compared (load only slows a round).
Tokens/s = non-padding tokens trained / the trainer's own training time, for both. Target: ratio
(ours / bare) >= 0.95.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = os.environ.get("BENCH_TRAIN_MODEL", "tiny:llama")
STEPS, ROUNDS, EXAMPLES = 20, 2, 64
HPARAMS = {"learning_rate": 1e-3, "epochs": 1, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "batch_size": 4,
           "max_seq_length": 256, "warmup_ratio": 0.0, "num_examples": EXAMPLES, "math_fraction": 1.0,
           "synth_temperature": 0.8}


def _compose(root: Path):
    from hydra import compose, initialize_config_dir

    from pipeline.config import to_config
    from pipeline.config.compose import prepare

    prepare()  # the built-in methods' knobs in the schema
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        return to_config(compose("config", [
            f"model={MODEL}", "experiment=smoke", f"paths.root={root}", f"train.max_steps={STEPS}",
            f"train.save_steps={STEPS}", "train.report_to=none", "train.isolate=false", "train.per_device_batch_size=4",
            "train.logging_steps=5",
        ]))


def _rows(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"Tom has {i} apples and buys {i + 3} more. How many now?"},
                         {"role": "assistant", "content": f"Tom has {i} + {i + 3} = {2 * i + 3} apples. #### {2 * i + 3}"}],
             "meta": {}} for i in range(n)]


def _ctx(root: Path):
    from pipeline.engine import models
    from pipeline.lineage.runner import StageContext
    from pipeline.infra.io import atomic_write_json, write_jsonl
    from pipeline.lineage import Lineage

    cfg = _compose(root)
    lineage = Lineage(cfg.paths.root, cfg.paths.lineage)
    lineage.init(cfg.model.spec, models.resolve(cfg.model.spec, cfg.paths.models))
    gen = lineage.gen(1)
    atomic_write_json(gen.path / "propose" / "accepted.json", {"hparams": HPARAMS})
    write_jsonl(gen.path / "synth" / "train.jsonl", _rows(EXAMPLES))
    return cfg, StageContext(cfg=cfg, lineage=lineage, gen=gen, teacher=lineage.gen(0), stage="train")


def prepared_rows(root: Path) -> Path:
    """The prompt/completion rows our stage trains on (the bare script gets the very same file)."""
    from pipeline.train.stage import prepare_job

    cfg, ctx = _ctx(root)
    return Path(prepare_job(ctx)[1].phases[0]["data"])  # train.method=sft: the one phase


def ours(root: Path) -> tuple[float, float]:
    """Our stage end to end; returns (trainer tokens/s, stage wall seconds)."""
    from pipeline.train.stage import run

    cfg, ctx = _ctx(root)
    t0 = time.perf_counter()
    res = run(ctx)
    return res.metrics["train.tokens_per_s"], time.perf_counter() - t0


def bare(root: Path, data: Path) -> tuple[float, float]:
    """What a user would write with trl directly; returns (tokens/s, script wall seconds)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from pipeline.engine import models
    from pipeline.infra.io import read_jsonl

    t0 = time.perf_counter()
    model_dir = str(models.resolve(MODEL))
    # the same checkpointing as our stage (one save at the last step): resumable training costs that much
    args = SFTConfig(
        output_dir=str(root / "bare"), max_steps=STEPS, per_device_train_batch_size=4, gradient_accumulation_steps=1,
        learning_rate=HPARAMS["learning_rate"], max_length=HPARAMS["max_seq_length"], logging_steps=5,
        save_strategy="steps", save_steps=STEPS, save_total_limit=2, report_to=[], seed=0, bf16=False,
        gradient_checkpointing=False,
        include_num_input_tokens_seen="non_padding", disable_tqdm=True, dataloader_pin_memory=False,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), args=args,
        train_dataset=Dataset.from_list(read_jsonl(data)), processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    out = trainer.train()
    return trainer.state.num_input_tokens_seen / out.metrics["train_runtime"], time.perf_counter() - t0


def bench() -> dict:
    ours_tps, bare_tps, ours_wall, bare_wall = [], [], [], []
    with tempfile.TemporaryDirectory() as d:
        data = prepared_rows(Path(d) / "rows")
        for r in range(ROUNDS):
            for side in (("ours", "bare") if r % 2 else ("bare", "ours")):  # alternate who goes first
                if side == "ours":
                    tps, wall = ours(Path(d) / f"ours{r}")
                    ours_tps.append(tps)
                    ours_wall.append(wall)
                else:
                    tps, wall = bare(Path(d) / f"bare{r}", data)
                    bare_tps.append(tps)
                    bare_wall.append(wall)
    # best round per side: on a shared machine, load only ever slows a round down
    o, b = max(ours_tps), max(bare_tps)
    return {
        "name": "train_tokens_per_s", "ratio": round(o / b, 3), "target": 0.95, "model": MODEL, "steps": STEPS,
        "ours_tokens_per_s": round(o, 1), "bare_tokens_per_s": round(b, 1),
        "ours_rounds": [round(x, 1) for x in ours_tps], "bare_rounds": [round(x, 1) for x in bare_tps],
        "ours_stage_wall_s": round(min(ours_wall), 1),  # + data checks, merge, model card
        "bare_script_wall_s": round(min(bare_wall), 1),
    }


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    print(json.dumps(bench(), indent=2))
