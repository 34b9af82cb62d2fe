"""The training process: the phases of `train.method` in order (sft, sft+dpo, ...), each resumable.

Runs what `pipeline.train.stage.run` wrote to `<gen>/train/job.json`, in this process or in one
process per GPU under accelerate/torchrun (every rank runs this same code; rank 0 writes the markers):

    python -m pipeline.train checkpoints/<lineage>/gen_001/train/job.json

Each phase is one training method (pipeline.train.methods): this module loads its start model (the
init model, or the previous phase's result with LoRA adapters merged), shares the TrainingArguments
every method uses, and lets the method build its trainer. Layout under `<gen>/train/`:
    <method>/checkpoints/checkpoint-N/COMPLETE   trainer checkpoint + our marker, written after the save finished
    <method>/final/ result.json                  adapter (LoRA) or full model; result.json last = phase done

A restarted phase resumes from its newest checkpoint WITH a COMPLETE marker (transformers' checkpoint
directories are not written atomically); newer unmarked ones are deleted first.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import resource
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from pipeline.infra import faults
from pipeline.config import Config, HParams, TrainConfig
from pipeline.infra.io import atomic_write_json, read_json, read_jsonl
from pipeline.infra.numbers import compact_metrics
from pipeline.train import budget
from pipeline.train.budget import StepPlan
from pipeline.train.methods import METHODS
from pipeline.train.methods.base import Method, Phase, Schedule

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
RESULT = "result.json"


@dataclass
class Job:
    """Everything a worker needs, as plain JSON (written by `pipeline.train.stage.run`)."""

    config: dict  # resolved Config
    hparams: dict  # HParams fields from propose/accepted.json
    init_dir: str  # model the student starts from (base or teacher)
    out: str  # <gen>/train
    phases: list[dict]  # [{"method": name, "data": prepared rows (jsonl)}], trained in this order

    @classmethod
    def load(cls, path: str | Path) -> "Job":
        return cls(**read_json(path))

    @cached_property
    def _cfg(self) -> Config:
        from omegaconf import OmegaConf

        from pipeline.config.compose import import_plugins
        from pipeline.config import schema, to_config

        import_plugins(list(self.config.get("plugins") or []))  # a worker process registers plugin methods too
        return to_config(OmegaConf.merge(schema(), self.config))  # the schema with every method's knobs

    def cfg(self) -> Config:
        return self._cfg

    def hp(self) -> HParams:
        return HParams(**self.hparams)


# -- devices and sizes --------------------------------------------------------------------------------

def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def use_bf16(t: TrainConfig) -> bool:
    return t.precision == "bf16" or (t.precision == "auto" and _cuda())


def attn_implementation(t: TrainConfig) -> str:
    if t.attn_implementation != "auto":
        return t.attn_implementation
    return "flash_attention_2" if _cuda() and importlib.util.find_spec("flash_attn") else "sdpa"


def batch_layout(batch_size: int, per_device: int, world: int) -> tuple[int, int]:
    """(per-device batch, gradient accumulation) whose product with `world` is closest to `batch_size`."""
    per = max(1, min(per_device, batch_size // world))
    return per, max(1, round(batch_size / (per * world)))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_rank0() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def peak_memory_mb() -> dict:
    if _cuda():
        import torch

        return {"device": "cuda", "peak_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    return {"device": "cpu", "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


# -- checkpoints and callbacks --------------------------------------------------------------------------

def _step(p: Path) -> int:
    try:
        return int(p.name.split("-")[-1])
    except ValueError:
        return -1


def latest_complete(ckpt_dir: Path) -> Path | None:
    """The newest `checkpoint-N` with our COMPLETE marker; unmarked ones never count."""
    done = [p for p in ckpt_dir.glob("checkpoint-*") if (p / COMPLETE).exists() and _step(p) >= 0]
    return max(done, key=_step, default=None)


def drop_incomplete(ckpt_dir: Path, keep: Path | None) -> list[str]:
    """Delete unmarked checkpoints newer than `keep`, so the rerun does not save into a half-written dir."""
    dropped = []
    for p in ckpt_dir.glob("checkpoint-*"):
        if not (p / COMPLETE).exists() and (keep is None or _step(p) > _step(keep)):
            shutil.rmtree(p, ignore_errors=True)
            dropped.append(p.name)
    return dropped


def _callbacks(extra: Sequence[Any]) -> list:
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        """Write checkpoint-N/COMPLETE once every rank has finished writing checkpoint-N."""

        def on_save(self, args, state, control, **kw):
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.barrier()
            if state.is_world_process_zero:
                ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                atomic_write_json(ckpt / COMPLETE, {"step": state.global_step, "time": time.time()})
                faults.point("train:checkpoint-saved")  # the crash tests' mid-training kill

    class Meter(TrainerCallback):
        """Tokens and seconds of this session (a resumed run counts only what it trained itself); and
        log the last step, so `loss_last` is the final loss whatever logging_steps is."""

        def on_train_begin(self, args, state, control, **kw):
            self.tokens0, self.step0, self.t0 = state.num_input_tokens_seen, state.global_step, time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= state.max_steps:
                control.should_log = True

        def on_train_end(self, args, state, control, **kw):
            self.seconds = time.perf_counter() - self.t0
            self.tokens = state.num_input_tokens_seen - self.tokens0
            self.steps = state.global_step - self.step0

    class LogLine(TrainerCallback):
        """The trainer's logged numbers as one rounded log line (transformers' PrinterCallback, removed
        in `build_trainer`, prints the raw dict with 16 digits on stdout)."""

        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_world_process_zero and logs:
                log.info("step %d/%d: %s", state.global_step, state.max_steps, compact_metrics(logs))

    return [MarkComplete(), Meter(), LogLine(), *extra]


def eval_args(t: TrainConfig, per_device: int) -> dict:
    """Evaluate on the validation rows at every save, and end on the checkpoint with the lowest eval loss
    (the trainer also evaluates and saves at the last step, so the final weights compete too)."""
    return dict(eval_strategy="steps", eval_steps=t.save_steps, per_device_eval_batch_size=per_device,
                load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False)


def common_args(t: TrainConfig, hp: HParams, out: Path, s: Schedule, evaluate: bool = False) -> dict:
    """TrainingArguments fields every method shares (a method adds its own, e.g. trl's max_length).
    `max_steps` is the method's cap here; `run_phase` replaces it by the planned count (budget.plan)."""
    per, accum = batch_layout(hp.batch_size, t.per_device_batch_size, world_size())
    bf16 = use_bf16(t)
    return dict(**(eval_args(t, per) if evaluate else {}),
        output_dir=str(out / "checkpoints"), learning_rate=s.learning_rate, num_train_epochs=s.epochs,
        max_steps=s.max_steps,
        per_device_train_batch_size=per, gradient_accumulation_steps=accum,
        warmup_steps=float(hp.warmup_ratio),  # a float in [0, 1) is a ratio of the total steps
        logging_steps=t.logging_steps, logging_first_step=True, save_strategy="steps", save_steps=t.save_steps,
        save_total_limit=t.save_total_limit, seed=t.seed, data_seed=t.seed, bf16=bf16, fp16=False,
        gradient_checkpointing=t.gradient_checkpointing, use_liger_kernel=t.use_liger,
        report_to=[] if t.report_to == "none" else [t.report_to],
        include_num_input_tokens_seen="non_padding", disable_tqdm=True, dataloader_pin_memory=_cuda(),
    )


def load_model(path: str | Path, t: TrainConfig, full_ft: bool):
    import torch
    from transformers import AutoModelForCausalLM

    if t.use_liger and importlib.util.find_spec("liger_kernel") is None:
        raise RuntimeError("train.use_liger=true needs the liger-kernel package (pip install liger-kernel)")
    # LoRA keeps the frozen base in bf16 on GPU; full fine-tuning keeps fp32 master weights (bf16 autocast).
    dtype = torch.bfloat16 if use_bf16(t) and not full_ft else torch.float32
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, attn_implementation=attn_implementation(t))


