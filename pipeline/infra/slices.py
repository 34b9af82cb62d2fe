"""GSM8K train cut once into disjoint, versioned slices, and nested subsets of a slice.

    from pipeline.infra.slices import SLICES, cut, nested_subset, slice_record
    ids = cut(train_ids)["validation"]                 # ordered ids, v1's 500 first
    nested_subset(rows, 100, seed=0)                   # a prefix of one seeded permutation
    slice_record("validation", ids)                    # {"slice", "version", "n", "ids_hash"}

Each slice has one use (`Slice.use`) and a version that changes whenever its ids change, so a
manifest that records `slice_record(...)` says exactly which items a number was measured on.

The validation slice grows in blocks: block 1 is the historical holdout (500 ids, seed 1234); block 2
(version 2) adds 500 ids from the tail of the pool's shuffle, so the verifier and exemplar slices keep
their ids and block 1 stays a prefix. Items carry `slice_version` (the version they joined in), and
`nested_subset` permutes each block on its own and concatenates the blocks: a larger n is always a
superset of a smaller one (looks of the gate are prefixes of one permutation), and growing the slice
never reorders the items a smaller profile already uses.

A new slice is one more entry in `SLICES` and one more cut in `cut`, taken from the pool's shuffle (as
the selection slice, which ranks several candidates apart from the gate, is). A bottom-layer module:
every manifest records `slice_versions()` (pipeline.lineage.runner).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.infra.io import hash_obj

VALIDATION_SEED = 1234  # block 1: the holdout every lineage so far was gated on
SLICES_SEED = 4321  # cuts train minus validation block 1 into verifier / exemplars / pool (and block 2)
VALIDATION_BLOCKS = (500, 500)  # block sizes: v1 = 500 ids, v2 adds 500 (the GPU profile's further looks)
VERIFIER_SIZE = 200  # enough to measure a precision near 1 to within a few points
EXEMPLARS_SIZE = 250  # enough variety for a fresh draw of synthesis exemplars every generation
SELECTION_SLICE = "selection"  # ranks several candidates apart from the gate (pipeline.evals.selection)
SELECTION_SIZE = 500  # the same for every lineage, as the validation slice's first block


@dataclass(frozen=True)
class Slice:
    name: str
    version: int  # bumped whenever the slice's ids change
    use: str


SLICES: dict[str, Slice] = {s.name: s for s in (
    Slice("validation", 2, "the gate's capability checks (looks are prefixes of nested_subset)"),
    Slice("verifier", 1, "the synthesis verifier's precision; nothing else reads it"),
    Slice("exemplars", 1, "few-shot exemplars for the eval's few_shot protocol and synthesis prompts"),
    Slice(SELECTION_SLICE, 1, "ranks several candidates, apart from the gate (pipeline.evals.selection)"),
    Slice("pool", 3, "synthesis questions and the mixture's anchor rows (v2: minus validation block 2; "
                     "v3: minus the selection slice)"),
)}


def cut(train_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Every train id in exactly one slice. Validation is ordered block by block (block 1 in draw
    order, then block 2); the others keep the shuffle's order (callers sort to file order)."""
    ids = list(train_ids)
    # block 1: the same draw as before slices were versioned (ids of validation v1)
    first = random.Random(VALIDATION_SEED).sample(ids, min(VALIDATION_BLOCKS[0], len(ids) // 5))
    held = set(first)
    rest = [i for i in ids if i not in held]
    random.Random(SLICES_SEED).shuffle(rest)
    n_ver = min(VERIFIER_SIZE, len(rest) // 10)
    n_ex = min(EXEMPLARS_SIZE, len(rest) // 10)
    # block 2 comes from the far end of the shuffle, which only the pool used: verifier and exemplars
    # keep their ids; a small data set (tests) keeps at least as much pool as block 2 takes. The
    # selection slice comes from just before it (same size rule as the front slices).
    n_more = min(sum(VALIDATION_BLOCKS[1:]), max(0, (len(rest) - n_ver - n_ex) // 2))
    more = rest[len(rest) - n_more:] if n_more else []
    end = len(rest) - n_more
    n_sel = min(SELECTION_SIZE, len(rest) // 10, max(0, end - n_ver - n_ex))
    return {"validation": tuple(first + more), "verifier": tuple(rest[:n_ver]),
            "exemplars": tuple(rest[n_ver:n_ver + n_ex]), SELECTION_SLICE: tuple(rest[end - n_sel:end]),
            "pool": tuple(rest[n_ver + n_ex:end - n_sel])}


def validation_versions(ids: Sequence[str]) -> dict[str, int]:
    """id -> the validation slice version it joined in (1 for block 1, 2 for block 2, ...)."""
    out, start = {}, 0
    for version, size in enumerate(VALIDATION_BLOCKS, 1):
        out.update({i: version for i in ids[start:start + size]})
        start += size
    return out


def nested_subset(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """The first `n` rows of one fixed permutation: rows grouped by their `slice_version` (absent:
    one group), each group shuffled with `seed` on its own, groups in version order. n < m gives a
    prefix of the m-subset, for every seed. n <= 0 / None / at least len(rows): every row, as given."""
    if not n or n <= 0 or n >= len(rows):
        return list(rows)
    groups: dict[int, list[dict]] = {}
    for r in rows:
        groups.setdefault(int(r.get("slice_version", 1)), []).append(r)
    order: list[dict] = []
    for version in sorted(groups):
        g = list(groups[version])
        random.Random(f"{seed}/{version}").shuffle(g)
        order += g
    return order[:n]


def slice_versions() -> dict[str, int]:
    """Every slice's version: what each manifest records (pipeline.lineage.runner.new_manifest)."""
    return {name: s.version for name, s in SLICES.items()}


def slice_record(name: str, ids: Sequence[str]) -> dict:
    """What a manifest records about the items it used of a split: its name, its slice version (None
    for a split that is no versioned slice, e.g. a benchmark's test set), the count and the ids' hash."""
    version = SLICES[name].version if name in SLICES else None
    return {"slice": name, "version": version, "n": len(ids), "ids_hash": hash_obj(list(ids))}
