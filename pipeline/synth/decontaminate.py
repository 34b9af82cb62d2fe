"""Decontamination: keep benchmark items (GSM8K test, HumanEval, any registered benchmark) out of training data.

A row is contaminated when any of its message texts, after `textnorm.words` normalization (case,
punctuation, whitespace and instruction prefixes removed):
- shares a word n-gram with a benchmark item, numbers kept (n = `synth.decontam_ngram`, 8 by default
  as in ConTAM/open-r1), or
- shares a word n-gram with numbers masked to one placeholder (n = `synth.decontam_ngram_masked`,
  13 as in lm-eval), so changing the numbers of a copied item does not hide it, or
- is a near-duplicate of a whole benchmark statement: at least `synth.decontam_near_dup` of the
  item's word 3-gram shingles occur in the text (containment, so wrapping a copied item in extra
  text does not hide it, and renaming a few words does not either), or
- is a paraphrase of a benchmark statement: the same multiset of numbers (or that multiset plus one
  extra number) and at least `synth.decontam_paraphrase` of the item's content words (stop words and
  numbers removed). Rewording a test item, reordering its sentences or adding an instruction keeps
  its numbers and most of its content words; on GSM8K train this rule removes under 0.1% of questions.
  Items with fewer than two numbers are left to the other checks.

An item can restrict which checks it takes part in (`Benchmark.decontamination` yields `(label, id,
text)` or `(label, id, text, checks)` with checks `all` | `ngram` | `near_dup`): HumanEval's tests
take part in the n-gram checks only (their shingles are mostly numbers), its canonical solutions in
the near-duplicate check only (short generic code lines would make their n-grams match honest code).

The masked n-gram is longer because, with numbers masked, generic GSM8K phrasing ("has <num> more
than <num> the number of") makes 8-grams match 3.5% of GSM8K train; masked 13-grams match 0.1% and
digit 8-grams 1.2% (the known train/test overlap), so legitimate problems survive.

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
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.evals import BENCHMARKS
from pipeline.locate import conf_dir
from pipeline.synth.textnorm import NUM, ngrams, numbers, stable_hash, words

SHINGLE = 3  # word 3-grams for whole-statement matching
CHECKS = ("all", "ngram", "near_dup")
MIN_CONTENT_WORDS = 4  # an item with fewer content words is too generic to match as a paraphrase
STOP_WORDS = frozenset(
    "a an the of to in on at for and or but is are was were be been being has have had do does did he she it "
    "they them his her its their this that these those with as by from each every how many much what which "
    "who whom if then than so will would can could into per all any some more less also there here after "
    "before when while one she he him we you your our my me i total number".split())


def content_words(text: str) -> frozenset[str]:
    """The words a paraphrase keeps: normalized words without numbers, stop words and short words."""
    return frozenset(w for w in words(text) if w != NUM and len(w) > 2 and w not in STOP_WORDS)


@dataclass
class Match:
    benchmark: str  # the benchmark's decontamination label: gsm8k_test | humaneval | ...
    item_id: str
    kind: str  # ngram | ngram_masked | near_dup | paraphrase
    score: float  # near_dup: containment of the item's shingles; paraphrase: of its content words; ngram: 1.0
    gram: str = ""  # the shared n-gram (ngram matches), for the report

    def as_dict(self) -> dict:
        return {"matched_benchmark": self.benchmark, "matched_id": self.item_id,
                "match": {"kind": self.kind, "score": round(self.score, 3), "gram": self.gram}}


class BenchmarkIndex:
    """Hash indexes over benchmark items; `match(text)` finds the first contaminating item."""

    def __init__(self, items: list[tuple], ngram: int, ngram_masked: int, near_dup: float,
                 paraphrase: float = 0.0) -> None:
        if min(ngram, ngram_masked) < 3:
            raise ValueError(f"decontamination n-gram sizes must be >= 3, got {ngram} and {ngram_masked}")
        if not 0 < near_dup <= 1:
            raise ValueError(f"near-duplicate containment threshold must be in (0, 1], got {near_dup}")
        if not 0 <= paraphrase <= 1:
            raise ValueError(f"paraphrase content-word threshold must be in [0, 1] (0 = off), got {paraphrase}")
        self.n, self.n_masked, self.near_dup, self.paraphrase = ngram, ngram_masked, near_dup, paraphrase
        self.items = [(it[0], it[1]) for it in items]
        self.grams: dict[int, int] = {}  # digit n-grams and masked n-grams share one map (prefixed)
        self.postings: dict[int, list[int]] = {}
        self.sizes: list[int] = []
        self.by_numbers: dict[tuple[str, ...], list[tuple[int, frozenset[str]]]] = {}
        for idx, (_, item_id, text, *rest) in enumerate(items):
            checks = rest[0] if rest else "all"
            if checks not in CHECKS:
                raise ValueError(f"decontamination item {item_id!r}: checks {checks!r} is not one of {CHECKS}")
            ws = words(text)
            if checks in ("all", "ngram"):
                for g in ngrams(words(text, keep_numbers=True), ngram):
                    self.grams.setdefault(stable_hash("d " + g), idx)
                for g in ngrams(ws, ngram_masked):
                    self.grams.setdefault(stable_hash("m " + g), idx)
            sh = {stable_hash(s) for s in ngrams(ws, SHINGLE)} if checks in ("all", "near_dup") else set()
            self.sizes.append(len(sh))
            for h in sh:
                self.postings.setdefault(h, []).append(idx)
            nums, content = numbers(text), content_words(text)
            if checks == "all" and len(nums) >= 2 and len(content) >= MIN_CONTENT_WORDS:
                self.by_numbers.setdefault(nums, []).append((idx, content))

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
        return self._paraphrase(text) if self.paraphrase > 0 else None

    def _paraphrase(self, text: str) -> Match | None:
        """Same numbers (or those plus one extra) and enough of the item's content words."""
        nums = numbers(text)
        if len(nums) < 2:
            return None
        keys = [nums] + ([nums[:i] + nums[i + 1:] for i in range(len(nums)) if i == 0 or nums[i] != nums[i - 1]]
                         if len(nums) >= 3 else [])
        content = content_words(text)
        best: Match | None = None
        for key in keys:
            for idx, item_words in self.by_numbers.get(key, ()):
                score = len(item_words & content) / len(item_words)
                if score >= self.paraphrase and (best is None or score > best.score):
                    best = Match(*self.items[idx], "paraphrase", score)
        return best

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


