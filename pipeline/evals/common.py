"""Helpers shared by the benchmark modules and the eval stage (kept apart from `pipeline.evals`,
which imports the benchmark modules, so nothing here can form an import cycle).

    from pipeline.evals.common import write_results, finish_cli, mean
"""

from __future__ import annotations

import json
import os
import sys
from typing import Iterable

from pipeline.infra.io import atomic_write_text, write_jsonl


def write_results(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write result rows as JSONL; rows holding text that UTF-8 cannot encode (lone surrogates from
    a JSON `\\ud800` escape) are written with ASCII escapes, which keeps them exactly."""
    try:
        write_jsonl(path, rows)
    except UnicodeEncodeError:
        atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def finish_cli(input_path: str, rows: list[dict], summary: dict) -> int:
    """The CLIs' common ending, as the official harness does it: `<input>_results.jsonl` next to
    the input, and the scores as one JSON object on the last stdout line. An input without rows is
    an error (exit 2), not a score of 0 over nothing."""
    from pipeline.infra import cli

    if not rows:
        return cli.fail(f"{input_path}: no rows to score (an empty file)")
    out = input_path + "_results.jsonl"
    write_results(out, rows)
    print(f"wrote {out}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


def mean(values: Iterable[float]) -> float:
    vals = [float(v) for v in values]
    return sum(vals) / len(vals) if vals else 0.0
