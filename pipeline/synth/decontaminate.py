"""Decontamination: keep benchmark items (GSM8K test, HumanEval, any registered benchmark) out of training data.

A row is contaminated when any of its message texts, after `textnorm.words` normalization (case,
punctuation, whitespace and instruction prefixes removed):
- shares a word n-gram holding a number with a benchmark item, numbers kept (n = `synth.decontam_ngram`,
  8 by default as in ConTAM/open-r1; an 8-gram without a number is generic phrasing, left to the
  masked 13-grams), or
- shares a word n-gram with numbers masked to one placeholder (n = `synth.decontam_ngram_masked`,
  13 as in lm-eval), so changing the numbers of a copied item does not hide it, or
- is a near-duplicate of a whole benchmark statement: at least `synth.decontam_near_dup` of the
  item's word 3-gram shingles occur in the text (containment, so wrapping a copied item in extra
  text does not hide it, and renaming a few words does not either), or
- rewords a benchmark statement (`pipeline.synth.paraphrase`): its quantities agree with the item's
  (>= 3 of 4, symmetric) and either the row's final answer is the item's answer and
  `synth.decontam_paraphrase_answer` of the item's IDF-weighted content words are kept
  (`numbers+answer`), or `synth.decontam_paraphrase` of them are (`numbers+lexical`, no answer
  needed). Calibrated on GSM8K train only; see that module.
Code is also checked by behaviour (`pipeline.synth.behaviour`, in the synth stage's code step): a
task whose solution passes a benchmark problem's own tests under its entry point is removed.
Every removal records the benchmark item it matched and the signal that fired (`match.kind`).

An item can restrict which checks it takes part in (`Benchmark.decontamination` yields `(label, id,
text)`, `(label, id, text, checks)` with checks `all` | `ngram` | `near_dup`, or `(label, id, text,
checks, answer)`: the item's final answer, for the numbers+answer signal; GSM8K's carry it): HumanEval's tests
take part in the n-gram checks only (their shingles are mostly numbers), its canonical solutions in
the near-duplicate check only (short generic code lines would make their n-grams match honest code).

The masked n-gram is longer because, with numbers masked, generic GSM8K phrasing ("has <num> more
than <num> the number of") makes 8-grams match 3.5% of GSM8K train; masked 13-grams match 0.1%.
Digit 8-grams matched 1.8% of GSM8K train, mostly number-free phrasing ("how many minutes will it take
her to"); holding a number, 0.3%.

All checks use hash indexes (an n-gram -> item map and a shingle -> items inverted index), so
checking a row costs O(its length), independent of the benchmark size. The items are every
registered benchmark's decontamination texts (`Benchmark.decontamination`, pipeline.evals): GSM8K test
questions and the validation slice the gate reads, HumanEval prompts (signature + docstring), tests and
canonical solutions, and whatever a plugin benchmark declares.

    python -m pipeline.synth.decontaminate --input IN.jsonl --output OUT.jsonl [--ngram 13]

writes kept rows to OUT, removed rows to OUT.removed.jsonl (with `matched_benchmark`, `matched_id`,
`match`), and prints `{"kept": .., "removed": ..}` as the last stdout line. Defaults come from
`conf/synth/default.yaml`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.evals import BENCHMARKS
from pipeline.infra.locate import conf_dir
from pipeline.synth.mathgen import checker
from pipeline.synth.paraphrase import ParaphraseIndex, final_answer
from pipeline.synth.textnorm import ngrams, stable_hash, words

SHINGLE = 3  # word 3-grams for whole-statement matching
CHECKS = ("all", "ngram", "near_dup")
_HAS_DIGIT = re.compile(r"\d")


@dataclass
class Match:
    benchmark: str  # the benchmark's decontamination label (Benchmark.decontamination)
    item_id: str
    # the signal that fired: ngram | ngram_masked | near_dup | numbers+answer | numbers+lexical | behaviour
    kind: str
    score: float  # near_dup: containment of the item's shingles; numbers+*: lexical share; ngram, behaviour: 1.0
    gram: str = ""  # the shared n-gram (ngram matches), for the report
    detail: dict = field(default_factory=dict)  # numbers+*: {"numbers", "lexical"}; behaviour: the program's result

    def as_dict(self) -> dict:
        return {"matched_benchmark": self.benchmark, "matched_id": self.item_id,
                "match": {"kind": self.kind, "score": round(self.score, 3), "gram": self.gram, **self.detail}}


class BenchmarkIndex:
    """Hash indexes over benchmark items; `match(text)` finds the first contaminating item."""

    def __init__(self, items: list[tuple], ngram: int, ngram_masked: int, near_dup: float,
                 paraphrase: float = 0.0, paraphrase_answer: float = 0.0) -> None:
        if min(ngram, ngram_masked) < 3:
            raise ValueError(f"decontamination n-gram sizes must be >= 3, got {ngram} and {ngram_masked}")
        if not 0 < near_dup <= 1:
            raise ValueError(f"near-duplicate containment threshold must be in (0, 1], got {near_dup}")
        if not 0 <= paraphrase <= 1 or not 0 <= paraphrase_answer <= 1 or (paraphrase > 0) != (paraphrase_answer > 0):
            raise ValueError("paraphrase lexical thresholds must both be in (0, 1], or both 0 (off), "
                             f"got {paraphrase} and {paraphrase_answer}")
        self.n, self.n_masked, self.near_dup, self.paraphrase = ngram, ngram_masked, near_dup, paraphrase
        self.paraphrase_answer = paraphrase_answer
        self.items = [(it[0], it[1]) for it in items]
        self.grams: dict[int, int] = {}  # digit n-grams and masked n-grams share one map (prefixed)
        self.postings: dict[int, list[int]] = {}
        self.sizes: list[int] = []
        reworded = []  # (position, text, answer) of the items the paraphrase check compares with
        normalize_number = checker().normalize_number  # the math checker's, as the rows' answers are read
        for idx, (_, item_id, text, *rest) in enumerate(items):
            checks = rest[0] if rest else "all"
            answer = normalize_number(str(rest[1])) if len(rest) > 1 and rest[1] is not None else None
            if checks not in CHECKS:
                raise ValueError(f"decontamination item {item_id!r}: checks {checks!r} is not one of {CHECKS}")
            ws = words(text)
            if checks in ("all", "ngram"):
                for g in ngrams(words(text, keep_numbers=True), ngram):
                    # A digit n-gram without a number is generic phrasing ("how many minutes will it take
                    # her to"): it matched ~1.5% of GSM8K train; the masked n-gram covers number-free text.
                    if _HAS_DIGIT.search(g):
                        self.grams.setdefault(stable_hash("d " + g), idx)
                for g in ngrams(ws, ngram_masked):
                    self.grams.setdefault(stable_hash("m " + g), idx)
            sh = {stable_hash(s) for s in ngrams(ws, SHINGLE)} if checks in ("all", "near_dup") else set()
            self.sizes.append(len(sh))
            for h in sh:
                self.postings.setdefault(h, []).append(idx)
            if checks == "all":
                reworded.append((idx, text, answer))
        self.reworded = ParaphraseIndex(reworded, paraphrase, paraphrase_answer) if paraphrase > 0 else None

    def __len__(self) -> int:
        return len(self.items)

    def match(self, text: str, answer: str | None = None) -> Match | None:
        """The first check that fires, in order: n-grams, near duplicate, paraphrase (`answer`: the
        normalized final answer of the row the text comes from, for the numbers+answer signal)."""
        ws = words(text)
        if not ws:
            return None
        for prefix, n, seq in (("d ", self.n, words(text, keep_numbers=True)), ("m ", self.n_masked, ws)):
            for g in ngrams(seq, n):
                idx = self.grams.get(stable_hash(prefix + g))
                if idx is not None:
                    return Match(*self.items[idx], "ngram" if prefix == "d " else "ngram_masked", 1.0, g)
        hits: Counter[int] = Counter()
        for s in ngrams(ws, SHINGLE):
            hits.update(self.postings.get(stable_hash(s), ()))
        best = max(hits.items(), key=lambda kv: kv[1] / max(self.sizes[kv[0]], 1), default=None)
        if best is not None:
            score = best[1] / max(self.sizes[best[0]], 1)
            # Very short items (a handful of shingles) would match generic phrasing; require >= 5.
            if score >= self.near_dup and self.sizes[best[0]] >= 5:
                return Match(*self.items[best[0]], "near_dup", score)
        hit = self.reworded.match(text, answer) if self.reworded is not None else None
        if hit is None:
            return None
        return Match(*self.items[hit.item], hit.signal, hit.lexical,
                     detail={"numbers": round(hit.numbers, 3), "lexical": round(hit.lexical, 3)})

    def match_row(self, row: dict) -> Match | None:
        """Check every message of a chat-format row (each text separately: n-grams across the
        user/assistant boundary mean nothing); the row's final answer goes with each."""
        texts = row_texts(row)
        answer = final_answer(row) if self.reworded is not None else None
        for m in texts:
            hit = self.match(m, answer)
            if hit is not None:
                return hit
        return None


