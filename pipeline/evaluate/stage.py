"""The eval stage: every task in `cfg.eval.tasks` (GSM8K, HumanEval) on one model, through one engine.

    python -m pipeline.evaluate model=embedded:smollm2-135m-instruct            # -> checkpoints/evals/<model>/
    python -m pipeline.evaluate model=tiny:qwen3 experiment=smoke engine.backend=hf
    python -m pipeline.evaluate model.spec=/path/to/hf_model_dir eval=full   # any model dir or hub id

The generation loop calls `run(cfg, ctx)`, the CLI calls the same `evaluate_model`. Output dir:
  <task>.jsonl    one record per item: id, prompt, completion(s), extractions/verdicts, `correct`
                  (GSM8K: flexible verdict of sample 0; HumanEval: sample 0 passed), spec version
  summary.json    metrics per task, spec versions and hashes, engine stats, sandbox mode
Metrics are named `<task>.<metric>`: `gsm8k_val.accuracy_flexible`, `humaneval.pass@1`, ...

A task whose records already exist with the same spec/model key is not generated again, so a
crashed eval resumes at its first unfinished task. Items come from `pipeline.data.subset`, so a
lineage scores the same items in every generation.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Callable, ContextManager

from pipeline.config import Config, EvalTask
from pipeline.stage import StageContext, StageResult
from pipeline.engine import Engine, GenParams, Output
from pipeline.evals import gsm8k, humaneval
from pipeline.evals import write_results
from pipeline.io import atomic_write_json, hash_obj, read_jsonl

log = logging.getLogger(__name__)

EngineFactory = Callable[[Path], ContextManager[Engine]]


def load_items(spec: EvalTask) -> list[dict]:
    """The task's items as `{id, question|problem, ...}`, the seeded subset a lineage keeps."""
    from pipeline.data import load_gsm8k, load_humaneval, subset

    if spec.benchmark == "gsm8k":
        rows = load_gsm8k(spec.split)
    else:
        rows = [{"id": p["task_id"], "problem": p} for p in load_humaneval()]
    return subset(rows, spec.n, spec.seed)


def build_prompts(spec: EvalTask, items: list[dict]) -> list[list[dict]]:
    if spec.benchmark == "gsm8k":
        shots = gsm8k.exemplars(spec.few_shot, spec.seed) if spec.prompt == "few_shot" else []
        return [gsm8k.build_prompt(it["question"], spec.instruction, shots) for it in items]
    return [[{"role": "user", "content": f"{spec.instruction}\n\n```python\n{it['problem']['prompt']}```"}]
            for it in items]


def task_key(spec: EvalTask, model_dir: Path, cfg: Config) -> str:
    """What the records of a task depend on; equal keys mean existing records can be reused."""
    key = {"spec": dataclasses.asdict(spec), "model": str(model_dir), "seed": cfg.seed,
           "chat": dict(cfg.model.chat_template_kwargs)}
    if spec.benchmark == "humaneval":  # verdicts depend on the sandbox's limits too
        key["sandbox"] = {k: v for k, v in dataclasses.asdict(cfg.sandbox).items() if k != "workers"}
    return hash_obj(key)


def score_gsm8k(spec: EvalTask, items: list[dict], prompts: list, outs: list[Output], key: str) -> list[dict]:
    records = []
    for it, prompt, out in zip(items, prompts, outs):
        samples = [gsm8k.score(t, it["answer"]) for t in out.texts]
        records.append({
            "id": it["id"], "version": spec.version, "key": key, "prompt": prompt[-1]["content"],
            "n_shots": (len(prompt) - 1) // 2, "answer": gsm8k.reference_number(it["answer"]),
            "completion": out.texts[0], "finish_reason": out.finish_reasons[0],
            "completion_tokens": sum(out.completion_tokens), **samples[0],
            "correct": samples[0]["correct_flexible"],
            **({"completions": out.texts, "samples": samples} if len(out.texts) > 1 else {}),
        })
    return records


def score_humaneval(spec: EvalTask, items: list[dict], prompts: list, outs: list[Output], key: str,
                    cfg: Config) -> list[dict]:
    samples = [{"task_id": it["id"], "completion": text} for it, out in zip(items, outs) for text in out.texts]
    checked = iter(humaneval.check_samples(samples, {it["id"]: it["problem"] for it in items}, cfg.sandbox,
                                           sanitize_chat=True))
    records = []
    for it, prompt, out in zip(items, prompts, outs):
        rows = [next(checked) for _ in out.texts]
        records.append({
            "id": it["id"], "version": spec.version, "key": key, "prompt": prompt[-1]["content"],
            "completion": out.texts[0], "finish_reason": out.finish_reasons[0],
            "completion_tokens": sum(out.completion_tokens),
            "passed": [r["passed"] for r in rows], "result": [r["result"] for r in rows],
            "correct": rows[0]["passed"],
            **({"completions": out.texts} if len(out.texts) > 1 else {}),
        })
    return records


