"""Diversity measures and red flags for `gen_NNN/synth/stats.json`.

- `distinct_n`: unique word n-grams / all word n-grams over a set of texts (Li et al. 2016);
- `spread`: mean pairwise Jaccard distance between the texts' word sets (a seeded sample of pairs),
  which falls when problems converge on one template even if distinct-n stays high;
- `red_flags`: conditions the gate treats as disqualifying or suspicious, each a readable string;
- `mixture_checks`: the red flags that can be judged on data alone, run at train start on the
  mixture the trainer reads (new and accumulated rows together), each a rate with its Wilson
  interval; below `MIN_JUDGED` items a check is recorded as "too small to judge" (with n), never
  passed in silence;
- `vote_keep_rate`: the math vote's keep rate on synthetic problems (beside the verifier's yield);
- `compute`: the whole stats.json of a stage from its `SynthRecord` and final data (pure; the stage
  writes the file).
"""

from __future__ import annotations

import random
import re
from collections import Counter

from pipeline.stats import wilson
from pipeline.synth.decontaminate import BenchmarkIndex
from pipeline.synth import mathgen, verifier
from pipeline.synth.record import KINDS, Assembled, SynthRecord
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


MIN_JUDGED = 10  # below this many items a rate's 95% interval spans most of [0, 1]: too small to judge
COLLAPSE_SHARE = 0.5  # more than half of the problems sharing one final answer is collapse, not arithmetic


def answer_collapse(count: int, n: int, answer: str | None, what: str) -> dict:
    """The share of `n` problems (`what`, e.g. "kept problems") whose final answer is the most common
    one (`answer`, `count` of them): a rate with its Wilson interval and a verdict, `flagged` when the
    share exceeds COLLAPSE_SHARE on at least MIN_JUDGED problems, `too small to judge` below that."""
    verdict = "too small to judge" if n < MIN_JUDGED else "flagged" if count / n > COLLAPSE_SHARE else "clear"
    rate = wilson(count, n)
    text = f"answer collapse: {count}/{n} {what} have the answer {answer}"
    if rate.estimate is not None:
        text += f" (rate {rate.estimate:.2f}, 95% interval [{rate.lo:.2f}, {rate.hi:.2f}])"
    if verdict == "too small to judge":
        text = f"answer collapse: too small to judge ({n} {what}, fewer than {MIN_JUDGED})"
    return {"check": "answer_collapse", "n": n, "answer": answer, "count": count, "rate": rate.as_dict(),
            "threshold": COLLAPSE_SHARE, "min_n": MIN_JUDGED, "verdict": verdict, "text": text}


def synthetic_share(k: int, n: int) -> dict:
    """The share of the mixture's rows that are synthetic (not GSM8K-train anchors): none at all means
    the generation trains on no data of its own (the anchor fallback)."""
    verdict = "too small to judge" if n == 0 else "flagged" if k == 0 else "clear"
    rate = wilson(k, n)
    text = (f"no synthetic row: the {n} mixture rows are all {mathgen.title()}-train anchors" if verdict == "flagged"
            else f"synthetic share: too small to judge (n={n})" if verdict == "too small to judge"
            else f"synthetic share {k}/{n}")
    return {"check": "synthetic_share", "n": n, "count": k, "rate": rate.as_dict(), "verdict": verdict, "text": text}


_FINAL = re.compile(r"####\s*(\S+)\s*$")


def _final_answer(row: dict) -> str | None:
    """A math row's label: the vote's majority (`meta.answer`), else its `#### N` line (anchors)."""
    if row["meta"].get("answer") is not None:
        return str(row["meta"]["answer"])
    last = (row.get("messages") or [{}])[-1]
    m = _FINAL.search(str(last.get("content", "") if isinstance(last, dict) else "").strip())
    return m.group(1).replace(",", "") if m else None


def mixture_checks(rows: list[dict]) -> dict:
    """The data red flags on the rows a candidate trains on: {"checks": [...], "red_flags": [texts
    of the flagged ones], "not_judged": [texts of those too small to judge]}."""
    rows = [{**r, "meta": r.get("meta") if isinstance(r.get("meta"), dict) else {}} for r in rows]  # hand-written data
    answers = {}
    for i, r in enumerate(rows):
        if r["meta"].get("kind") == "math":  # one label per problem: its rows share the vote's answer
            answers[r["meta"].get("problem_id", r["meta"].get("id", i))] = _final_answer(r)
    top = Counter(a for a in answers.values() if a is not None).most_common(1)
    answer, count = top[0] if top else (None, 0)
    synthetic = sum(r["meta"].get("source") != "anchor" for r in rows)
    checks = [answer_collapse(count, len(answers), answer, "math problems of the training mixture"),
              synthetic_share(synthetic, len(rows))]
    return {"checks": checks, "red_flags": [c["text"] for c in checks if c["verdict"] == "flagged"],
            "not_judged": [c["text"] for c in checks if c["verdict"] == "too small to judge"]}


