"""Diversity measures and red flags for `gen_NNN/synth/stats.json`.

- `distinct_n`: unique word n-grams / all word n-grams over a set of texts (Li et al. 2016);
- `spread`: mean pairwise Jaccard distance between the texts' word sets (a seeded sample of pairs),
  which falls when problems converge on one template even if distinct-n stays high;
- `red_flags`: conditions the gate treats as disqualifying or suspicious, each a readable string.
"""

from __future__ import annotations

import random
from collections import Counter

from pipeline.synth.textnorm import words


def distinct_n(texts: list[str], n: int) -> float:
    grams: list[tuple] = []
    for t in texts:
        ws = words(t, keep_numbers=True)
        grams += [tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def spread(texts: list[str], pairs: int = 2000, seed: int = 0) -> float:
    sets = [set(words(t, keep_numbers=True)) for t in texts]
    sets = [s for s in sets if s]
    if len(sets) < 2:
        return 0.0
    rng = random.Random(seed)
    total = 0.0
    all_pairs = len(sets) * (len(sets) - 1) // 2
    if all_pairs <= pairs:
        idx = [(i, j) for i in range(len(sets)) for j in range(i + 1, len(sets))]
    else:
        idx = [tuple(rng.sample(range(len(sets)), 2)) for _ in range(pairs)]
    for i, j in idx:
        a, b = sets[i], sets[j]
        total += 1 - len(a & b) / len(a | b)
    return round(total / len(idx), 4)


def diversity(texts: list[str]) -> dict:
    return {"n": len(texts), "distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
            "spread_jaccard": spread(texts)}


def agreement_histogram(agreements: list[float]) -> dict:
    """Count of problems per majority share (e.g. {"0.5": 3, "1.0": 7})."""
    return {f"{a:.2f}": c for a, c in sorted(Counter(round(x, 2) for x in agreements).items())}


def red_flags(stats: dict) -> list[str]:
    """Readable flags; `final_decontam_hits > 0` and anchor-only fallback are the serious ones."""
    flags = []
    if stats["decontamination"]["final_hits"]:
        flags.append(f"{stats['decontamination']['final_hits']} benchmark matches remain in train.jsonl")
    if stats["mixture"].get("fallback_anchor"):
        flags.append("no verified synthetic example: train.jsonl holds only GSM8K-train anchor rows")
    m = stats["math"]
    if m["candidates"] >= 10 and m["problems_kept"] == m["candidates"]:
        flags.append("math verifier kept every candidate problem (check the agreement filter)")
    answers = m.get("majority_answers", {})
    if m["problems_kept"] >= 10 and answers:
        top, c = max(answers.items(), key=lambda kv: kv[1])
        if c / m["problems_kept"] > 0.5:
            flags.append(f"answer collapse: {c}/{m['problems_kept']} kept problems have the answer {top}")
    c = stats["code"]
    if c["candidates"] >= 5 and c.get("parsed", 0) and c["tasks_kept"] == c["parsed"]:
        flags.append("code verifier kept every parsed task (check the sandbox)")
    if c.get("sandbox_errors", 0) and c.get("sandbox_errors") == c.get("sandbox_runs"):
        flags.append("every sandbox run ended in 'error': the sandbox itself may be broken")
    return flags


def finish(cfg, ctx, hp: dict, out: dict, new: list[dict], train: list[dict], pairs: list[dict], mix: dict,
           groups: list[dict], index, earlier_gens: int):
    """Write the stage's files (data first, stats.json last) and return its StageResult."""
    from pipeline.io import atomic_write_json, write_jsonl
    from pipeline.stage import StageResult

    d = ctx.out
    val = [r for r in new if r["meta"]["split"] == "val"]
    final_hits = [h.as_dict() for r in train if (h := index.match_row(r)) is not None]
    rej = out["rejected"]
    per = {k: {} for k in ("math", "code")}
    for r in rej:
        f = per[r["kind"]].setdefault(r["filter"], {})
        f[r["reason"]] = f.get(r["reason"], 0) + 1
    kept = {k: sum(g["kind"] == k for g in groups) for k in ("math", "code")}
    cand = {"math": cfg.synth.math.n_problems if out["tokens"].get("math_problems") is not None else 0,
            "code": cfg.synth.code.n_tasks if out["tokens"].get("code_tasks") is not None else 0}
    rows_new = {k: sum(r["meta"]["kind"] == k for r in new) for k in ("math", "code")}
    problems = [g["text"] for g in groups]
    stats = {
        "gen": ctx.gen.index, "teacher": ctx.teacher.name, "hparams": hp,
        "math": {"candidates": cand["math"], "parsed": out["math"]["parsed"], "problems_kept": kept["math"],
                 "rows": rows_new["math"], "rejected": per["math"],
                 "agreement_histogram": agreement_histogram(out["math"]["agreements"]),
                 "sample_reasons": dict(out["math"]["sample_reasons"]),
                 "majority_answers": dict(out["math"]["majority_answers"].most_common(10))},
        "code": {"candidates": cand["code"], "tasks_kept": kept["code"], "rows": rows_new["code"],
                 "rejected": per["code"], **out["code"]},
        "decontamination": {"ngram": index.n, "ngram_masked": index.n_masked, "near_dup": index.near_dup,
                            "hits": len(out["decontam"]),
                            "by_benchmark": dict(Counter(h["matched_benchmark"] for h in out["decontam"])),
                            "by_kind": dict(Counter(h["match"]["kind"] for h in out["decontam"])),
                            "earlier_rows_removed": mix["pool"]["earlier_decontaminated"],
                            "final_hits": len(final_hits), "final_matches": final_hits[:20]},
        "dedup": {k: sum(r["reason"] == k for r in rej) for k in ("dup_within_gen", "dup_earlier_gen", "copies_exemplar")},
        "diversity": {"new_problems": diversity(problems),
                      "train_prompts": diversity([r["messages"][0]["content"] for r in train])},
        "tokens": {"generated": sum(out["tokens"].values()), "by_step": out["tokens"],
                   "train_words": sum(len(m["content"].split()) for r in train for m in r["messages"])},
        "mixture": {**mix, "earlier_generations": earlier_gens},
        "counts": {"new": len(new), "train": len(train), "val": len(val), "pairs": len(pairs), "rejected": len(rej)},
    }
    stats["red_flags"] = red_flags(stats)
    paths = {}
    for name, rows in (("new", new), ("train", train), ("val", val), ("pairs", pairs), ("rejected", rej)):
        paths[name] = str(write_jsonl(d / f"{name}.jsonl", rows))
    atomic_write_json(d / "stats.json", stats)
    n_cand = cand["math"] + cand["code"]
    n_kept = kept["math"] + kept["code"]
    return StageResult(
        metrics={"synth.kept": len(new), "synth.candidates": n_cand,
                 "synth.keep_rate": round(n_kept / n_cand, 4) if n_cand else 0.0,
                 "synth.distinct_2": stats["diversity"]["new_problems"]["distinct_2"],
                 "synth.decontam_hits": len(out["decontam"]), "synth.anchor_examples": mix["anchor_examples"],
                 "synth.train_examples": len(train)},
        info={"counts": stats["counts"], "problems_kept": kept, "paths": {**paths, "stats": str(d / "stats.json")},
              "red_flags": stats["red_flags"], "hparams_source": hp["source"]},
        tokens=stats["tokens"]["generated"],
    )