def task_metrics(spec: EvalTask, records: list[dict]) -> dict:
    n = len(records)
    if spec.benchmark == "gsm8k":
        def acc(field: str) -> float:  # mean over every sample of every item
            vals = [s[field] for r in records for s in (r.get("samples") or [r])]
            return sum(vals) / len(vals) if vals else 0.0

        return {"accuracy_strict": acc("correct_strict"), "accuracy_flexible": acc("correct_flexible"), "n": n}
    return {**humaneval.mean_pass_at_k({r["id"]: r["passed"] for r in records}, spec.k), "n": n}


def _reusable(path: Path, key: str, n: int) -> list[dict] | None:
    if not path.exists():
        return None
    try:
        rows = read_jsonl(path)
    except ValueError:
        return None
    return rows if len(rows) == n and all(r.get("key") == key for r in rows) else None


def evaluate_model(cfg: Config, model_dir: Path, out: Path, engine_factory: EngineFactory) -> StageResult:
    """Evaluate `model_dir` on every task of `cfg.eval.tasks`, writing records and summary into `out`."""
    from pipeline.sandbox import capabilities

    if not cfg.eval.tasks:
        raise ValueError("eval.tasks is empty: nothing to evaluate")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = {}
    for name, spec in cfg.eval.tasks.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"eval task name {name!r} must be a plain file name (letters, digits, _ . -)")
        items = load_items(spec)
        key = task_key(spec, model_dir, cfg)
        tasks[name] = {"spec": spec, "items": items, "prompts": build_prompts(spec, items), "key": key,
                       "records": _reusable(out / f"{name}.jsonl", key, len(items))}
    todo = [name for name, t in tasks.items() if t["records"] is None]
    engine_stats: dict = {}
    outputs: dict[str, list[Output]] = {}
    if todo:
        with engine_factory(model_dir) as eng:
            for name in todo:
                t = tasks[name]
                spec = t["spec"]
                params = GenParams(n=spec.n_samples, temperature=spec.temperature, max_tokens=spec.max_tokens,
                                   stop=list(spec.stop), seed=cfg.seed)
                log.info("eval %s: %d prompts x %d samples", name, len(t["prompts"]), spec.n_samples)
                outputs[name] = eng.generate(t["prompts"], params)
            engine_stats = {"backend": eng.backend, **eng.stats.as_dict()}
    # Score after the engine is closed: the sandbox then has the machine's memory and cores.
    for name in todo:
        t = tasks[name]
        if t["spec"].benchmark == "gsm8k":
            t["records"] = score_gsm8k(t["spec"], t["items"], t["prompts"], outputs[name], t["key"])
        else:
            t["records"] = score_humaneval(t["spec"], t["items"], t["prompts"], outputs[name], t["key"], cfg)
        write_results(out / f"{name}.jsonl", t["records"])

    metrics, info, inputs = {}, {"tasks": {}, "engine": engine_stats, "reused": sorted(set(tasks) - set(todo))}, {}
    for name, t in tasks.items():
        m = task_metrics(t["spec"], t["records"])
        metrics.update({f"{name}.{k}": v for k, v in m.items() if k != "n"})
        info["tasks"][name] = {"n": m["n"], "version": t["spec"].version, "key": t["key"],
                               "benchmark": t["spec"].benchmark, "split": t["spec"].split}
        inputs[name] = hash_obj([it["id"] for it in t["items"]])
    info["sandbox"] = capabilities(cfg.sandbox)["mode"]
    tokens = sum(r["completion_tokens"] for t in tasks.values() for r in t["records"])
    atomic_write_json(out / "summary.json", {
        "model_dir": str(model_dir), "metrics": metrics, "tokens": tokens,
        "chat_template_kwargs": dict(cfg.model.chat_template_kwargs), **info,
        "specs": {name: dataclasses.asdict(t["spec"]) for name, t in tasks.items()},
    })
    return StageResult(metrics=metrics, info=info, tokens=tokens, inputs=inputs)


def run(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg
    """Stage entry point: evaluate this generation's model into gen_NNN/eval/."""
    return evaluate_model(cfg, ctx.gen.model_dir, ctx.out, ctx.engine)
