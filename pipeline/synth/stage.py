"""The synth stage: the teacher writes verified math and code data for its successor.

    python -m pipeline.loop            # runs it as part of a generation (gen_NNN/synth/)

Flow (each engine step is ONE batched call on ONE engine opened on the teacher's model; the steps
are in pipeline.synth.steps and fill one `SynthRecord`, pipeline.synth.record):
  math: write problems -> parse -> decontaminate -> solve k times -> self-consistency vote
        -> [program-of-thought check in the sandbox] (pipeline.synth.mathgen)
  code: write tasks -> parse, trivial-test filter -> decontaminate (text, then behaviour: the
        solution against HumanEval's tests, pipeline.synth.behaviour) -> sandbox: reference passes,
        mutants fail -> solve k times -> sandbox (pipeline.synth.codegen)
  then (`assemble`): decontaminate solutions -> dedup within and against the accumulated rows (dedup)
        -> val split -> mixture (mixture: rows of the teacher's promoted line only, each row's `origin`,
        the label guard `gate.min_verifier_precision`); `stats.compute` -> `write` the files -> StageResult
  measured beside, changing nothing kept (pipeline.synth.verifier, synth.verifier.*): the math
        vote's precision on held-out GSM8K-train questions (one more engine call, step
        `math_verifier`), the kept code tests' kill rate on AST mutants of the reference solutions
        (sandbox, step `code_mutants`)
Sampling temperature, mixture size and math/code ratio come from this generation's accepted
proposal (`pipeline.propose.accepted.read`: "hparams"), else from `cfg.propose.hparams`. The sampling
temperature (`synth_temperature`) belongs to this shared synthesis: every candidate trains on the
data it made. The mixture built here uses the proposal's `num_examples`/`math_fraction`; a candidate
with other values draws its own from the same pool in its train stage (pipeline.train.mixture).
Code is synthesized when any candidate (or a sweep job's override) wants some (math_fraction < 1),
math when any wants some (> 0).

Math problems (`synth.math.source`): `teacher` (the teacher writes them), `pool` (GSM8K-train
`pool` questions, their answers never shown: the label is the same self-consistency vote) or
`mixed` (half each); recorded in stats.json `math.source` and the metric `synth.pool_share`.

Outputs in `gen_NNN/synth/`: new.jsonl (this generation's verified rows, `meta.split` train|val),
train.jsonl (the mixture), val.jsonl, pairs.jsonl (trl conversational preference rows), prompts.jsonl
(RL prompts of train-split problems and GSM8K pool questions, pipeline.synth.prompts), rejected.jsonl
(one row per rejection with its filter and reason), verifier.jsonl and code_mutants.jsonl (the
verifiers' per-item measurements), stats.json (with `red_flags` and "verifier").

Resume: each step's raw outputs go to `work/<step>.jsonl`, written atomically once the step is
complete; a re-run loads finished steps instead of regenerating them, and the final files are
rewritten whole from those, so a kill never duplicates rows.

Tiny or random-weight teachers verify nothing. Rather than leaving train.jsonl empty (training
would fail), the mixture then uses `synth.min_anchor_examples` real GSM8K-train rows; this is
recorded as `fallback_anchor` in stats.json, flagged in `red_flags`, and reported as the metric
`synth.anchor_examples`.
"""

from __future__ import annotations

import logging
import random
from contextlib import nullcontext
from pathlib import Path

from pipeline.propose import accepted as proposal
from pipeline.config import resolved_dict
from pipeline.infra.io import atomic_write_json, write_jsonl
from pipeline.lineage.runner import StageContext, StageResult
from pipeline.synth import mixture, stats as synth_stats, verifier
from pipeline.synth.decontaminate import BenchmarkIndex, index_for
from pipeline.synth.dedup import dedup_items
from pipeline.synth.prompts import prompt_rows
from pipeline.synth.record import Assembled, SynthRecord, chat_row
from pipeline.synth.steps import Job, Steps, synth_code, synth_math, verify_math

log = logging.getLogger(__name__)

HPARAM_KEYS = ("synth_temperature", "num_examples", "math_fraction")


