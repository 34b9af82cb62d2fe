"""Stage `drift`: what a generation lost (or gained) in alignment and distribution, vs gen 0 and its parent.

Runs on every generation, gen 0 included (the baseline), as part of the loop:

    python -m pipeline.loop model=tiny:qwen3 experiment=smoke generations=2
    python -m pipeline.probes            # validate the probe suites it uses

1. Probes: every suite in `drift.suites`, from the probe-suite registry (pipeline.probes: safety,
   honesty, sycophancy, ifeval, and any plugin's), each with its own prompt builder, scorer and
   metrics; each takes `drift.subset.<suite>` items (a fixed seeded sample, `drift.subset_seed`;
   the CPU profile's time budget) or all. Greedy, one engine scope: one batched call for every first
   turn, one for the follow-up turns (sycophancy's pushback). Scored deterministically; an optional
   frozen judge adds `drift.judge_*` for the suites that declare judge questions, and its agreement
   with the hand labels of pipeline/probes/calibration.jsonl goes in summary.json (`judge.calibration`).
2. Behavioural drift: per-item outcome agreement with gen 0 and the parent (probes, and the eval
   stage's `eval/<task>.jsonl` items: GSM8K/HumanEval items gained and lost; eval agreement over the
   validation tasks, budgetable, and over the test tasks, `eval_agreement_test_*`, reported only;
   each such metric's splits in the manifest's `splits`, pipeline.infra.metricspec).
3. Distribution drift: teacher-forced per-token KL from gen 0 and the parent on fixed reference text
   (pipeline.drift.kl, after the engine is closed), mean length and distinct-n of the free
   generations, and the synthetic data's distinct-n (`synth/stats.json`), a collapse signal.
   These metrics of the stage's own are declared in pipeline.drift.metrics.

Writes `gen_NNN/drift/`: probes.jsonl (per item: suite, id, prompt, completion, score, outcome,
evidence), kl.jsonl (per reference item), summary.json (every aggregate with its counts and the
ids behind it, and `intervals`: each metric's 95% interval with its method, pipeline.drift.uncertainty);
returns `drift.*` metrics for the ledger, with `<metric>_lo`, `_hi`, `_n` beside those that have one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.infra import metricspec
from pipeline import probes
from pipeline.config import Config, DriftConfig
from pipeline.lineage.runner import StageContext, StageResult
from pipeline.drift.behaviour import (DriftError, agreement, distinct_n, eval_changes, read_eval_outcomes,
                                      synth_distinct)
from pipeline.drift import uncertainty
from pipeline.drift.kl import mean_token_kl
from pipeline.drift.metrics import (AGREEMENT, DISTINCT, EVAL_AGREEMENT, EVAL_AGREEMENT_TEST, ITEMS_GAINED, ITEMS_LOST,
                                    KL, MEAN_LENGTH, REFS, SYNTH_DISTINCT)
from pipeline.engine import GenParams, Output
from pipeline.evals.protocol import records_protocols
from pipeline.infra.io import atomic_write_json, read_jsonl, write_jsonl
from pipeline.lineage import GenerationDir
from pipeline.stats import Interval
from pipeline.stats.ledger import flat_all

__all__ = ["run", "probe_records", "aggregate", "DriftError"]

log = logging.getLogger(__name__)

Generate = Callable[[Sequence[Any]], list[Output]]


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def probe_records(suites: dict[str, probes.Suite], max_items: int, generate: Generate,
                  subset: dict[str, int] | None = None, seed: int | None = None) -> list[dict]:
    """Run the probes through `generate` (two batched calls at most: every first turn, then every
    follow-up turn a suite asks for) and score every item with its suite's scorer. Each suite takes
    `probes.items_for(name, max_items, subset)` items: the first ones, or with a `seed` the seeded sample."""
    todo = [(s, it) for s in suites.values()
            for it in probes.take(s, probes.items_for(s.name, max_items, subset or {}), seed)]
    firsts = generate([_user(s.spec.prompt(it)) for s, it in todo])
    records = []
    for (s, it), out in zip(todo, firsts):
        text = out.texts[0]
        rec = {"suite": s.name, "version": s.version, "id": it["id"], "kind": it.get("kind"),
               "prompt": s.spec.prompt(it), "completion": text,
               "tokens": out.completion_tokens[0], "finish": out.finish_reasons[0]}
        if s.spec.follow_up is None:
            rec.update(s.spec.score(it, text))
        records.append(rec)
    # Follow-up turns (sycophancy's pushback) only where the suite asks, e.g. after a correct first answer.
    later = [(i, s.spec, it) for i, (s, it) in enumerate(todo) if s.spec.follow_up is not None]
    asked = [(i, spec, it) for i, spec, it in later if spec.follow_up.ask(it, records[i]["completion"])]
    seconds = generate([[*_user(records[i]["prompt"]), {"role": "assistant", "content": records[i]["completion"]},
                         *_user(spec.follow_up.prompt(it))] for i, spec, it in asked]) if asked else []
    second_text = {i: out.texts[0] for (i, _, _), out in zip(asked, seconds)}
    for i, spec, it in later:
        rec = records[i]
        rec[spec.follow_up.field] = spec.follow_up.prompt(it)
        rec["completion_2"] = second_text.get(i)
        rec.update(spec.score(it, rec["completion"], rec["completion_2"] or ""))
    return records


def aggregate(records: list[dict], n: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Every registered suite's metrics and counts, and free-generation statistics: (metrics, counts)."""
    values: dict[str, float | None] = {}
    counts: dict[str, Any] = {}
    for spec in probes.SUITES:
        mine = [r for r in records if r["suite"] == spec.name]
        values.update({m.key: m.mean(mine) for m in spec.metrics})
        counts.update(spec.counts(mine))
    values[MEAN_LENGTH.key] = sum(r["tokens"] for r in records) / len(records) if records else None
    values[DISTINCT.expand(n=n)] = distinct_n([r["completion"] for r in records], n) if records else None
    counts["free_generations"] = len(records)
    # A rate over zero items is undefined, not 0: leave it out and say why in the summary.
    undefined = sorted(k for k, v in values.items() if v is None)
    return {k: v for k, v in values.items() if v is not None}, {**counts, "undefined": undefined}


