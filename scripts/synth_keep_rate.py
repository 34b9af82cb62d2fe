"""Synthesis keep rate on a saved sample: which teacher-written code tasks the current checker keeps.

    PYTHONPATH=$PWD .venv/bin/python -m scripts.synth_keep_rate [--out verdicts.json] [--baseline B.json]

The sample (tests/data/synth_keep/code_tasks.jsonl.gz, made by scripts/parity_generate.py: the
embedded SmolLM2-135M-Instruct writing tasks as the synth stage asks it to) is run through the synth
stage's own code path, `pipeline.synth.steps.synth_code`, with its engine outputs loaded from disk
(the stage's resume path), so parsing, decontamination and verification (the reference solution
passes its tests, every trivial mutant fails them) are exactly the stage's; k_solutions = 0 (no
engine). Kept tasks also run the verifier's AST mutants (the kill rate).

Prints (and writes to --out) the keep rate = kept / parsed with its Wilson interval, rejection
reasons, the kill rate and each parsed task's verdict. With --baseline (an earlier --out, e.g.
made on another checker) it adds the paired difference per task (`pipeline.stats.paired_binary`:
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


def keep_rate(sample: Path = SAMPLE) -> dict:
    from pipeline.compose import compose
    from pipeline.io import write_jsonl
    from pipeline.stats import wilson
    from pipeline.synth.decontaminate import default_index
    from pipeline.synth.record import SynthRecord
    from pipeline.synth.steps import Job, Steps, synth_code
    from scripts.make_parity_corpus import read_rows

    raw = read_rows(sample)
    cfg = compose(["model=embedded:smollm2-135m-instruct", "experiment=cpu", "seed=0",
                   f"synth.code.n_tasks={len(raw)}", "synth.code.k_solutions=0"])
    sc = cfg.synth
    index = default_index(sc.decontam_ngram, sc.decontam_ngram_masked, sc.decontam_near_dup, sc.decontam_paraphrase)
    rec = SynthRecord()
    with tempfile.TemporaryDirectory() as work:
        write_jsonl(Path(work) / "code_tasks.jsonl", [{k: r[k] for k in ("texts", "finishes", "tokens")} for r in raw])
        job = Job(cfg=cfg, engine=None, steps=Steps(Path(work), {"keep_rate": str(sample)}), seed=0, gen=1, hp={},
                  index=index)
        synth_code(job, rec)
    kept = {g.id for g in rec.groups}
    checked = {r["id"]: r for r in rec.rejected if r["filter"] in ("program_check", "discrimination")}
    verdicts = {tid: True for tid in kept}
    verdicts.update({tid: False for tid in checked})
    reasons: dict[str, int] = {}
    for r in rec.rejected:
        reasons[f"{r['filter']}/{r['reason']}"] = reasons.get(f"{r['filter']}/{r['reason']}", 0) + 1
    muts = [m for r in rec.code_mutants for m in r["mutants"] if m["killed"] is not None]
    return {
        "sample": str(sample.relative_to(ROOT) if sample.is_relative_to(ROOT) else sample),
        "candidates": len(raw), "parsed": rec.code.parsed, "kept": len(kept),
        "keep_rate": wilson(len(kept), rec.code.parsed).as_dict(),
        "rejected": dict(sorted(reasons.items())),
        "kill_rate": wilson(sum(m["killed"] for m in muts), len(muts)).as_dict(),
        "sandbox_errors": rec.code.sandbox_errors,
        "verdicts": dict(sorted(verdicts.items())),
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
    a = ap.parse_args(argv)
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
