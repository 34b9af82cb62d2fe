"""Synthesis keep rate on a saved sample: which code tasks the synth stage's verification keeps.

    PYTHONPATH=$PWD PIPELINE_DATA_DIR=../shared/data .venv/bin/python -m scripts.synth_keep_rate \
        [--out verdicts.json] [--baseline B.json]
    PYTHONPATH=$PWD .venv/bin/python -m scripts.synth_keep_rate --make-sample   # rewrite the sample

The sample (tests/data/synth_keep/code_tasks.jsonl.gz) holds teacher outputs in the format the synth
stage asks for (a function block with docstring and solution, then an assert block), `source`:
- `smollm2`: 32 real outputs of the embedded SmolLM2-135M-Instruct (scripts/parity_generate.py, the
  synth stage's prompts and sampling); the 135M teacher writes no task that parses, so these only
  show that;
- `humaneval`: stand-ins for a capable teacher, made by `make_sample` from HumanEval: the prompt plus
  its canonical solution, and as tests the top-level asserts of its `check` that use only the entry
  point and builtins (`candidate` renamed);
- `humaneval-mutant`: the same tasks for every third problem with a buggy reference solution (the
  first AST mutant of scripts/make_parity_corpus.py), which verification should reject.
It is run through the synth stage's own code path, `pipeline.synth.steps.synth_code`, with the engine
outputs loaded from disk (the stage's resume path), so parsing and verification (the reference
solution passes its tests, every trivial mutant fails them) are exactly the stage's. Decontamination
is off (an empty benchmark index: the stand-ins are HumanEval by construction) and k_solutions = 0
(no engine). Kept tasks also run `synth.verifier.max_mutants_per_task` AST mutants (the kill rate).

Prints (and writes to --out) keep rate = kept / parsed with its Wilson interval, per source,
rejection reasons, the kill rate and each parsed task's verdict. With --baseline (an earlier --out,
e.g. made on another checker) it adds the paired difference per task (`pipeline.stats.paired_binary`:
Newcombe interval, exact McNemar p) and lists the tasks whose verdict changed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "synth_keep" / "code_tasks.jsonl.gz"


def _asserts(problem: dict) -> list[str]:
    """The top-level asserts of a HumanEval `check` that use only the entry point and builtins."""
    import ast
    import builtins

    check = next(n for n in ast.parse(problem["test"]).body if isinstance(n, ast.FunctionDef) and n.name == "check")
    out = []
    for a in check.body:
        if not isinstance(a, ast.Assert) or isinstance(a.test, ast.Constant):
            continue
        names = {n.id for n in ast.walk(a) if isinstance(n, ast.Name)}
        if "candidate" in names and names <= {"candidate", *dir(builtins)}:
            a = ast.Assert(a.test, None)  # the message is HumanEval's, not the task's
            out.append(ast.unparse(a).replace("candidate(", f"{problem['entry_point']}("))
    return out


def make_sample(min_asserts: int = 3) -> list[dict]:
    """The HumanEval stand-in tasks, in the teacher's two-block format (see the module docstring)."""
    from scripts.make_parity_corpus import mutant_body, problems
    from pipeline.synth.mutants import mutants

    rows = []
    for i, (tid, p) in enumerate(problems().items()):
        tests = _asserts(p)
        if len(tests) < min_asserts:
            continue
        sols = [("humaneval", p["canonical_solution"])]
        muts = mutants(p["prompt"] + p["canonical_solution"], p["entry_point"], 1) if i % 3 == 0 else []
        sols += [("humaneval-mutant", mutant_body(p["entry_point"], m.code)) for m in muts]
        for source, body in sols:
            text = f"```python\n{p['prompt']}{body}```\n```python\n" + "\n".join(tests) + "\n```"
            rows.append({"texts": [text], "finishes": ["stop"], "tokens": 0, "source": source, "task_id": tid})
    return rows


