"""Reworded benchmark items: the same quantities and question, every sentence in other words.

A teacher that has memorised a test item reproduces it in its own words, so the n-gram and shingle
checks of `pipeline.synth.decontaminate` miss it. What a rewording keeps is the item's quantities,
its answer, and its rare words (names, objects); what it changes is the common phrasing. So a text
`T` is compared with each benchmark item `I` that shares quantities with it:

- quantities: the multiset of numbers written with digits, normalized ("$1,200" -> 1200), and the
  same with cardinal words added ("three", "a dozen"); `numbers` = shared quantities / the larger of
  the two counts (symmetric, so a long text holding a short item's two numbers among ten is no match),
  the better of the two views (a rewording may spell a number out or not);
- lexical: the IDF-weighted share of the item's content-word stems found in `T` (stop words and
  numbers removed, crude suffix stemming), document frequencies counted over the index's own items,
  so rare words (names, objects) weigh most and generic phrasing ("how many", "each day") little;
- answer: the final answer of the row (its `meta.answer`, else the number after `####` in the last
  assistant message) equals the item's declared answer.

Signals (the first that fires is recorded, with the item's id and the scores):
- `numbers+answer`: numbers >= `NUMBERS_MIN`, the answer is the item's answer, and lexical >=
  `answer_lexical` (>= `lexical` for an item with a single quantity);
- `numbers+lexical` (no answer needed, so it also runs on a bare problem before it is solved):
  numbers >= `NUMBERS_MIN`, the item has two quantities or more, and lexical >= `lexical`.
Items with no quantity or fewer than `MIN_CONTENT_WORDS` content words take no part (too generic).
Thresholds are calibrated on GSM8K *train* only (hand-reworded train questions in
tests/data/gsm8k_train_paraphrases.jsonl against the other train questions), never on test items:

    python -m pipeline.synth.paraphrase      # prints the calibration table (recall / false positives)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.synth.textnorm import NUM, numbers, words

NUMBERS_MIN = 0.75  # a rewording may merge or drop one quantity of four
MIN_CONTENT_WORDS = 4  # an item with fewer content words is too generic to match as a paraphrase
STOP_WORDS = frozenset(
    "a an the of to in on at for and or but is are was were be been being has have had do does did he she it "
    "they them his her its their this that these those with as by from each every how many much what which "
    "who whom if then than so will would can could into per all any some more less also there here after "
    "before when while one she he him we you your our my me i total number".split())
_CARDINALS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_CARDINALS.update({w: str(10 * i) for i, w in enumerate("thirty forty fifty sixty seventy eighty ninety".split(), 3)})
_CARDINALS["dozen"] = "12"
# "one" is mostly a pronoun ("one of them") and "zero" rare: quantity words from two up only.
_CARDINALS.pop("one")
_CARDINALS.pop("zero")
_WORD_RE = re.compile(r"[a-z]+")


def quantities(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Two views of the quantities, each a sorted multiset: the digit numbers (`textnorm.numbers`),
    and those plus the cardinal words. A rewording may spell a number out or not ("3 children" /
    "three kids", "year two"), so agreement is judged in both views and the better one counts."""
    digits = numbers(text)
    spelled = tuple(_CARDINALS[w] for w in _WORD_RE.findall(text.lower()) if w in _CARDINALS)
    return digits, tuple(sorted(digits + spelled))


def stem(w: str) -> str:
    """A crude suffix stemmer: "buys"/"buying"/"buyed" -> "buy", "berries" -> "berry"."""
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    for suf in ("ing", "ed", "es", "s"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            return w[:-len(suf)]
    return w


def content_stems(text: str) -> frozenset[str]:
    """Normalized words without numbers, stop words and short words, stemmed."""
    return frozenset(stem(w) for w in words(text) if w != NUM and len(w) > 2 and w not in STOP_WORDS)


def final_answer(row: dict) -> str | None:
    """A chat row's final answer: `meta.answer`, else the number after `####` (or "The answer is")
    in its last assistant message, normalized; None when it has none."""
    from pipeline.synth.mathgen import checker

    g = checker()
    meta = row.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("answer"), (str, int, float)) and not isinstance(meta["answer"], bool):
        return g.normalize_number(str(meta["answer"]))
    said = [m["content"] for m in row.get("messages", []) if m.get("role") == "assistant"]
    return g.normalize_number(g.extract_strict(said[-1])) if said else None


