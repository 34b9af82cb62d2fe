"""Exact and near-duplicate removal of synthesized problems, within a generation and against earlier ones.

The unit is a problem (or code task): all its kept solutions stay or go together, since several
distinct solutions of one problem are intended (rejection-sampling fine-tuning).
- exact: the same `textnorm.key` (case, punctuation, whitespace, prefixes normalized; digits kept);
- near: Jaccard similarity of number-masked word 3-gram shingles >= `synth.dedup_threshold`. Two
  problems that differ only in their numbers are near-duplicates by design: a template with
  fresh numbers adds no diversity.
An inverted shingle index makes a lookup cost proportional to the shingles it shares with earlier
texts, so de-duplicating against thousands of accumulated problems stays fast.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pipeline.synth.textnorm import key, ngrams, stable_hash, words

SHINGLE = 3


@dataclass
class Dup:
    other_id: str
    kind: str  # exact | near
    score: float


class NearDupIndex:
    def __init__(self, threshold: float) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"dedup threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.exact: dict[str, str] = {}
        self.ids: list[str] = []
        self.sizes: list[int] = []
        self.postings: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def _shingles(text: str) -> set[int]:
        return {stable_hash(s) for s in ngrams(words(text), SHINGLE)}

    def find(self, text: str) -> Dup | None:
        k = key(text)
        if k in self.exact:
            return Dup(self.exact[k], "exact", 1.0)
        sh = self._shingles(text)
        if not sh:
            return None
        hits: Counter[int] = Counter()
        for h in sh:
            hits.update(self.postings.get(h, ()))
        best, score = None, 0.0
        for idx, inter in hits.items():
            j = inter / (len(sh) + self.sizes[idx] - inter)
            if j > score:
                best, score = idx, j
        if best is not None and score >= self.threshold:
            return Dup(self.ids[best], "near", score)
        return None

    def add(self, text: str, item_id: str) -> None:
        self.exact.setdefault(key(text), item_id)
        sh = self._shingles(text)
        idx = len(self.ids)
        self.ids.append(item_id)
        self.sizes.append(len(sh))
        for h in sh:
            self.postings.setdefault(h, []).append(idx)


def dedup_items(items: list[tuple[str, str]], earlier: list[tuple[str, str]], threshold: float
                ) -> tuple[list[str], dict[str, dict]]:
    """items/earlier: (id, text). Returns (kept ids in order, {dropped id: {reason, dup_of, score}})."""
    index = NearDupIndex(threshold)
    earlier_ids = set()
    for i, t in earlier:
        index.add(t, i)
        earlier_ids.add(i)
    kept, dropped = [], {}
    for i, t in items:
        d = index.find(t)
        if d is None:
            kept.append(i)
            index.add(t, i)
        else:
            reason = "dup_earlier_gen" if d.other_id in earlier_ids else "dup_within_gen"
            dropped[i] = {"reason": reason, "dup_of": d.other_id, "match": d.kind, "score": round(d.score, 3)}
    return kept, dropped
