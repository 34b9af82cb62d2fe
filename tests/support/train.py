"""Train-stage helpers: a lineage in tmp with propose/ and synth/ outputs written by hand."""

from __future__ import annotations

from pipeline.infra.io import atomic_write_json, write_jsonl
from pipeline.lineage import Lineage
from pipeline.lineage.runner import StageContext

HPARAMS = {
    "learning_rate": 1e-3, "epochs": 1, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "batch_size": 2,
    "max_seq_length": 128, "warmup_ratio": 0.0, "num_examples": 16, "math_fraction": 1.0, "synth_temperature": 0.8,
}


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], "meta": {"source": "test"}}


def arithmetic_rows(n: int) -> list[dict]:
    return [chat(f"What is {i} + {i + 1}?", f"{i} + {i + 1} = {2 * i + 1}. #### {2 * i + 1}") for i in range(n)]


def make_ctx(cfg, rows: list[dict] | None, hparams: dict | None = None, pairs: list[dict] | None = None,
             gen_index: int = 1) -> StageContext:
    """A lineage under cfg.paths.root initialised like pipeline.loop.generation.run, with gen_001 inputs."""
    from pipeline.engine import models

    lineage = Lineage(cfg.paths.root, cfg.paths.lineage)
    lineage.init(cfg.model.spec, models.resolve(cfg.model.spec, cfg.paths.models))
    gen = lineage.gen(gen_index)
    if hparams is not None:
        atomic_write_json(gen.path / "propose" / "accepted.json", {"hparams": {**HPARAMS, **hparams}, "source": "test"})
    if rows is not None:
        write_jsonl(gen.path / "synth" / "train.jsonl", rows)
    if pairs is not None:
        write_jsonl(gen.path / "synth" / "pairs.jsonl", pairs)
    return StageContext(cfg=cfg, lineage=lineage, gen=gen, teacher=lineage.gen(0), stage="train")


LORA = {"learning_rate": 5e-3, "lora_r": 8, "lora_alpha": 16, "batch_size": 2, "epochs": 1}
