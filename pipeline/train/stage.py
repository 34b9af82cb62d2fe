"""Train stage: fine-tune the successor with trl (SFT, LoRA or full, optional DPO) and export it.

    python -m pipeline.generation                    # runs this stage inside a generation
    python -m pipeline.train <gen>/train/job.json    # the worker alone (what the stage launches)

`run(cfg, ctx)`:
1. reads the hyperparameters from `propose/accepted.json` and the data from `synth/train.jsonl`
   (and `synth/pairs.jsonl` with `train.dpo.enabled`), and checks them (pipeline.train.data);
   checks the plan against the device's memory and makes it fit (pipeline.train.memory);
2. writes `train/job.json` and runs pipeline.train.worker: in a child process by default
   (`train.isolate`), under accelerate/torchrun when `train.num_gpus > 1` (pipeline.train.launch);
   a restarted stage resumes from its newest complete checkpoint;
3. merges and writes `gen_NNN/model/` atomically with a model card (pipeline.train.export).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

from pipeline.config import Config, HParams, resolved_dict
from pipeline.stage import StageContext, StageResult
from pipeline.io import atomic_write_json, read_json, sha256_file, write_jsonl
from pipeline.models import check_model_dir
from pipeline.train.data import TrainDataError, prepare_pairs, prepare_sft, require_chat_template
from pipeline.train.export import write_model_dir
from pipeline.train import memory
from pipeline.train.launch import reap_stale_worker, run_worker
from pipeline.train.worker import Job, train

__all__ = ["run", "TrainDataError", "read_hparams", "prepare_job"]

log = logging.getLogger(__name__)


def read_hparams(ctx: StageContext) -> HParams:
    path = ctx.gen.path / "propose" / "accepted.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the propose stage must run before train (it writes the hyperparameters)")
    hp = read_json(path).get("hparams")
    names = set(HParams.__dataclass_fields__)
    if not isinstance(hp, dict) or not names <= set(hp):
        missing = sorted(names - set(hp or {}))
        raise ValueError(f"{path}: 'hparams' must hold every HParams field; missing {missing}")
    return HParams(**{k: hp[k] for k in names})


def init_dir(cfg: Config, ctx: StageContext) -> Path:
    return check_model_dir(ctx.base_model_dir if cfg.train.init_from == "base" else ctx.teacher.model_dir)


def prepare_job(cfg: Config, ctx: StageContext) -> tuple[Path, Job, dict]:
    """Check and convert the data, write `job.json`; returns (job path, job, data stats)."""
    from transformers import AutoTokenizer

    hp, start = read_hparams(ctx), init_dir(cfg, ctx)
    tok = AutoTokenizer.from_pretrained(str(start))
    require_chat_template(tok, start)
    kwargs = dict(cfg.model.chat_template_kwargs)
    synth = ctx.gen.path / "synth"
    sft_rows, stats = prepare_sft(synth / "train.jsonl", tok, hp.max_seq_length, cfg.train.min_examples, kwargs)
    data_dir = ctx.out / "data"
    write_jsonl(data_dir / "sft.jsonl", sft_rows)
    data = {"sft": stats}
    dpo_path = None
    if cfg.train.dpo.enabled:
        pairs, data["dpo"] = prepare_pairs(synth / "pairs.jsonl", tok, hp.max_seq_length, cfg.train.dpo.min_pairs, kwargs)
        dpo_path = str(write_jsonl(data_dir / "dpo.jsonl", pairs))
    pre = memory.preflight(cfg, hp, start)  # an infeasible plan gets checkpointing, accumulation or LoRA
    atomic_write_json(ctx.out / memory.FILE, pre.record())
    config, hparams = memory.apply(pre, resolved_dict(cfg), asdict(hp))
    job = Job(config=config, hparams=hparams, init_dir=str(start), out=str(ctx.out),
              sft_data=str(data_dir / "sft.jsonl"), dpo_data=dpo_path)
    path = atomic_write_json(ctx.out / "job.json", asdict(job))
    return path, job, data


def _card(cfg: Config, ctx: StageContext, job: Job, data: dict, phases: dict, inputs: dict) -> dict:
    base_spec = ctx.lineage.meta()["base_model_spec"]
    base = base_spec if cfg.train.init_from == "base" else f"{ctx.lineage.name}/{ctx.teacher.name}"
    synth_rel = f"{ctx.lineage.name}/{ctx.gen.name}/synth/train.jsonl"
    return {
        "base_model": base, "lineage": ctx.lineage.name, "generation": ctx.gen.name, "teacher": ctx.teacher.name,
        "init_from": cfg.train.init_from, "init_model": job.init_dir, "hparams": job.hparams, "data": data,
        "phases": phases, "dpo": asdict(cfg.train.dpo), "datasets": [synth_rel, "openai/gsm8k"],
        "data_sha256": inputs["train.jsonl"],
        "lineage_info": {"base model spec": base_spec, "teacher": ctx.teacher.name, "profile": cfg.profile,
                         "seed": cfg.train.seed, "accepted.json sha256": inputs["accepted.json"]},
    }


def run(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg
    t0 = time.time()
    reap_stale_worker(ctx.out)  # a worker a killed run left behind must stop before its dir is touched
    job_path, job, data = prepare_job(cfg, ctx)
    synth = ctx.gen.path / "synth"
    inputs = {"accepted.json": sha256_file(ctx.gen.path / "propose" / "accepted.json"),
              "train.jsonl": sha256_file(synth / "train.jsonl")}
    if job.dpo_data:
        inputs["pairs.jsonl"] = sha256_file(synth / "pairs.jsonl")
    names = ["sft", "dpo"] if job.dpo_data else ["sft"]
    done = all((ctx.out / p / "final" / "result.json").exists() for p in names)
    if cfg.train.isolate and not done:
        run_worker(job_path, cfg.train, ctx.out / "worker.log")
    phases = train(job) if not cfg.train.isolate else {p: read_json(ctx.out / p / "final" / "result.json") for p in names}
    lora = job.hparams["lora_r"] > 0
    card = _card(cfg, ctx, job, data, phases, inputs)
    write_model_dir(ctx.gen.model_dir, Path(job.init_dir), ctx.out, list(phases), lora,
                    dict(cfg.model.chat_template_kwargs), card)
    sft = phases["sft"]
    tokens = sum(p["tokens"] for p in phases.values())
    info = {
        "steps": {k: p["steps"] for k, p in phases.items()}, "examples": data, "wall_seconds": round(time.time() - t0, 2),
        "peak_memory_mb": max(p["peak_memory_mb"] for p in phases.values()), "device": sft["device"],
        "hparams": job.hparams, "resumed_from": {k: p["resumed_from"] for k, p in phases.items()},
        "batch": sft["batch"], "bf16": sft["bf16"], "attn_implementation": sft["attn_implementation"],
        "init_from": cfg.train.init_from, "init_model": job.init_dir, "model_dir": str(ctx.gen.model_dir),
        "losses": {k: p["losses"] for k, p in phases.items()},
        "memory_preflight": read_json(ctx.out / memory.FILE),
    }
    metrics = {"train.loss_first": sft["loss_first"], "train.loss_last": sft["loss_last"],
               "train.tokens_per_s": sft["tokens_per_s"]}
    if "dpo" in phases:
        metrics.update({"train.dpo_loss_first": phases["dpo"]["loss_first"], "train.dpo_loss_last": phases["dpo"]["loss_last"]})
    atomic_write_json(ctx.out / "summary.json", {"metrics": metrics, "info": info})
    return StageResult(metrics=metrics, info=info, tokens=tokens, inputs=inputs)