def benchmark_items() -> list[tuple]:
    """(label, id, text) for every item of every registered benchmark that training must not contain."""
    return [item for b in BENCHMARKS for item in b.decontamination()]


_INDEX_CACHE: dict[tuple, BenchmarkIndex] = {}


def default_index(ngram: int, ngram_masked: int, near_dup: float, paraphrase: float = 0.0) -> BenchmarkIndex:
    """The benchmark index, built once per process per setting and set of registered benchmarks
    (well under a second). `paraphrase` 0 leaves the paraphrase check off."""
    k = (ngram, ngram_masked, near_dup, paraphrase, tuple((b.name, id(b)) for b in BENCHMARKS))
    if k not in _INDEX_CACHE:
        _INDEX_CACHE[k] = BenchmarkIndex(benchmark_items(), ngram, ngram_masked, near_dup, paraphrase)
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


def _yaml_defaults() -> tuple[int, int, float, float]:
    from omegaconf import OmegaConf

    y = OmegaConf.load(conf_dir() / "synth" / "default.yaml")
    return int(y.decontam_ngram), int(y.decontam_ngram_masked), float(y.decontam_near_dup), float(y.decontam_paraphrase)


def main(argv: list[str] | None = None) -> dict:
    from pipeline.io import JsonlError, read_jsonl, write_jsonl

    ap = argparse.ArgumentParser(prog="python -m pipeline.synth.decontaminate", description=__doc__.split("\n")[0])
    ap.add_argument("--input", required=True, help="chat-format JSONL rows {'messages': [...], 'meta': {...}}")
    ap.add_argument("--output", required=True, help="kept rows; removed rows go to OUTPUT.removed.jsonl")
    ap.add_argument("--ngram", type=int, default=None, help="n-gram size, digits kept (default: conf/synth/default.yaml)")
    ap.add_argument("--ngram-masked", type=int, default=None, help="n-gram size, numbers masked")
    ap.add_argument("--near-dup", type=float, default=None, help="shingle containment threshold")
    ap.add_argument("--paraphrase", type=float, default=None, help="content-word threshold for paraphrases (0 = off)")
    a = ap.parse_args(argv)
    n_default, nm_default, nd_default, para_default = _yaml_defaults()
    try:
        rows = read_jsonl(a.input)
        index = default_index(a.ngram or n_default, a.ngram_masked or nm_default, a.near_dup or nd_default,
                              para_default if a.paraphrase is None else a.paraphrase)
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
                      "near_dup": index.near_dup, "paraphrase": index.paraphrase}))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
