"""Helpers every benchmark's loaders share: where split files come from (the `PIPELINE_DATA_DIR`
rule), one seeded cut of a train split into disjoint slices, and seeded subsets. A benchmark's own
loaders (file names, row checks, which slices it cuts) live in its module (pipeline.evals.gsm8k,
humaneval, or a plugin's).

A benchmark's split `<split>` of dataset directory `<name>` comes from
`$PIPELINE_DATA_DIR/<name>/<split>.jsonl` when that variable is set (offline machines), else from
the Hugging Face hub (`read_split`).

    python -c "from pipeline.evals.loaders import data_dir; print(data_dir())"
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Sequence

from pipeline.infra.cli import InputError
from pipeline.infra.io import read_jsonl


class DataError(InputError, ValueError):
    """Input data that is missing, empty or malformed; the message names the file or the config key."""


def data_dir() -> Path | None:
    d = os.environ.get("PIPELINE_DATA_DIR")
    return Path(d).expanduser().resolve() if d else None


def read_split(name: str, split: str, hub_id: str, hub_config: str | None = None) -> list[dict]:
    """The raw rows of one split: `$PIPELINE_DATA_DIR/<name>/<split>.jsonl` when the variable is
    set (a missing file is an error, never a silent hub download), else the hub dataset's split."""
    root = data_dir()
    if root is not None:
        path = root / name / f"{split}.jsonl"
        if not path.exists():
            raise FileNotFoundError(
                f"PIPELINE_DATA_DIR is set but {path} does not exist; it must hold {name}/{split}.jsonl")
        return read_jsonl(path)
    from datasets import load_dataset  # lazy: only needed online

    return [dict(r) for r in load_dataset(hub_id, hub_config, split=split)]


def cut_slices(ids: Sequence[str], holdout: tuple[str, int, int], cuts: Sequence[tuple[str, int]], rest: str,
               seed: int, tail: Sequence[tuple[str, int]] = ()) -> dict[str, frozenset[str]]:
    """Every id in exactly one slice, cut once: `holdout` = (name, size, seed) is a seeded sample of
    at most a fifth of the ids (drawn first, so its ids never depend on the other slices); one seeded
    shuffle of the remainder then gives each of `cuts` (name, size; at most a tenth of the
    remainder each, so small test files keep every slice) and `rest` takes what is left."""
    name, size, holdout_seed = holdout
    held = frozenset(random.Random(holdout_seed).sample(list(ids), min(size, len(ids) // 5)))
    remainder = [i for i in ids if i not in held]
    random.Random(seed).shuffle(remainder)
    out, at, end = {name: held}, 0, len(remainder)
    for cut, n in cuts:
        n = min(n, len(remainder) // 10)
        out[cut], at = frozenset(remainder[at:at + n]), at + n
    for cut, n in tail:
        n = min(n, len(remainder) // 10)
        out[cut], end = frozenset(remainder[end - n:end]), end - n
    out[rest] = frozenset(remainder[at:end])
    return out


def subset(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """A seeded subset that stays the same for a lineage across generations (n<=0/None: all)."""
    if not n or n <= 0 or n >= len(rows):
        return list(rows)
    idx = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in idx]
