"""How often the synthesis verifiers' labels are right, measured every generation.

    python -m pipeline.loop            # the synth stage runs both (synth.verifier.*; 0 = off)

Nothing else checks the teacher's "verified" labels: a math answer is a majority vote, a code
task's tests are written beside its own solution. Two measurements, neither changes what is kept:
- math precision: the same vote the synth stage uses (mathgen.solve_prompts + mathgen.vote, the
  same k, temperature and agreement threshold) on `synth.verifier.n_questions` questions of the
  held-out GSM8K-train `verifier` slice (pipeline.synth.mathgen.train_slice; never trained on, disjoint
  from validation, exemplars and pool); the optional program-of-thought check is not applied, so
  this is the vote's own precision. Only the questions reach the teacher; the gold answers only
  score the votes. precision = kept labels equal to gold / kept labels, yield = kept / asked
  (to set beside the vote's keep rate on synthetic problems, `vote_keep_rate`).
- code kill rate: the kept tests run against non-trivial AST mutants of each kept task's reference
  solution (pipeline.synth.mutants) in the sandbox with the eval's hardened checker
  (codegen.check_program); a mutant that passes the tests survives, one that fails or hangs is
  killed. kill rate = killed / mutants run (over the kept tasks, before dedup).
Both carry Wilson intervals (pipeline.stats). Per-item records: verifier.jsonl (id, majority,
agreement, kept, gold, correct) and code_mutants.jsonl (id, mutants with kind, line, status, killed).
"""

from __future__ import annotations

from collections import Counter

from pipeline.config import Config
from pipeline.sandbox import run_programs
from pipeline.stats import Interval, wilson
from pipeline.stats.ledger import flat
from pipeline.synth import codegen, mathgen
from pipeline.synth.mutants import KINDS, mutants


def questions(n: int) -> list[dict]:
    """The first `n` questions of the `verifier` slice (file order: the same every generation)."""
    rows = mathgen.train_slice("verifier")
    if n > len(rows):
        raise ValueError(f"synth.verifier.n_questions={n} exceeds the {len(rows)} questions of the "
                         f"{mathgen.title()}-train verifier slice")
    return rows[:n]


def math_prompts(qs: list[dict], few_shot_solve: int, seed: int) -> list[list]:
    """The synth stage's own solving prompts, built from the questions alone (no gold answer)."""
    return mathgen.solve_prompts([q["question"] for q in qs], few_shot_solve, seed)


def score_math(qs: list[dict], samples: list[dict], cfg: Config) -> list[dict]:
    """One verifier.jsonl record per question: the vote on its k samples, scored against gold."""
    mc, g = cfg.synth.math, mathgen.checker()
    out = []
    for q, s in zip(qs, samples, strict=True):
        v = mathgen.vote(s["texts"], s["finishes"], mc.agreement_threshold, mc.max_solutions_per_problem,
                         cfg.synth.max_output_chars)
        gold = g.final_answer(q["answer"])
        out.append({"id": q["id"], "majority": v["majority"], "agreement": round(v["agreement"], 4),
                    "kept": v["kept"], "reason": v["reason"], "gold": gold,
                    "correct": bool(v["kept"] and g.is_correct(v["majority"], gold))})
    return out


def run_mutants(tasks: list[dict], limit: int, cfg: Config) -> list[dict]:
    """One code_mutants.jsonl record per task: each mutant's kind, line and sandbox status under the
    task's tests ("failed" or "timeout" kills it, "passed" survives, a sandbox "error" is not
counted). One batched sandbox run."""
    muts = [mutants(t["solution"], t["entry_point"], limit) for t in tasks]
    res = iter(run_programs([codegen.check_program(m.code, t["tests"], t["entry_point"], t.get("context", ""))
                             for t, ms in zip(tasks, muts) for m in ms], cfg.sandbox))
    out = []
    for t, ms in zip(tasks, muts):
        rows = [{"kind": m.kind, "line": m.line, "status": next(res).status} for m in ms]
        for r in rows:  # a sandbox "error" (it could not run the program) measures nothing
            r["killed"] = None if r["status"] == "error" else r["status"] != "passed"
        ran = [r for r in rows if r["killed"] is not None]
        out.append({"id": t["id"], "n": len(ran), "killed": sum(r["killed"] for r in ran), "mutants": rows})
    return out


def math_precision(math: list[dict]) -> Interval:
    """Kept labels equal to gold / kept labels, with its Wilson interval (n = 0: not measured); the
    interval `gate.min_verifier_precision` judges (pipeline.synth.mixture.LabelTrust)."""
    return wilson(sum(r["correct"] for r in math), sum(r["kept"] for r in math))


def summary(math: list[dict], code: list[dict], vote_keep_rate: float | None) -> dict:
    """stats.json "verifier": counts, rates and their Wilson intervals (None where not measured)."""
    asked, kept = len(math), sum(r["kept"] for r in math)
    correct = sum(r["correct"] for r in math)
    prec, yld = math_precision(math), wilson(kept, asked)
    flat_muts = [m for r in code for m in r["mutants"] if m["killed"] is not None]
    kill = wilson(sum(m["killed"] for m in flat_muts), len(flat_muts))
    by_kind = {k: {"mutants": sum(m["kind"] == k for m in flat_muts),
                   "killed": sum(m["kind"] == k and m["killed"] for m in flat_muts)} for k in KINDS}
    return {
        "math": {"asked": asked, "kept": kept, "correct": correct, "precision": prec.as_dict(),
                 "yield": yld.as_dict(), "vote_keep_rate": vote_keep_rate,
                 "reasons": dict(Counter(r["reason"] for r in math))},
        "code": {"tasks": len(code), "mutants": len(flat_muts), "killed": sum(m["killed"] for m in flat_muts),
                 "kill_rate": kill.as_dict(), "by_kind": by_kind,
                 "tasks_with_survivors": sum(r["killed"] < r["n"] for r in code)},
    }


def metrics(stats: dict) -> dict:
    """The StageResult metrics of a stats.json "verifier" section: each measured rate with its
    interval keys (`_lo`, `_hi`, `_n`; pipeline.stats.ledger); unmeasured ones are left out."""
    out: dict = {}
    for key, iv in (("synth.verifier_precision", stats["math"]["precision"]),
                    ("synth.verifier_yield", stats["math"]["yield"]),
                    ("synth.code_kill_rate", stats["code"]["kill_rate"])):
        if iv["n"]:
            out[key] = round(iv["estimate"], 4)
            out.update(flat(key, Interval(**iv)))
    return out