def _reference_records(ref: GenerationDir, gen: GenerationDir, records: list[dict]) -> list[dict] | None:
    if ref.name == gen.name:
        return records
    path = ref.path / "drift" / "probes.jsonl"
    return read_jsonl(path) if path.exists() else None


def _eval_agreement(metric, label: str, tasks: dict[str, Any], names: list[str], metrics: dict,
                    intervals: dict[str, Interval], splits: dict[str, list[str]], cfg: Config) -> None:
    """`metric` (eval agreement) vs reference `label` over the eval tasks `names`, with the splits it read."""
    compared = [t for t in names if tasks.get(t) is not None and tasks[t]["n"]]
    if not compared:
        return
    n = sum(tasks[t]["n"] for t in compared)
    agree = n - sum(len(tasks[t]["gained"]) + len(tasks[t]["lost"]) for t in compared)
    metrics[metric.expand(ref=label)] = agree / n
    intervals[metric.expand(ref=label)] = uncertainty.agreement_interval(agree, n)
    splits[metric.expand(ref=label)] = sorted({_split(cfg, t) for t in compared})


def _protocols(gen: GenerationDir, task: str) -> set | None:
    return records_protocols(gen.path / "eval" / f"{task}.jsonl")


def _split(cfg: Config, task: str) -> str:
    return metricspec.split_label(cfg.eval.tasks[task].benchmark, cfg.eval.tasks[task].split)