def keep_rate(sample: Path = SAMPLE) -> dict:
    from pipeline.config.compose import compose
    from pipeline.infra.io import write_jsonl
    from pipeline.stats import wilson
    from pipeline.synth.decontaminate import BenchmarkIndex
    from pipeline.synth.record import SynthRecord
    from pipeline.synth.steps import Job, Steps, synth_code
    from scripts.make_parity_corpus import read_rows

    raw = read_rows(sample)
    cfg = compose(["model=embedded:smollm2-135m-instruct", "experiment=cpu", "seed=0",
                   f"synth.code.n_tasks={len(raw)}", "synth.code.k_solutions=0"])
    sc = cfg.synth
    no_benchmarks = BenchmarkIndex([], sc.decontam_ngram, sc.decontam_ngram_masked, sc.decontam_near_dup)
    rec = SynthRecord()
    with tempfile.TemporaryDirectory() as work:
        write_jsonl(Path(work) / "code_tasks.jsonl", [{k: r[k] for k in ("texts", "finishes", "tokens")} for r in raw])
        job = Job(cfg=cfg, engine=None, steps=Steps(Path(work), {"keep_rate": str(sample)}), seed=0, gen=1, hp={},
                  index=no_benchmarks)
        synth_code(job, rec)
    source = {f"g001-code-{i:05d}": r["source"] for i, r in enumerate(raw)}  # synth_code's ids (gen 1)
    kept = {g.id for g in rec.groups}
    checked = {r["id"]: r for r in rec.rejected if r["filter"] in ("program_check", "discrimination")}
    verdicts = {tid: tid in kept for tid in sorted(kept | set(checked))}
    reasons: dict[str, int] = {}
    for r in rec.rejected:
        key = f"{source[r['id']]}: {r['filter']}/{r['reason']}"
        reasons[key] = reasons.get(key, 0) + 1
    muts = [m for r in rec.code_mutants for m in r["mutants"] if m["killed"] is not None]
    by_source = {}
    for src in sorted(set(source.values())):
        v = [ok for t, ok in verdicts.items() if source[t] == src]
        by_source[src] = {"candidates": sum(s == src for s in source.values()), "parsed": len(v), "kept": sum(v)}
    return {
        "sample": str(sample.relative_to(ROOT) if sample.is_relative_to(ROOT) else sample),
        "candidates": len(raw), "parsed": rec.code.parsed, "kept": len(kept),
        "keep_rate": wilson(len(kept), rec.code.parsed).as_dict(), "by_source": by_source,
        "rejected": dict(sorted(reasons.items())),
        "kill_rate": wilson(sum(m["killed"] for m in muts), len(muts)).as_dict(),
        "sandbox_errors": rec.code.sandbox_errors,
        "verdicts": verdicts,
        "details": {r["id"]: str(r.get("detail", r.get("mutants_passed", "")))[:200] for r in checked.values()},
    }


def compare(base: dict, new: dict) -> dict:
    """Paired change per parsed task (both runs must have parsed the same tasks)."""
    from pipeline.stats.paired import paired_binary

    if set(base["verdicts"]) != set(new["verdicts"]):
        raise ValueError("the two runs verified different tasks; compare runs on the same sample")
    p = paired_binary(base["verdicts"], new["verdicts"])
    return {"n": p.n, "old": p.a, "new": p.b, "diff": p.diff, "lo": p.lo, "hi": p.hi, "p_mcnemar": p.p_value,
            "kept_only_old": sorted(t for t, v in base["verdicts"].items() if v and not new["verdicts"][t]),
            "kept_only_new": sorted(t for t, v in new["verdicts"].items() if v and not base["verdicts"][t])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sample", default=str(SAMPLE))
    ap.add_argument("--out", default=None, help="write the result (JSON) here")
    ap.add_argument("--baseline", default=None, help="an earlier --out to compare with, task by task")
    ap.add_argument("--make-sample", action="store_true",
                    help="rewrite the sample: the smollm2 rows kept, the HumanEval stand-ins made afresh")
    a = ap.parse_args(argv)
    if a.make_sample:
        from scripts.make_parity_corpus import read_rows
        from scripts.parity_generate import write_gz

        model = [{**r, "source": "smollm2"} for r in read_rows(Path(a.sample)) if r.get("source", "smollm2") == "smollm2"]
        rows = model + make_sample()
        write_gz(Path(a.sample), rows)
        print(f"{a.sample}: {len(model)} model outputs + {len(rows) - len(model)} HumanEval stand-ins")
        return 0
    res = keep_rate(Path(a.sample).resolve())
    if a.baseline:
        res["vs_baseline"] = compare(json.loads(Path(a.baseline).read_text()), res)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    short = {k: v for k, v in res.items() if k not in ("verdicts", "details")}
    print(json.dumps(short, indent=1))
    return 0

if __name__ == "__main__":
    sys.exit(main())