def red_flags(stats: dict) -> list[str]:
    """Readable flags; `final_decontam_hits > 0` and anchor-only fallback are the serious ones."""
    flags = []
    if stats["decontamination"]["final_hits"]:
        flags.append(f"{stats['decontamination']['final_hits']} benchmark matches remain in train.jsonl")
    if stats["mixture"].get("fallback_anchor"):
        dropped = (stats["mixture"].get("guard") or {}).get("dropped_total")
        flags.append(f"no trustworthy synthetic example: gate.min_verifier_precision dropped {dropped} rows"
                     if dropped else f"no verified synthetic example: train.jsonl holds only {mathgen.title()}-train anchor rows")
    m = stats["math"]
    if m["candidates"] >= 10 and m["problems_kept"] == m["candidates"]:
        flags.append("math verifier kept every candidate problem (check the agreement filter)")
    answers = m.get("majority_answers", {})
    dropped = (stats["mixture"].get("guard") or {}).get("dropped", {})
    if answers and not dropped.get(f"gen_{stats['gen']:03d}"):  # rows the label guard dropped are not trained
        top, c = max(answers.items(), key=lambda kv: kv[1])
        collapse = answer_collapse(c, m["problems_kept"], top, "kept problems")
        if collapse["verdict"] == "flagged":
            flags.append(collapse["text"])
    c = stats["code"]
    if c["candidates"] >= 5 and c.get("parsed", 0) and c["tasks_kept"] == c["parsed"]:
        flags.append("code verifier kept every parsed task (check the sandbox)")
    if c.get("sandbox_errors", 0) and c.get("sandbox_errors") == c.get("sandbox_runs"):
        flags.append("every sandbox run ended in 'error': the sandbox itself may be broken")
    return flags


def vote_keep_rate(rec: SynthRecord) -> float | None:
    """Share of the parsed synthetic problems the vote kept (beside the verifier's yield on real ones)."""
    m = rec.math
    if not m.parsed:
        return None
    low = sum(r["kind"] == "math" and r["filter"] == "agreement" for r in rec.rejected)
    return round((m.parsed - low) / m.parsed, 4)


def compute(rec: SynthRecord, data: Assembled, index: BenchmarkIndex, gen: int, teacher: str, hparams: dict,
            math_source: str) -> dict:
    """The stats.json of a synth stage, `red_flags` included (the stage writes it)."""
    final_hits = [h.as_dict() for r in data.train if (h := index.match_row(r)) is not None]
    kept = {k: sum(g.kind == k for g in data.groups) for k in KINDS}
    rows_new = {k: sum(r["meta"]["kind"] == k for r in data.new) for k in KINDS}
    m = rec.math
    stats = {
        "gen": gen, "teacher": teacher, "hparams": hparams,
        "math": {"candidates": rec.candidates["math"], "parsed": m.parsed, "problems_kept": kept["math"],
                 "source": {"mode": math_source, "pool_candidates": m.from_pool, "teacher_candidates": rec.candidates["math"] - m.from_pool,
                            "pool_kept": sum(g.kind == "math" and g.rows[0]["meta"].get("source") == "pool"
                                             for g in data.groups)},
                 "rows": rows_new["math"], "rejected": rec.rejections_by_filter("math"),
                 "agreement_histogram": agreement_histogram(m.agreements),
                 "sample_reasons": dict(m.sample_reasons), "majority_answers": dict(m.majority_answers.most_common(10))},
        "code": {"candidates": rec.candidates["code"], "tasks_kept": kept["code"], "rows": rows_new["code"],
                 "rejected": rec.rejections_by_filter("code"), **rec.code.as_dict()},
        "decontamination": {"ngram": index.n, "ngram_masked": index.n_masked, "near_dup": index.near_dup,
                            "paraphrase": index.paraphrase, "paraphrase_answer": index.paraphrase_answer,
                            "hits": len(rec.decontam),
                            "by_benchmark": dict(Counter(h["matched_benchmark"] for h in rec.decontam)),
                            "by_kind": dict(Counter(h["match"]["kind"] for h in rec.decontam)),  # the signal that fired
                            "earlier_rows_removed": data.mixture["pool"]["earlier_decontaminated"],
                            "final_hits": len(final_hits), "final_matches": final_hits[:20]},
        "dedup": {k: sum(r["reason"] == k for r in rec.rejected) for k in ("dup_within_gen", "dup_earlier_gen", "copies_exemplar")},
        "diversity": {"new_problems": diversity([g.text for g in data.groups]),
                      "train_prompts": diversity([r["messages"][0]["content"] for r in data.train])},
        "tokens": {"generated": sum(rec.tokens.values()), "by_step": rec.tokens,
                   "train_words": sum(len(msg["content"].split()) for r in data.train for msg in r["messages"])},
        "mixture": {**data.mixture, "earlier_generations": data.earlier_generations, "accumulated": data.accumulated},
        "verifier": verifier.summary(rec.verifier, rec.code_mutants, vote_keep_rate(rec)),
        "counts": {"new": len(data.new), "train": len(data.train), "val": len(data.val), "pairs": len(data.pairs),
                   "prompts": len(data.prompts), "rejected": len(rec.rejected)},
    }
    stats["red_flags"] = red_flags(stats)
    return stats