def row_texts(row: dict) -> list[str]:
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs):
        raise ValueError("a row needs 'messages': a list of {'role', 'content': str} objects")
    return [m["content"] for m in msgs]


def benchmark_items() -> list[tuple]:
    """(label, id, text) for every item of every registered benchmark that training must not contain."""
    return [item for b in BENCHMARKS for item in b.decontamination()]


_INDEX_CACHE: dict[tuple, BenchmarkIndex] = {}


def default_index(ngram: int, ngram_masked: int, near_dup: float, paraphrase: float = 0.0,
                  paraphrase_answer: float = 0.0) -> BenchmarkIndex:
    """The benchmark index, built once per process per setting and set of registered benchmarks
    (about a second). `paraphrase` 0 leaves the paraphrase check off."""
    k = (ngram, ngram_masked, near_dup, paraphrase, paraphrase_answer, tuple((b.name, id(b)) for b in BENCHMARKS))
    if k not in _INDEX_CACHE:
        _INDEX_CACHE[k] = BenchmarkIndex(benchmark_items(), ngram, ngram_masked, near_dup, paraphrase, paraphrase_answer)
    return _INDEX_CACHE[k]


def index_for(sc) -> BenchmarkIndex:
    """The index a synthesis config asks for (`cfg.synth`: every check at its configured setting), so the
    synth stage and a candidate's own mixture decontaminate alike."""
    return default_index(sc.decontam_ngram, sc.decontam_ngram_masked, sc.decontam_near_dup, sc.decontam_paraphrase,
                         sc.decontam_paraphrase_answer)


