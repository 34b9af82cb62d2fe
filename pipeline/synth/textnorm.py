"""Text normalization shared by decontamination, dedup and the diversity stats.

`words(text)` maps a problem statement to the word sequence the matchers compare: Unicode NFKC,
lower case, every number (digits with `$ , . %`, and the number words zero..twenty, tens, hundred,
thousand, million, half, twice, ...) replaced by one placeholder token, punctuation dropped,
whitespace collapsed, and leading instruction prefixes ("Solve this:", "Question:", ...) removed.
So changing numbers, spacing, punctuation or case, or prepending an instruction, gives the same
words, which is what keeps a disguised benchmark item from slipping through.

`keep_numbers=True` keeps the digits (exact dedup must not merge two problems that differ only in
their numbers into one when the caller wants exact-duplicate semantics).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

NUM = "<num>"
_NUMBER_RE = re.compile(r"[$€£]?\d[\d,]*(?:\.\d+)?%?|\.\d+%?")
_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred "
    "thousand million billion half twice thrice double triple quarter dozen first second third fourth "
    "fifth sixth seventh eighth ninth tenth".split()
)
_WORD_RE = re.compile(r"<num>|[a-z0-9]+")
# Instructions a writer may put before a copied item; stripped only at the start of the text.
_PREFIXES = (
    "solve this", "solve the following problem", "solve the following math problem", "solve the following",
    "solve", "question", "problem", "q", "task", "answer the following question", "answer this",
    "here is a problem", "here is a new problem", "new problem", "math problem", "word problem",
    "please solve", "please answer",
)
_PREFIX_WORDS = sorted((tuple(p.split()) for p in _PREFIXES), key=len, reverse=True)


def words(text: str, keep_numbers: bool = False) -> list[str]:
    """The normalized word sequence of `text` (see module doc)."""
    t = unicodedata.normalize("NFKC", text).lower()
    if not keep_numbers:
        t = _NUMBER_RE.sub(f" {NUM} ", t)
    t = t.replace("'", "").replace("\u2019", "")  # "Janet's" and "Janet’s" -> "janets"
    ws = _WORD_RE.findall(re.sub(r"[^a-z0-9<>]+", " ", t).replace(NUM, f" {NUM} "))
    if not keep_numbers:
        ws = [NUM if w in _NUMBER_WORDS else w for w in ws]
    ws = [w for w in ws if w == NUM or ("<" not in w and ">" not in w)]
    stripped = True
    while stripped and ws:  # repeated prefixes: "Question: Solve this: ..."
        stripped = False
        for p in _PREFIX_WORDS:
            if tuple(ws[:len(p)]) == p and len(ws) > len(p) + 3:
                ws = ws[len(p):]
                stripped = True
                break
    return ws


def ngrams(ws: list[str], n: int) -> list[str]:
    """Distinct word n-grams as joined strings, in text order (so the first match reported is the
    same in every process); a text shorter than n yields itself as one gram."""
    if len(ws) < n:
        return [" ".join(ws)] if ws else []
    return list(dict.fromkeys(" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1)))


def numbers(text: str) -> tuple[str, ...]:
    """The sorted multiset of the numbers written with digits in `text`, normalized ("1,200" -> "1200",
    "$5.50" -> "5.5", "12%" -> "12"), for matching paraphrases that keep an item's numbers."""
    out = []
    for m in _NUMBER_RE.findall(unicodedata.normalize("NFKC", text)):
        t = m.strip("$€£%").replace(",", "")
        if "." in t:
            t = t.rstrip("0").rstrip(".") or "0"
        out.append(t)
    return tuple(sorted(out))


def stable_hash(s: str) -> int:
    """A process-independent 64-bit hash (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "big")


def key(text: str, keep_numbers: bool = True) -> str:
    """Exact-duplicate key: the normalized text."""
    return " ".join(words(text, keep_numbers=keep_numbers))