def hparams(ctx: StageContext) -> dict:
    """The accepted proposal's synthesis hyperparameters (+ "source"), else `cfg.propose.hparams`'."""
    cfg = ctx.cfg
    if proposal.exists(ctx.gen):
        p = proposal.read(ctx.gen)
        if all(k in p.hparams for k in HPARAM_KEYS):
            return {**{k: p.hparams[k] for k in HPARAM_KEYS}, "source": str(p.path)}
        log.warning("%s lacks some of %s; using propose.hparams", p.path, HPARAM_KEYS)
    return {**{k: getattr(cfg.propose.hparams, k) for k in HPARAM_KEYS}, "source": "config:propose.hparams"}


def wanted_fractions(ctx: StageContext, hp: dict) -> list[float]:
    """The math_fraction of every candidate that will train on this data: the proposal's K
    candidates and a sweep job's `candidate.hparams.math_fraction` override."""
    cfg = ctx.cfg
    out = [hp["math_fraction"]]
    if proposal.exists(ctx.gen):
        out += [c["hparams"]["math_fraction"] for c in proposal.read(ctx.gen).candidates
                if isinstance(c.get("hparams"), dict) and "math_fraction" in c["hparams"]]
    if cfg.candidate.hparams.math_fraction is not None:
        out.append(cfg.candidate.hparams.math_fraction)
    return out