def behaviour(cfg: Config, gen: GenerationDir, refs: dict[str, GenerationDir], records: list[dict]
              ) -> tuple[dict, dict, dict[str, Interval], dict[str, list[str]]]:
    """Probe agreement and eval items gained/lost vs each reference generation: (metrics, detail,
    the agreements' Wilson intervals, the benchmark splits each eval-reading metric read). Eval
    agreement is split by split kind: over the non-test tasks (budgetable) and over the test tasks
    (`_test`, reported only), so no test outcome can reach a budget; an eval task whose records were
    made under another protocol (`protocol_key`) than the reference's is left out, and says so."""
    metrics: dict[str, float] = {}
    detail: dict[str, Any] = {}
    intervals: dict[str, Interval] = {}
    splits: dict[str, list[str]] = {}
    for label, ref in refs.items():
        ref_records = _reference_records(ref, gen, records)
        agree = agreement(records, ref_records) if ref_records is not None else None
        if agree and agree["rate"] is not None:
            metrics[AGREEMENT.expand(ref=label)] = agree["rate"]
            intervals[AGREEMENT.expand(ref=label)] = uncertainty.agreement_interval(agree["agree"], agree["n"])
        tasks: dict[str, Any] = {}
        for task in cfg.eval.tasks:
            cur, old = read_eval_outcomes(gen.path, task), read_eval_outcomes(ref.path, task)
            if cur is not None and old is not None and _protocols(gen, task) != _protocols(ref, task):
                tasks[task] = f"records made under another protocol than {ref.name}'s: not compared"
                continue
            tasks[task] = eval_changes(cur, old) if cur is not None and old is not None else None
        usable = {t: v for t, v in tasks.items() if isinstance(v, dict)}
        for metric in (EVAL_AGREEMENT, EVAL_AGREEMENT_TEST):
            _eval_agreement(metric, label, usable, metricspec.tasks_read(metric.reads, cfg.eval), metrics,
                            intervals, splits, cfg)
        compared = [t for t, v in usable.items() if v["n"]]
        if compared and label == "gen0":  # the table shows gains/losses vs gen 0; vs parent they are in summary.json
            metrics[ITEMS_GAINED.key] = sum(len(usable[t]["gained"]) for t in compared)
            metrics[ITEMS_LOST.key] = sum(len(usable[t]["lost"]) for t in compared)
            for m in (ITEMS_GAINED, ITEMS_LOST):
                splits[m.key] = sorted({_split(cfg, t) for t in compared})
        detail[label] = {"generation": ref.name, "probes": agree if agree is not None else "no drift/probes.jsonl",
                         "eval": {t: v if v is not None else "eval/<task>.jsonl absent" for t, v in tasks.items()}}
    return metrics, detail, intervals, splits


def distribution(ctx: StageContext, refs: dict[str, GenerationDir]) -> tuple[dict, dict, list[dict]]:
    """Teacher-forced KL from each reference model (0 for an identical model dir, not recomputed)."""
    cfg = ctx.cfg
    d = cfg.drift
    items = probes.take(probes.REFERENCE.load(), d.kl_prompts)
    model_dir = Path(ctx.gen.model_dir).resolve()
    dirs = {label: Path(ref.model_dir).resolve() for label, ref in refs.items()}
    distinct = {str(p): p for p in dirs.values() if p != model_dir}
    kl_by_dir: dict[str, float] = {}
    tokens_weighted: dict[str, float] = {}
    per_item: list[dict] = []
    tokens = 0
    if distinct:
        res = mean_token_kl(model_dir, distinct, items, dtype=cfg.model.dtype, batch_size=d.kl_batch_size,
                            chat_template_kwargs=dict(cfg.model.chat_template_kwargs))
        kl_by_dir, tokens, tokens_weighted = res["kl"], res["tokens"], res["tokens_weighted"]
        names = {str(p): [lb for lb, q in dirs.items() if q == p] for p in distinct.values()}
        per_item = [{"id": r["id"], "tokens": r["tokens"],
                     **{f"kl_{lb}": r[key] for key in names for lb in names[key]}} for r in res["per_item"]]
    metrics = {KL.expand(ref=lb): (0.0 if p == model_dir else kl_by_dir[str(p)]) for lb, p in dirs.items()}
    intervals = {KL.expand(ref=lb): uncertainty.kl_interval(per_item, f"kl_{lb}")
                 for lb, p in dirs.items() if p != model_dir}
    detail = {"reference_items": len(items), "tokens": tokens, "direction": "KL(generation || reference), nats/token",
              # what drift.kl_<ref> is: the number the gate's paired test tests on kl.jsonl's per-item values
              "statistic": "mean over reference items of per-item nats/token (items weigh equally)",
              "tokens_weighted": {lb: (0.0 if p == model_dir else tokens_weighted[str(p)]) for lb, p in dirs.items()},
              "identical": sorted(lb for lb, p in dirs.items() if p == model_dir),
              "models": {lb: str(p) for lb, p in dirs.items()}}
    return metrics, detail, per_item, intervals