def lora_config(t: TrainConfig, hp: HParams):
    from peft import LoraConfig

    return LoraConfig(r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
                      target_modules=t.lora_target_modules, task_type="CAUSAL_LM")


def _rows(path: str):
    from datasets import Dataset

    return Dataset.from_list(read_jsonl(path))


def method_of(job: Job, index: int) -> Method:
    return METHODS.get(job.phases[index]["method"])


def start_model(job: Job, index: int):
    """Phase `index` starts from the previous phase's result: the init model for the first; after that
    the previous full model, or the init model with every earlier LoRA adapter merged in turn."""
    from peft import PeftModel

    t, full_ft = job.cfg().train, job.hp().lora_r == 0
    earlier = [Path(job.out) / p["method"] / "final" for p in job.phases[:index]]
    if full_ft and earlier:
        return load_model(earlier[-1], t, full_ft)
    model = load_model(job.init_dir, t, full_ft)
    for final in earlier:
        model = PeftModel.from_pretrained(model, str(final)).merge_and_unload()
    return model


def build_trainer(job: Job, index: int = 0, callbacks: Sequence[Any] = ()):
    """The trainer of phase `index`, built by its method (tests use it to inspect masking; so does the benchmark)."""
    from transformers import AutoTokenizer

    cfg, hp, method = job.cfg(), job.hp(), method_of(job, index)
    t, val = cfg.train, job.phases[index].get("val")
    phase = Phase(
        cfg=cfg, hp=hp, model=start_model(job, index), tokenizer=AutoTokenizer.from_pretrained(job.init_dir),
        train_dataset=_rows(job.phases[index]["data"]), eval_dataset=_rows(val) if val else None,
        args=common_args(t, hp, Path(job.out) / method.name, method.schedule(cfg, hp), evaluate=bool(val)),
        peft_config=None if hp.lora_r == 0 else lora_config(t, hp), callbacks=_callbacks(callbacks),
        rewards=method.rewards(cfg), world=world_size(),
    )
    trainer = method.build_trainer(phase)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # LogLine says it rounded
    return trainer


