"""Train stage: fine-tune the successor with the `train.method` chain (LoRA or full) and export it.

    python -m pipeline.loop                    # runs this stage inside a generation
    python -m pipeline.loop train.method=sft+dpo
    python -m pipeline.loop train.method=sft+grpo   # label-free RL (methods/grpo.py)
    python -m pipeline.train <gen>/train/job.json    # the worker alone (what the stage launches)

`run(ctx)`:
1. reads the hyperparameters from `propose/accepted.json` (pipeline.propose.accepted) and, for each method
   of the chain (pipeline.train.methods), its dataset (`synth/train.jsonl`, `synth/pairs.jsonl`,
   `synth/prompts.jsonl`, ...), which the method checks and converts; a candidate whose num_examples/math_fraction differ from
   the shared mixture's trains on its own draw, `train/data/mixture.jsonl` (pipeline.train.mixture);
   the chat mixture's rows per origin and data red flags are recorded (`mixture` in the manifest), and a
   mixture the label guard refused stops the stage (the loop rejects such a candidate before training);
   the validation rows (`synth/val.jsonl`) choose the checkpoint by eval loss; the plan is checked
   against the device's memory and made to fit (pipeline.train.memory);
2. writes `train/job.json` and runs pipeline.train.worker: in a child process by default
   (`train.isolate`), under accelerate/torchrun when `train.num_gpus > 1` (pipeline.train.launch);
   each phase starts from the previous one's result and runs the optimizer steps
   pipeline.train.budget plans (epochs, `train.min_steps`, `train.max_steps`: `step_rule` in the
   manifest, `train.steps` in the ledger, and `train.exported_step`: the steps behind the exported
   weights, each phase's best-validation checkpoint); a restarted stage resumes from its newest
   complete checkpoint with the memory plan of its first start;
3. merges and writes `gen_NNN/model/` atomically with a model card (pipeline.train.export).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

from pipeline.engine import models
from pipeline.propose import accepted as proposal
from pipeline.config import resolved_dict
from pipeline.infra.io import atomic_write_json, read_json, sha256_file, write_jsonl
from pipeline.engine.models import check_model_dir
from pipeline.evals import training_datasets
from pipeline.lineage.runner import StageContext, StageResult
from pipeline.train import memory, methods, mixture
from pipeline.train.data import TrainDataError, require_chat_template
from pipeline.train.export import exported_step, model_card, write_model_dir
from pipeline.train.launch import reap_stale_worker, run_worker
from pipeline.train.methods.base import CHAT
from pipeline.train.worker import RESULT, Job, train

__all__ = ["run", "TrainDataError", "prepare_job"]

log = logging.getLogger(__name__)


def init_dir(ctx: StageContext) -> Path:
    return check_model_dir(ctx.base_model_dir if ctx.cfg.train.init_from == "base" else ctx.teacher.model_dir)


def prepare_job(ctx: StageContext) -> tuple[Path, Job, dict]:
    """This candidate's chat mixture (pipeline.train.mixture), each phase's data and validation rows
    checked and converted, `job.json` written; returns (job path, job, {method: data stats}), the stats
    with "file" (the source, relative to the generation dir), "val" and, for chat data, "mixture"."""
    cfg = ctx.cfg
    from transformers import AutoTokenizer

    hp, start = proposal.read(ctx.gen).typed_hparams(), init_dir(ctx)
    tok = AutoTokenizer.from_pretrained(str(start))
    require_chat_template(tok, start)
    chain = methods.chain(cfg)
    if any(m.data == CHAT for m in chain):
        chat_file, mix = mixture.chat_data(cfg, ctx.lineage, ctx.gen, ctx.teacher, hp, ctx.out / "data")
        if mix.get("refusal"):  # the loop refuses before this directory exists; a stage run alone stops here
            raise TrainDataError(mix["refusal"])
    phases, data = [], {}
    for m in chain:
        src = chat_file if m.data == CHAT else ctx.gen.path / m.data.file
        rows, stats = m.prepare(src, tok, cfg, hp)
        phase = {"method": m.name, "data": str(write_jsonl(ctx.out / "data" / f"{m.name}.jsonl", rows)), "val": None}
        held = m.prepare_val(ctx.gen.path / m.val_data.file, tok, cfg, hp) if m.val_data else None
        if held and held[0]:
            phase["val"] = str(write_jsonl(ctx.out / "data" / f"{m.name}.val.jsonl", held[0]))
            val = {"used": True, "rows": len(held[0]), "dropped_too_long": held[1].get("dropped_too_long", 0)}
        else:
            val = {"used": False, "why": "the method has no validation data" if not m.val_data
                   else f"{m.val_data.file}: no usable rows, so no checkpoint choice on eval loss"}
            if m.val_data:
                log.warning("%s: %s", m.name, val["why"])
        data[m.name] = {**stats, "file": os.path.relpath(src, ctx.gen.path), "val": val,
                        **({"mixture": mix} if m.data == CHAT else {})}
        phases.append(phase)
    pre = memory.planned(ctx.out, cfg, hp, start)  # checkpointing, accumulation or LoRA if infeasible; kept on resume
    config, hparams = memory.apply(pre, resolved_dict(cfg), asdict(hp))
    job = Job(config=config, hparams=hparams, init_dir=str(start), out=str(ctx.out), phases=phases)
    path = atomic_write_json(ctx.out / "job.json", asdict(job))
    return path, job, data


def _card_info(ctx: StageContext, job: Job, data: dict, phases: dict, shas: dict, rel: dict) -> dict:
    """What the card says; every path relative to the lineage directory."""
    cfg = ctx.cfg
    meta = ctx.lineage.meta()
    base_id = models.hub_id(meta["base_model_spec"], meta.get("base_model_dir"))
    base_name = base_id or meta["base_model_spec"]
    teacher_model = base_name if ctx.teacher.index == 0 else f"{ctx.teacher.name}/model"
    init_model = base_name if cfg.train.init_from == "base" else teacher_model
    files = {m.name: {"path": f"{ctx.gen.name}/{rel[m.name]}", "sha256": shas[rel[m.name]]} for m in methods.chain(cfg)}
    source = proposal.read(ctx.gen).source
    return {
        "base_model": base_id, "lineage": ctx.lineage.name, "generation": ctx.gen.name, "teacher": ctx.teacher.name,
        "init_from": cfg.train.init_from, "init_model": init_model, "hparams": job.hparams, "method": cfg.train.method,
        "data": data, "phases": phases, "files": files, "datasets": training_datasets(),
        "lineage_info": {
            "lineage": ctx.lineage.name, "generation": ctx.gen.name, "parent": ctx.teacher.name,
            "teacher": teacher_model, "init_from": cfg.train.init_from, "init_model": init_model,
            "base model spec": meta["base_model_spec"], "method": cfg.train.method, "profile": cfg.profile,
            "seed": cfg.train.seed, "hparams source": source, "accepted.json sha256": shas["propose/accepted.json"],
            "hparams": dict(job.hparams),
            "data": [{"path": f["path"], "sha256": f["sha256"], "rows": data[n].get("used")} for n, f in files.items()],
        },
    }


def run(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg
    t0 = time.time()
    reap_stale_worker(ctx.out)  # a worker a killed run left behind must stop before its dir is touched
    job_path, job, data = prepare_job(ctx)
    chain = methods.chain(cfg)
    rel = {n: d["file"] for n, d in data.items()}  # synth/train.jsonl, or this candidate's train/data/mixture.jsonl
    shas = {f: sha256_file(ctx.gen.path / f) for f in ["propose/accepted.json", *rel.values()]}
    inputs = {Path(f).name: sha for f, sha in shas.items()}  # accepted.json, train.jsonl, pairs.jsonl, ...
    names = [m.name for m in chain]
    done = all((ctx.out / n / "final" / RESULT).exists() for n in names)
    if cfg.train.isolate and not done:
        run_worker(job_path, cfg.train, ctx.out / "worker.log")
    phases = train(job) if not cfg.train.isolate else {n: read_json(ctx.out / n / "final" / RESULT) for n in names}
    card = model_card(_card_info(ctx, job, data, phases, shas, rel), cfg)
    write_model_dir(ctx.gen.model_dir, Path(job.init_dir), ctx.out, names, job.hparams["lora_r"] > 0,
                    dict(cfg.model.chat_template_kwargs), card, spec=ctx.gen.name)
    first = phases[names[0]]
    info = {
        "method": cfg.train.method, "steps": {k: p["steps"] for k, p in phases.items()}, "examples": data,
        "wall_seconds": round(time.time() - t0, 2), "peak_memory_mb": max(p["peak_memory_mb"] for p in phases.values()),
        "device": first["device"], "hparams": job.hparams, "resumed_from": {k: p["resumed_from"] for k, p in phases.items()},
        "batch": first["batch"], "bf16": first["bf16"], "attn_implementation": first["attn_implementation"],
        "init_from": cfg.train.init_from, "init_model": job.init_dir, "model_dir": str(ctx.gen.model_dir),
        "losses": {k: p["losses"] for k, p in phases.items()},
        "mixture": next((d["mixture"] for d in data.values() if "mixture" in d), None),
        "val": {k: {**data[k]["val"], **p["val"]} for k, p in phases.items()},
        "step_rule": {k: p["step_plan"]["rule"] for k, p in phases.items()},
        "step_plan": {k: p["step_plan"] for k, p in phases.items()},
        "exported_step": {k: exported_step(p) for k, p in phases.items()},  # best-validation checkpoint's
        "memory_preflight": read_json(ctx.out / memory.FILE),
    }
    metrics = {k: v for m in chain for k, v in m.ledger_metrics(phases[m.name]).items()}
    metrics[methods.STEPS_METRIC] = sum(p["steps"] for p in phases.values())  # optimizer steps of this generation
    metrics[methods.EXPORTED_METRIC] = sum(info["exported_step"].values())  # ... behind the exported weights
    tokens = sum(p["tokens"] for p in phases.values())
    atomic_write_json(ctx.out / "summary.json", {"metrics": metrics, "info": info})
    return StageResult(metrics=metrics, info=info, tokens=tokens, inputs=inputs)