def run(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg
    sc, gen = cfg.synth, ctx.gen.index
    hp = hparams(ctx)
    seed = mixture.seed_for(cfg.seed, gen)
    made_by = {"synth": resolved_dict(cfg)["synth"], "seed": seed, "teacher": ctx.teacher.name,
               "hparams": {k: v for k, v in hp.items() if k != "source"}}
    steps = Steps(ctx.out / "work", made_by)
    index = index_for(sc)
    fractions = wanted_fractions(ctx, hp)
    do_math = sc.math.n_problems > 0 and max(fractions) > 0
    do_code = sc.code.n_tasks > 0 and min(fractions) < 1
    do_verify = do_math and sc.verifier.n_questions > 0
    needed = ["math_problems", "math_samples"] * do_math + ["math_pot"] * (do_math and sc.math.pot_check)
    needed += ["math_verifier"] * do_verify
    needed += ["code_tasks", "code_verify"] * do_code + ["code_samples"] * (do_code and sc.code.k_solutions > 0)
    rec = SynthRecord()
    needs_engine = not all(steps.done(s) for s in needed)
    with (ctx.engine(ctx.teacher.model_dir) if needs_engine else nullcontext()) as eng:
        job = Job(cfg, eng, steps, seed, gen, hp, index)
        if do_math:
            synth_math(job, rec)
        if do_verify:
            verify_math(job, rec)
        if do_code:
            synth_code(job, rec)
    data = assemble(ctx, hp, rec, seed, index)
    st = synth_stats.compute(rec, data, index, gen, ctx.teacher.name, hp, sc.math.source)
    return result(st, write(ctx.out, rec, data, st))


def assemble(ctx: StageContext, hp: dict, rec: SynthRecord, seed: int, index: BenchmarkIndex) -> Assembled:
    """Decontaminate solutions, dedup, split val, build the mixture (pure: a re-run from the same
    step files gives the same data)."""
    sc, gen = ctx.cfg.synth, ctx.gen.index
    for g in list(rec.groups):  # solutions too: a copied benchmark text may sit in any message
        texts = g.rows + [chat_row(p["prompt"][0]["content"], p["rejected"][0]["content"], {}) for p in g.pairs]
        hit = next((h for r in texts if (h := index.match_row(r)) is not None), None)
        if hit is not None:
            rec.groups.remove(g)
            rec.contaminated(g.kind, g.id, "benchmark_match_in_solution", g.text, hit)
    acc = mixture.earlier(ctx.lineage, gen, ctx.teacher.name, sc.accumulate)  # the teacher's promoted line only
    earlier = acc.rows
    earlier_problems = {r["meta"].get("problem_id", r["meta"]["id"]): r["messages"][0]["content"] for r in earlier}
    kept_ids, dropped = dedup_items([(g.id, g.text) for g in rec.groups], list(earlier_problems.items()),
                                    sc.dedup_threshold)
    for g in rec.groups:
        if g.id in dropped:
            d = dropped[g.id]
            rec.reject(g.kind, g.id, "dedup", d.pop("reason"), g.text, **d)
    kept = set(kept_ids)
    groups = [g for g in rec.groups if g.id in kept and g.rows]
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    val_ids = {groups[i].id for i in order[:int(len(groups) * sc.val_fraction)]}  # whole problems held out
    origin = mixture.gen_name(gen)  # the generation that wrote these rows, carried into every later mixture
    new = [{**r, "meta": {**r["meta"], "split": "val" if g.id in val_ids else "train", "origin": origin}}
           for g in groups for r in g.rows]
    pairs = [p for g in groups if g.id not in val_ids for p in g.pairs  # no val problem leaks via DPO
             if p["chosen"][0]["content"] != p["rejected"][0]["content"]]  # e.g. a flaky sandbox timeout
    trust = mixture.label_trust(ctx.cfg.gate.min_verifier_precision, dict(zip(acc.line, acc.dirs)),
                                (origin, verifier.math_precision(rec.verifier).as_dict()))
    train, mix = mixture.build([r for r in new if r["meta"]["split"] == "train"], earlier, hp["num_examples"],
                               hp["math_fraction"], sc.anchor_fraction, sc.min_anchor_examples, seed, gen, index, trust)
    train_groups = [g for g in groups if g.id not in val_ids]
    prompts = prompt_rows(ctx.cfg, train_groups, seed, index, with_pool=hp["math_fraction"] > 0)
    return Assembled(groups=groups, new=new, val=[r for r in new if r["meta"]["split"] == "val"], train=train,
                     pairs=pairs, prompts=prompts, mixture=mix, earlier_generations=len(acc.dirs),
                     accumulated=acc.record())


def write(d: Path, rec: SynthRecord, data: Assembled, stats: dict) -> dict[str, str]:
    """The stage's files, data first and stats.json last; returns their paths."""
    paths = {}
    for name, rows in (("new", data.new), ("train", data.train), ("val", data.val), ("pairs", data.pairs),
                       ("prompts", data.prompts), ("rejected", rec.rejected), ("verifier", rec.verifier),
                       ("code_mutants", rec.code_mutants)):
        paths[name] = str(write_jsonl(d / f"{name}.jsonl", rows))
    paths["stats"] = str(atomic_write_json(d / "stats.json", stats))
    return paths


def result(stats: dict, paths: dict[str, str]) -> StageResult:
    """The stage's metrics and info, read off its stats.json."""
    kept = {"math": stats["math"]["problems_kept"], "code": stats["code"]["tasks_kept"]}
    src = stats["math"]["source"]
    n_cand = stats["math"]["candidates"] + stats["code"]["candidates"]
    n_kept = kept["math"] + kept["code"]
    return StageResult(
        metrics={"synth.kept": stats["counts"]["new"], "synth.candidates": n_cand,
                 "synth.keep_rate": round(n_kept / n_cand, 4) if n_cand else 0.0,
                 "synth.distinct_2": stats["diversity"]["new_problems"]["distinct_2"],
                 "synth.decontam_hits": stats["decontamination"]["hits"],
                 "synth.anchor_examples": stats["mixture"]["anchor_examples"],
                 "synth.train_examples": stats["counts"]["train"],
                 "synth.pool_share": round(src["pool_kept"] / kept["math"], 4) if kept["math"] else 0.0,
                 **verifier.metrics(stats["verifier"])},
        info={"counts": stats["counts"], "problems_kept": kept, "paths": paths, "red_flags": stats["red_flags"],
              "hparams_source": stats["hparams"]["source"], "source": src["mode"],
              "synth_temperature": stats["hparams"]["synth_temperature"],
              "synth_temperature_note": "from the accepted proposal; this synthesis is shared by every candidate"},
        tokens=stats["tokens"]["generated"],
    )
