"""Behavioural and diversity measures that compare one generation's per-item records with another's.

- `agreement`: share of probe items (same suite version, same id) whose discrete outcome
  (refused/answered, honest/went_along, held/flipped, followed/broke) is the same in both.
- `eval_changes`: GSM8K/HumanEval items gained and lost between two generations, from the eval
  stage's `gen_NNN/eval/<task>.jsonl` records (`id`, boolean `correct`).
- `distinct_n`: corpus-level distinct-n (unique n-grams / all n-grams) of free generations.
- `synth_distinct`: the synthesis stage's distinct-n, read from `gen_NNN/synth/stats.json`.

All pure functions over records, except the two readers that take a generation directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipeline.infra.io import JsonlError, iter_jsonl, read_json


class DriftError(RuntimeError):
    pass


def _key(r: dict) -> tuple:
    return (r["suite"], r["version"], r["id"])


def agreement(current: list[dict], reference: list[dict]) -> dict[str, Any]:
    """{"n": items compared, "agree": count, "rate": agree/n or None, "disagree": [ids]}.
    Only items present in both with the same suite version count."""
    ref = {_key(r): r["outcome"] for r in reference}
    common = [r for r in current if _key(r) in ref]
    diff = [f"{r['suite']}/{r['id']}" for r in common if r["outcome"] != ref[_key(r)]]
    n = len(common)
    return {"n": n, "agree": n - len(diff), "rate": (n - len(diff)) / n if n else None, "disagree": diff}


def read_eval_outcomes(gen_dir: Path, task: str) -> dict[str, bool] | None:
    """id -> correct for one eval task of one generation, or None when the file is absent.
    Several samples of one id (n_samples > 1) count as correct when at least half are."""
    path = Path(gen_dir) / "eval" / f"{task}.jsonl"
    if not path.exists():
        return None
    votes: dict[str, list[bool]] = {}
    try:
        for i, r in enumerate(iter_jsonl(path), 1):
            if "id" not in r or not isinstance(r.get("correct"), bool):
                raise DriftError(f"{path}: record {i} lacks a stable 'id' and a boolean 'correct'")
            votes.setdefault(str(r["id"]), []).append(r["correct"])
    except JsonlError as e:
        raise DriftError(str(e)) from None
    return {k: sum(v) * 2 >= len(v) for k, v in votes.items()}


def eval_changes(current: dict[str, bool], reference: dict[str, bool]) -> dict[str, Any]:
    """Items correct now but not in the reference (gained) and the reverse (lost), on shared ids."""
    common = sorted(set(current) & set(reference))
    gained = [i for i in common if current[i] and not reference[i]]
    lost = [i for i in common if reference[i] and not current[i]]
    return {"n": len(common), "gained": gained, "lost": lost,
            "agreement": (len(common) - len(gained) - len(lost)) / len(common) if common else None}


def ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    words = text.lower().split()
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float:
    """Unique n-grams / total n-grams over all texts (0.0 when there are none)."""
    grams = [g for t in texts for g in ngrams(t, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def synth_distinct(gen_dir: Path, n: int) -> float | None:
    """The synthetic data's distinct-n from `synth/stats.json` (key `distinct_<n>`, `distinct-<n>`
    or `distinct<n>`, at the top level or nested, first found depth-first), or None if absent."""
    path = Path(gen_dir) / "synth" / "stats.json"
    if not path.exists():
        return None
    want = f"distinct{n}"

    def find(obj: Any) -> float | None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                if _norm(str(k)) == want and isinstance(v, (int, float)) and not isinstance(v, bool):
                    return float(v)
            for v in obj.values():
                got = find(v)
                if got is not None:
                    return got
        return None

    return find(read_json(path))
