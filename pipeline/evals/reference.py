"""The reference-scoring step: a finished generation's model scored on given items of one eval task
under the current protocol, with the records kept under the asking candidate's own stage directory.

    from pipeline.evals.reference import score_reference
    records = score_reference(ctx, ref_gen, "gsm8k_val", ids)    # ctx: the asking stage's StageContext

The gate calls it when a reference generation's records of a gated task were made under another
protocol than the candidate's (pipeline.evals.protocol), or not kept at all, so the pair is
compared on the same protocol; the gate's extra looks call it for items nobody has scored yet.

Layout, under the asking stage's directory (`gen_NNN/gate/`):
  reference/<ref gen>/<task>/records.jsonl   the eval stage's per-item records (id, protocol, metrics, ...)
  reference/<ref gen>/<task>/manifest.json   written last (pipeline.lineage.runner.run_stage): the reference,
                                             its model, the protocol and what it hashes, the ids scored
Resumable: a call whose ids all have records under this protocol and a manifest does no work (no
engine is opened); one with new ids scores only those, writes the records, then the manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from pipeline.evals.common import write_results
from pipeline.evals.protocol import protocol_fields, protocol_key
from pipeline.evals.stage import generate_and_score, load_split, task_entry
from pipeline.infra.io import hash_obj, read_jsonl
from pipeline.lineage import GenerationDir
from pipeline.lineage.runner import Stage, StageContext, StageResult, run_stage

log = logging.getLogger(__name__)


def reference_dir(ctx: StageContext, ref_gen: GenerationDir, task: str) -> Path:
    return ctx.out / "reference" / ref_gen.name / task


def _have(path: Path, proto: str) -> dict[str, dict]:
    """Records already scored under `proto` (a torn or foreign file is scored again)."""
    if not path.exists():
        return {}
    try:
        return {r["id"]: r for r in read_jsonl(path) if r.get("protocol") == proto and "metrics" in r}
    except (ValueError, KeyError, OSError):
        return {}


def score_reference(ctx: StageContext, ref_gen: GenerationDir, task: str, ids: Iterable[str]) -> list[dict]:
    """The records of `ref_gen`'s model on items `ids` of eval task `task` under the current
    config's protocol, in the order of `ids` (module docstring). A ValueError names the task when
    it is not configured or an id is not an item of its split. The step runs through `run_stage`
    as a sub-stage of the asking stage (its own directory and manifest, nothing in the ledger)."""
    cfg = ctx.cfg
    if task not in cfg.eval.tasks:
        raise ValueError(f"reference scoring: eval task {task!r} is not in eval.tasks {sorted(cfg.eval.tasks)}")
    spec = cfg.eval.tasks[task]
    proto = protocol_key(spec, cfg)
    out = reference_dir(ctx, ref_gen, task)
    want = list(dict.fromkeys(str(i) for i in ids))
    missing = [i for i in want if i not in _have(out / "records.jsonl", proto)]
    if missing:  # items nobody scored yet: the step is unfinished again
        (out / "manifest.json").unlink(missing_ok=True)
    step = Stage(f"{ctx.stage}/reference/{ref_gen.name}/{task}", lambda sub: _score(sub, ref_gen, task, proto, missing))
    run_stage(step, StageContext(cfg=cfg, lineage=ctx.lineage, gen=ctx.gen, teacher=ctx.teacher, stage=step.name,
                                 engines=ctx.engines), ledger=False)
    have = _have(out / "records.jsonl", proto)
    return [have[i] for i in want]


def _score(ctx: StageContext, ref_gen: GenerationDir, task: str, proto: str, missing: list[str]) -> StageResult:
    """Score `missing` items into `ctx.out/records.jsonl` (beside the ones kept); the step's result."""
    cfg, out = ctx.cfg, ctx.out
    spec = cfg.eval.tasks[task]
    have = _have(out / "records.jsonl", proto)
    engine: dict = {}
    model_dir = ref_gen.model_dir
    if missing:
        items = {it["id"]: it for it in load_split(spec)}
        unknown = [i for i in missing if i not in items]
        if unknown:
            raise ValueError(f"reference scoring: eval task {task!r}: {len(unknown)} id(s) are not items of "
                             f"{spec.benchmark} split {spec.split!r}, e.g. {unknown[0]!r}")
        log.info("%s: scoring %s on %d item(s) of %s under the current protocol", ctx.gen.name, ref_gen.name,
                 len(missing), task)
        t = task_entry(spec, [items[i] for i in missing], model_dir, cfg)
        engine = generate_and_score(cfg, {task: t}, [task], model_dir, ctx.engine,
                                    lambda _name, records: None)
        have.update({r["id"]: r for r in t["records"]})
        write_results(out / "records.jsonl", list(have.values()))
    return StageResult(
        info={"reference": ref_gen.name, "model": str(model_dir), "task": task, "protocol": proto,
              "protocol_fields": protocol_fields(spec, cfg), "ids": sorted(have), "scored_now": len(missing),
              "engine": engine},
        tokens=sum(int(have[i].get("completion_tokens", 0)) for i in missing),
        inputs={"ids": hash_obj(sorted(have))})
