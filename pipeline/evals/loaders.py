"""Helpers every benchmark's loaders share: where split files come from (the `PIPELINE_DATA_DIR`
rule) and nested seeded subsets (a larger n is a superset of a smaller one). How a train split is
cut into disjoint, versioned slices is pipeline.infra.slices. A benchmark's own
loaders (file names, row checks, which slices it cuts) live in its module (pipeline.evals.gsm8k,
humaneval, or a plugin's).

A benchmark's split `<split>` of dataset directory `<name>` comes from
`$PIPELINE_DATA_DIR/<name>/<split>.jsonl` when that variable is set (offline machines), else from
the Hugging Face hub (`read_split`).

    python -c "from pipeline.evals.loaders import data_dir; print(data_dir())"
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.infra.slices import nested_subset
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




def subset(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """The first n rows of one seeded permutation (n<=0/None: all): the same items for a lineage in
    every generation, and a larger n a superset of a smaller one (pipeline.infra.slices.nested_subset)."""
    return nested_subset(rows, n, seed)