@dataclass
class Hit:
    item: int  # the position of the item in the list the index was built from
    signal: str  # numbers+answer | numbers+lexical
    numbers: float  # quantity agreement: shared quantities / the larger of the two quantity counts
    lexical: float  # IDF-weighted share of the item's content stems found in the text


class ParaphraseIndex:
    """Quantity postings over benchmark items; `match(text, answer)` finds a reworded item."""

    def __init__(self, items: list[tuple[int, str, str | None]], lexical: float, answer_lexical: float) -> None:
        """`items`: (position, text, normalized answer or None) of the items that take part."""
        if not 0 < lexical <= 1 or not 0 < answer_lexical <= 1:
            raise ValueError(f"paraphrase lexical thresholds must be in (0, 1], got {lexical} and {answer_lexical}")
        self.lexical, self.answer_lexical = lexical, answer_lexical
        self.entries: list[tuple[int, tuple[Counter, Counter], frozenset[str], str | None]] = []
        # per view, (quantity, the item's quantity count) -> entries: a text is compared only with items
        # whose quantity count could reach NUMBERS_MIN agreement, so a solution full of numbers costs little
        self.postings: tuple[dict, dict] = ({}, {})
        df: Counter[str] = Counter()
        for pos, text, answer in items:
            views, stems = tuple(Counter(v) for v in quantities(text)), content_stems(text)
            if not views[1] or len(stems) < MIN_CONTENT_WORDS:
                continue
            df.update(stems)
            for qs, postings in zip(views, self.postings):
                for q in qs:
                    postings.setdefault((q, sum(qs.values())), []).append(len(self.entries))
            self.entries.append((pos, views, stems, answer))
        n = max(len(self.entries), 1)
        self.idf = {w: math.log((n + 1) / (c + 0.5)) for w, c in df.items()}
        self.weight = [sum(self.idf[w] for w in stems) for _, _, stems, _ in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def _agreement(self, views: tuple[Counter, Counter]) -> dict[int, tuple[float, int]]:
        """{entry: (best quantity agreement over the two views, the item's count in that view)} for
        every item that reaches NUMBERS_MIN in some view."""
        out: dict[int, tuple[float, int]] = {}
        for v, (qs, postings) in enumerate(zip(views, self.postings)):
            n_text = sum(qs.values())
            if not n_text:
                continue
            # Prefix filtering: an item sharing >= ceil(NUMBERS_MIN * n_text) of the text's quantities
            # holds at least one of its (n_text - that + 1) rarest ones, so only those postings are read.
            sizes = range(math.ceil(NUMBERS_MIN * n_text), math.floor(n_text / NUMBERS_MIN) + 1)
            rarity = {q: sum(len(postings.get((q, n), ())) for n in sizes) for q in qs}
            expanded = sorted((q for q, c in qs.items() for _ in range(c)), key=rarity.__getitem__)
            for e in {e for q in expanded[:n_text - sizes[0] + 1] for n in sizes for e in postings.get((q, n), ())}:
                iqs = self.entries[e][1][v]
                n_item = sum(iqs.values())
                # Symmetric: a long text holding a short item's few numbers among many is no rewording.
                num = sum(min(c, iqs[q]) for q, c in qs.items()) / max(n_item, n_text)
                if num >= NUMBERS_MIN and (num, n_item) > out.get(e, (0.0, 0)):  # ties: more quantities agree
                    out[e] = (num, n_item)
        return out

    def match(self, text: str, answer: str | None = None) -> Hit | None:
        """The best-scoring item `text` rewords (see the module doc), or None."""
        stems, best = None, None
        for e, (num, n_item) in self._agreement(tuple(Counter(v) for v in quantities(text))).items():
            pos, _, istems, ianswer = self.entries[e]
            stems = content_stems(text) if stems is None else stems
            lex = sum(self.idf[w] for w in istems & stems) / self.weight[e]
            # One quantity is weak evidence: such an item needs the answer and the text-only lexical bar.
            if answer is not None and answer == ianswer and lex >= (self.answer_lexical if n_item > 1 else self.lexical):
                signal = "numbers+answer"
            elif n_item > 1 and lex >= self.lexical:
                signal = "numbers+lexical"
            else:
                continue
            if best is None or num + lex > best.numbers + best.lexical:
                best = Hit(pos, signal, num, lex)
        return best


def calibration_file() -> Path:
    """Hand-reworded train questions of the benchmark the math domain is modelled on:
    tests/data/<benchmark>_train_paraphrases.jsonl."""
    from pipeline.synth.mathgen import DOMAIN
    from pipeline.evals import modelled_on

    return Path(__file__).resolve().parents[2] / "tests" / "data" / f"{modelled_on(DOMAIN).name}_train_paraphrases.jsonl"


def calibrate(reworded: list[dict], lexical: float, answer_lexical: float, n_bench: int = 2300, seed: int = 0) -> dict:
    """The calibration, on GSM8K TRAIN only: `n_bench` train questions (the reworded ones among them)
    play the benchmark, the rewordings (`{"id": train id, "text"}`) the contaminated rows, every other
    train question a clean row. Counts for bare problems and for problems with their gold answer."""
    import random

    from pipeline.synth.mathgen import checker, title, train_slice

    reference_number = checker().reference_number
    train = train_slice("train")
    ids = {p["id"] for p in reworded}
    if not ids <= {r["id"] for r in train}:
        raise ValueError(f"calibration rewordings must reword {title()} train items, got {sorted(ids)[:3]}...")
    others = [r for r in train if r["id"] not in ids]
    random.Random(seed).shuffle(others)
    bench = [r for r in train if r["id"] in ids] + others[:n_bench - len(ids)]
    clean = others[n_bench - len(ids):]
    gold = {r["id"]: reference_number(r["answer"]) for r in train}
    pos = {r["id"]: i for i, r in enumerate(bench)}
    index = ParaphraseIndex([(i, r["question"], gold[r["id"]]) for i, r in enumerate(bench)], lexical, answer_lexical)
    out = {"lexical": lexical, "answer_lexical": answer_lexical, "reworded": len(reworded), "clean": len(clean)}
    for name, with_answer in (("bare", False), ("answered", True)):
        hits = [index.match(p["text"], gold[p["id"]] if with_answer else None) for p in reworded]
        out[f"{name}_caught"] = sum(h is not None and h.item == pos[p["id"]] for h, p in zip(hits, reworded))
        out[f"{name}_clean_removed"] = sum(index.match(r["question"], gold[r["id"]] if with_answer else None)
                                           is not None for r in clean)
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    from pipeline.infra.io import read_jsonl

    ap = argparse.ArgumentParser(prog="python -m pipeline.synth.paraphrase", description=calibrate.__doc__.split("\n")[0])
    ap.add_argument("--reworded", default=str(calibration_file()), help="JSONL of {id: a train id of the math benchmark, text: its rewording}")
    ap.add_argument("--grid", default="0.35:0.2,0.4:0.2,0.45:0.2,0.4:0.25", help="lexical:answer_lexical pairs")
    a = ap.parse_args(argv)
    reworded = read_jsonl(a.reworded)
    for pair in a.grid.split(","):
        lex, ans = (float(x) for x in pair.split(":"))
        print(json.dumps(calibrate(reworded, lex, ans)), flush=True)


if __name__ == "__main__":
    main()