@contextmanager
def _env(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_phase(job: Job, index: int, callbacks: Sequence[Any] = ()) -> dict:
    """Train phase `index` to its `final/`, resuming from a complete checkpoint; return its result."""
    method = method_of(job, index)
    phase = method.name
    out = Path(job.out) / phase
    final = out / "final"
    if (final / RESULT).exists():
        return read_json(final / RESULT)
    ckpts = out / "checkpoints"
    resume = latest_complete(ckpts)
    if is_rank0():
        dropped = drop_incomplete(ckpts, resume)
        if dropped:
            log.warning("%s: ignoring incomplete checkpoints %s", phase, dropped)
    log.info("%s: %s", phase, f"resuming from {resume}" if resume else "starting")
    with _env(TENSORBOARD_LOGGING_DIR=str(out / "logs")):  # beside checkpoints/, not inside them
        trainer = build_trainer(job, index, callbacks)
        steps = plan_steps(trainer, job, method)
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if trainer.state.global_step == 0:  # never report success for a run that trained nothing
        raise RuntimeError(f"{phase}: the trainer ran 0 optimizer steps (dataset or max_steps too small)")
    if is_rank0():
        shutil.rmtree(final, ignore_errors=True)
    trainer.save_model(str(final))  # every rank: FSDP gathers the full state dict here
    meter = next(c for c in trainer.callback_handler.callbacks if type(c).__name__ == "Meter")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = {
        "phase": phase, "schedule": asdict(method.schedule(job.cfg(), job.hp())),
        "reference": method.uses_reference(job.cfg()), "generation": method.generation_backend(job.cfg()),
        "rewards": [getattr(f, "__name__", repr(f)) for f in method.rewards(job.cfg())],
        "steps": trainer.state.global_step, "loss_first": losses[0], "loss_last": losses[-1],
        "losses": losses, "tokens": trainer.state.num_input_tokens_seen,
        "session": {"steps": meter.steps, "tokens": meter.tokens, "seconds": round(meter.seconds, 3)},
        "tokens_per_s": round(meter.tokens / meter.seconds, 2) if meter.seconds > 0 else 0.0,
        "examples": len(trainer.train_dataset), "resumed_from": resume.name if resume else None,
        "step_plan": {**asdict(steps), "actual": trainer.state.global_step}, "val": _val_result(trainer),
        "batch": {"per_device": trainer.args.per_device_train_batch_size, "world": world_size(),
                  "accumulation": trainer.args.gradient_accumulation_steps},
        "bf16": trainer.args.bf16, "attn_implementation": attn_implementation(job.cfg().train),
        **peak_memory_mb(), **method.phase_stats(trainer.state.log_history, job.cfg()),
    }
    if is_rank0():
        atomic_write_json(final / RESULT, result)  # last: its presence means the phase is done
    trainer.accelerator.wait_for_everyone()
    return result


def plan_steps(trainer, job: Job, method: Method) -> StepPlan:
    """Set the trainer's `max_steps` to the phase's budget (pipeline.train.budget), counted on the
    dataset as the trainer holds it (after trl's tokenization and packing)."""
    a, cfg = trainer.args, job.cfg()
    s = method.schedule(cfg, job.hp())
    p = budget.plan(len(trainer.train_dataset) * method.samples_per_row(cfg), a.per_device_train_batch_size,
                    a.gradient_accumulation_steps,
                    world_size(), s.epochs, cfg.train.min_steps, s.max_steps)
    a.max_steps = p.steps
    log.info("%s: %d optimizer steps (rule %s; the epochs alone: %d, %d per epoch)", method.name, p.steps, p.rule,
             p.from_epochs, p.epoch_steps)
    return p


def _val_result(trainer) -> dict:
    """Which checkpoint the phase ended on, by eval loss on the validation rows (or why none was used)."""
    if trainer.eval_dataset is None:
        return {"used": False, "why": "no validation rows (synth/val.jsonl empty or absent, or the method has none)"}
    evals = [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h]
    best = trainer.state.best_model_checkpoint
    return {"used": True, "rows": len(trainer.eval_dataset), "eval_losses": evals,
            "best_eval_loss": trainer.state.best_metric, "best_checkpoint": Path(best).name if best else None}


def _free() -> None:
    import gc

    gc.collect()
    if _cuda():
        import torch

        torch.cuda.empty_cache()


def train(job: Job, callbacks: Sequence[Any] = ()) -> dict:
    """All phases of a job in order; returns {method: result}. Frees the trainer between phases."""
    results = {}
    for i, p in enumerate(job.phases):
        results[p["method"]] = run_phase(job, i, callbacks)
        _free()
    return results


def main(job_path: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    results = train(Job.load(job_path))
    if is_rank0():
        print(json.dumps({k: {"steps": v["steps"], "loss_last": v["loss_last"]} for k, v in results.items()}))