def run(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg
    d: DriftConfig = cfg.drift
    if not d.enabled:
        return StageResult(info={"skipped": "drift.enabled is false"})
    model_dir = ctx.gen.model_dir
    if not (Path(model_dir) / "config.json").exists():
        raise DriftError(f"{ctx.gen.name}: no model at {model_dir} (did the train stage finish?)")
    refs = dict(zip(REFS, (ctx.lineage.gen(0), ctx.teacher)))  # gen 0 and the parent
    suites = {name: probes.SUITES.get(name).load() for name in d.suites}
    with ctx.engine(model_dir) as eng:
        # the probes are chat turns: a base model (eos <|endoftext|>) must stop at the template's end of turn
        params = GenParams(max_tokens=d.max_tokens, temperature=0.0, stop_token_ids=[eng.end_of_turn_id()])
        records = probe_records(suites, d.max_items_per_suite, lambda prompts: eng.generate(prompts, params),
                                subset=dict(d.subset), seed=d.subset_seed)
        engine_stats = eng.stats.as_dict()
    metrics, counts = aggregate(records, d.distinct_n)
    intervals = uncertainty.free_intervals(records)
    taken = {name: sum(r["suite"] == name for r in records) for name in suites}
    summary: dict[str, Any] = {"generation": ctx.gen.name, "model": str(model_dir), "counts": counts,
                               "suites": {s.tag: s.sha256 for s in suites.values()}, "engine": engine_stats,
                               "sample": {"seed": d.subset_seed, "items": taken,
                                          "of": {name: len(s.items) for name, s in suites.items()}}}
    if d.judge.enabled:
        from pipeline.engine import models
        from pipeline.drift.judge import judge_records

        judge_dir = ctx.base_model_dir if d.judge.model == "gen0" else models.resolve(d.judge.model, cfg.paths.models)
        verdicts = judge_records(records, judge_dir, model_dir, d.judge.max_tokens, ctx.engine, calibrate=True)
        metrics.update(verdicts.pop("metrics"))
        summary["judge"] = verdicts
    write_jsonl(ctx.out / "probes.jsonl", records)
    intervals.update(uncertainty.suite_intervals(records))  # after the judge: its metrics too

    b_metrics, summary["behaviour"], b_intervals, splits = behaviour(cfg, ctx.gen, refs, records)
    with ctx.accelerator():  # KL loads transformers models: the engine gives the memory back first
        k_metrics, summary["kl"], kl_items, k_intervals = distribution(ctx, refs)
    write_jsonl(ctx.out / "kl.jsonl", kl_items)
    metrics.update(b_metrics)
    metrics.update(k_metrics)
    synth = synth_distinct(ctx.gen.path, d.distinct_n)
    summary["synth_distinct"] = synth if synth is not None else "no synth/stats.json distinct-n (gen 0 has no synth)"
    if synth is not None:
        metrics[SYNTH_DISTINCT.expand(n=d.distinct_n)] = synth
    intervals = {k: iv for k, iv in {**intervals, **b_intervals, **k_intervals}.items() if k in metrics}
    metrics.update(flat_all(intervals))
    summary["metrics"] = metrics
    summary["intervals"] = {k: iv.as_dict() for k, iv in intervals.items()}
    atomic_write_json(ctx.out / "summary.json", summary)
    inputs = {f"probes.{s.tag}": s.sha256[:16] for s in suites.values()}
    # every eval-reading metric declares the benchmark splits its records came from (pipeline.infra.metricspec)
    summary["splits"] = splits
    return StageResult(metrics=metrics, tokens=engine_stats["completion_tokens"], inputs=inputs,
                       info={"records": len(records), "kl_items": len(kl_items), "counts": counts, "splits": splits})
