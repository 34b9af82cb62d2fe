"""Decontamination: keep benchmark items (GSM8K test, HumanEval, any registered benchmark) out of training data.

A row is contaminated when any of its message texts, after `textnorm.words` normalization (case,
punctuation, whitespace and instruction prefixes removed):
- shares a word n-gram with a benchmark item, numbers kept (n = `synth.decontam_ngram`, 8 by default
  as in ConTAM/open-r1), or
- shares a word n-gram with numbers masked to one placeholder (n = `synth.decontam_ngram_masked`,
  13 as in lm-eval), so changing the numbers of a copied item does not hide it, or
- is a near-duplicate of a whole benchmark statement: at least `synth.decontam_near_dup` of the
  item's word 3-gram shingles occur in the text (containment, so wrapping a copied item in extra
  text does not hide it, and renaming a few words does not either).

The masked n-gram is longer because, with numbers masked, generic GSM8K phrasing ("has <num> more
than <num> the number of") makes 8-grams match 3.5% of GSM8K train; masked 13-grams match 0.1% and
digit 8-grams 1.2% (the known train/test overlap), so legitimate problems survive.

All checks use hash indexes (an n-gram -> item map and a shingle -> items inverted index), so
checking a row costs O(its length), independent of the benchmark size. The items are every
registered benchmark's decontamination texts (`Benchmark.decontamination`, pipeline.evals): GSM8K test
questions, HumanEval prompts (signature + docstring), and whatever a plugin benchmark declares.

    python -m pipeline.synth.decontaminate --input IN.jsonl --output OUT.jsonl [--ngram 13]

writes kept rows to OUT, removed rows to OUT.removed.jsonl (with `matched_benchmark`, `matched_id`,
`match`), and prints `{"kept": .., "removed": ..}` as the last stdout line. Defaults come from
`conf/synth/default.yaml`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.evals import BENCHMARKS
from pipeline.synth.textnorm import ngrams, stable_hash, words

SHINGLE = 3  # word 3-grams for whole-statement matching


@dataclass
class Match:
    benchmark: str  # the benchmark's decontamination label: gsm8k_test | humaneval | ...
    item_id: str
    kind: str  # ngram | ngram_masked | near_dup
    score: float  # near_dup: containment of the item's shingles; ngram: 1.0
    gram: str = ""  # the shared n-gram (ngram matches), for the report

    def as_dict(self) -> dict:
        return {"matched_benchmark": self.benchmark, "matched_id": self.item_id,
                "match": {"kind": self.kind, "score": round(self.score, 3), "gram": self.gram}}


class BenchmarkIndex:
    """Hash indexes over benchmark items; `match(text)` finds the first contaminating item."""

    def __init__(self, items: list[tuple[str, str, str]], ngram: int, ngram_masked: int, near_dup: float) -> None:
        if min(ngram, ngram_masked) < 3:
            raise ValueError(f"decontamination n-gram sizes must be >= 3, got {ngram} and {ngram_masked}")
        if not 0 < near_dup <= 1:
            raise ValueError(f"near-duplicate containment threshold must be in (0, 1], got {near_dup}")
        self.n, self.n_masked, self.near_dup = ngram, ngram_masked, near_dup
        self.items = [(b, i) for b, i, _ in items]
        self.grams: dict[int, int] = {}  # digit n-grams and masked n-grams share one map (prefixed)
        self.postings: dict[int, list[int]] = {}
        self.sizes: list[int] = []
        for idx, (_, _, text) in enumerate(items):
            ws = words(text)
            for g in ngrams(words(text, keep_numbers=True), ngram):
                self.grams.setdefault(stable_hash("d " + g), idx)
            for g in ngrams(ws, ngram_masked):
                self.grams.setdefault(stable_hash("m " + g), idx)
            sh = {stable_hash(s) for s in ngrams(ws, SHINGLE)}
            self.sizes.append(len(sh))
            for h in sh:
                self.postings.setdefault(h, []).append(idx)

    def __len__(self) -> int:
        return len(self.items)

    def match(self, text: str) -> Match | None:
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
        return None

    def match_row(self, row: dict) -> Match | None:
        """Check every message of a chat-format row (each text separately: n-grams across the
        user/assistant boundary mean nothing)."""
        for m in row_texts(row):
            hit = self.match(m)
            if hit is not None:
                return hit
        return None


def row_texts(row: dict) -> list[str]:
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs):
        raise ValueError("a row needs 'messages': a list of {'role', 'content': str} objects")
    return [m["content"] for m in msgs]


def benchmark_items() -> list[tuple[str, str, str]]:
    """(label, id, text) for every item of every registered benchmark that training must not contain."""
    return [item for b in BENCHMARKS for item in b.decontamination()]


_INDEX_CACHE: dict[tuple, BenchmarkIndex] = {}


def default_index(ngram: int, ngram_masked: int, near_dup: float) -> BenchmarkIndex:
    """The benchmark index, built once per process per setting and set of registered benchmarks
    (well under a second)."""
    k = (ngram, ngram_masked, near_dup, tuple((b.name, id(b)) for b in BENCHMARKS))
    if k not in _INDEX_CACHE:
        _INDEX_CACHE[k] = BenchmarkIndex(benchmark_items(), ngram, ngram_masked, near_dup)
    return _INDEX_CACHE[k]


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


def _yaml_defaults() -> tuple[int, int, float]:
    from omegaconf import OmegaConf

    p = Path(__file__).resolve().parents[2] / "conf" / "synth" / "default.yaml"
    y = OmegaConf.load(p)
    return int(y.decontam_ngram), int(y.decontam_ngram_masked), float(y.decontam_near_dup)


def main(argv: list[str] | None = None) -> dict:
    from pipeline.io import JsonlError, read_jsonl, write_jsonl

    ap = argparse.ArgumentParser(prog="python -m pipeline.synth.decontaminate", description=__doc__.split("\n")[0])
    ap.add_argument("--input", required=True, help="chat-format JSONL rows {'messages': [...], 'meta': {...}}")
    ap.add_argument("--output", required=True, help="kept rows; removed rows go to OUTPUT.removed.jsonl")
    ap.add_argument("--ngram", type=int, default=None, help="n-gram size, digits kept (default: conf/synth/default.yaml)")
    ap.add_argument("--ngram-masked", type=int, default=None, help="n-gram size, numbers masked")
    ap.add_argument("--near-dup", type=float, default=None, help="shingle containment threshold")
    a = ap.parse_args(argv)
    n_default, nm_default, nd_default = _yaml_defaults()
    try:
        rows = read_jsonl(a.input)
        index = default_index(a.ngram or n_default, a.ngram_masked or nm_default, a.near_dup or nd_default)
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
                      "near_dup": index.near_dup}))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