def split_rows(rows: list[dict], index: BenchmarkIndex) -> tuple[list[dict], list[dict]]:
    """(kept, removed); removed rows carry `matched_benchmark`, `matched_id` and `match`."""
    kept, removed = [], []
    for row in rows:
        hit = index.match_row(row)
        if hit is None:
            kept.append(row)
        else:
            removed.append({**row, **hit.as_dict()})
    return kept, removed


def _yaml_defaults() -> tuple[int, int, float, float, float]:
    from omegaconf import OmegaConf

    y = OmegaConf.load(conf_dir() / "synth" / "default.yaml")
    return (int(y.decontam_ngram), int(y.decontam_ngram_masked), float(y.decontam_near_dup),
            float(y.decontam_paraphrase), float(y.decontam_paraphrase_answer))


def main(argv: list[str] | None = None) -> dict:
    from pipeline.infra.io import JsonlError, read_jsonl, write_jsonl

    ap = argparse.ArgumentParser(prog="python -m pipeline.synth.decontaminate", description=__doc__.split("\n")[0])
    ap.add_argument("--input", required=True, help="chat-format JSONL rows {'messages': [...], 'meta': {...}}")
    ap.add_argument("--output", required=True, help="kept rows; removed rows go to OUTPUT.removed.jsonl")
    ap.add_argument("--ngram", type=int, default=None, help="n-gram size, digits kept (default: conf/synth/default.yaml)")
    ap.add_argument("--ngram-masked", type=int, default=None, help="n-gram size, numbers masked")
    ap.add_argument("--near-dup", type=float, default=None, help="shingle containment threshold")
    ap.add_argument("--paraphrase", type=float, default=None,
                    help="lexical threshold for reworded items, numbers kept (0 = off; pipeline.synth.paraphrase)")
    ap.add_argument("--paraphrase-answer", type=float, default=None, help="lexical threshold when the answer agrees too")
    a = ap.parse_args(argv)
    n_default, nm_default, nd_default, para_default, ans_default = _yaml_defaults()
    para = para_default if a.paraphrase is None else a.paraphrase
    para_ans = (ans_default if para > 0 else 0.0) if a.paraphrase_answer is None else a.paraphrase_answer
    try:
        rows = read_jsonl(a.input)
        index = default_index(a.ngram or n_default, a.ngram_masked or nm_default, a.near_dup or nd_default,
                              para, para_ans)
        for i, r in enumerate(rows, 1):
            try:
                row_texts(r)
            except ValueError as e:
                raise ValueError(f"{a.input}:{i}: {e}") from None
        kept, removed = split_rows(rows, index)
    except (OSError, JsonlError, ValueError) as e:
        print(f"decontaminate: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    out = Path(a.output)
    write_jsonl(out, kept)
    write_jsonl(out.with_name(out.name[:-len(".jsonl")] + ".removed.jsonl" if out.name.endswith(".jsonl")
                              else out.name + ".removed.jsonl"), removed)
    by = Counter(r["matched_benchmark"] for r in removed)
    summary = {"kept": len(kept), "removed": len(removed)}
    print(json.dumps({"by_benchmark": dict(by), "ngram": index.n, "ngram_masked": index.n_masked,
                      "near_dup": index.near_dup, "paraphrase": index.paraphrase,
                      "paraphrase_answer": index.paraphrase_answer}))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
