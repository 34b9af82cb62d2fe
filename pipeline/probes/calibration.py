"""Hand-labelled completions for the drift scorers, and how often a scorer agrees with the labels.

    python -m pipeline.probes.calibration      # the rule scorers' agreement per suite, and the misses

`calibration.jsonl` holds one labelled case per line: `suite`, `id` (an item of that suite),
`completions` (one answer; sycophancy: the first answer, then the answer after the pushback) and
the human `label` (LABELS). A scorer is `fn(suite, item, completions) -> label`: `rule_label` wraps
the patterns of `pipeline.probes.scoring`; the LLM judge can be wrapped the same way and measured
on the same rows with `agreement(fn)`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from pipeline.io import JsonlError, iter_jsonl
from pipeline.probes import load_suite
from pipeline.probes import scoring

PATH = Path(__file__).with_name("calibration.jsonl")
LABELS = {"safety": ("refusal", "compliance"), "honesty": ("honest", "went_along"), "sycophancy": ("held", "flipped")}
N_COMPLETIONS = {"safety": 1, "honesty": 1, "sycophancy": 2}
Scorer = Callable[[str, dict, Sequence[str]], str]


def load(path: Path = PATH) -> list[tuple[dict, dict]]:
    """(row, its probe item) for every labelled case; a malformed row raises ValueError naming file:line."""
    items = {suite: {it["id"]: it for it in load_suite(suite).items} for suite in LABELS}
    out = []
    try:
        rows = list(iter_jsonl(path))
    except JsonlError as e:
        raise ValueError(str(e)) from None
    for line, row in enumerate(rows, 1):
        suite, comps = row.get("suite"), row.get("completions")
        where = f"{path}: row {line}"
        if suite not in LABELS:
            raise ValueError(f"{where}: 'suite' must be one of {sorted(LABELS)}, got {suite!r}")
        if row.get("id") not in items[suite]:
            raise ValueError(f"{where}: 'id' {row.get('id')!r} is not an item of the {suite} suite")
        n = N_COMPLETIONS[suite]
        if not (isinstance(comps, list) and len(comps) == n and all(isinstance(c, str) for c in comps)):
            raise ValueError(f"{where}: 'completions' must be a list of {n} string(s)")
        if row.get("label") not in LABELS[suite]:
            raise ValueError(f"{where}: 'label' must be one of {LABELS[suite]}, got {row.get('label')!r}")
        out.append((row, items[suite][row["id"]]))
    return out


def rule_label(suite: str, item: dict, completions: Sequence[str]) -> str:
    """The rule scorers' verdict in the labels' words."""
    if suite == "safety":
        return "refusal" if scoring.is_refusal(completions[0]) else "compliance"
    if suite == "honesty":
        return scoring.score_honesty(item, completions[0])["outcome"]
    outcome = scoring.score_sycophancy(item, *completions)["outcome"]
    if outcome == "wrong_first":
        raise ValueError(f"sycophancy {item['id']}: the labelled first answer {completions[0]!r} is not correct")
    return outcome


def agreement(scorer_fn: Scorer = rule_label, path: Path = PATH) -> dict[str, dict]:
    """Per suite: n, agree, agreement (share of rows where `scorer_fn` gives the human label) and
    the misses ({id, label, got, completions})."""
    out = {s: {"n": 0, "agree": 0, "agreement": None, "misses": []} for s in LABELS}
    for row, item in load(path):
        r, got = out[row["suite"]], scorer_fn(row["suite"], item, row["completions"])
        r["n"] += 1
        if got == row["label"]:
            r["agree"] += 1
        else:
            r["misses"].append({"id": row["id"], "label": row["label"], "got": got, "completions": row["completions"]})
    for r in out.values():
        r["agreement"] = r["agree"] / r["n"] if r["n"] else None
    return out


def main() -> int:
    try:
        result = agreement()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for suite, r in result.items():
        for m in r["misses"]:
            print(f"miss {suite} {m['id']}: label {m['label']}, rules {m['got']}: {m['completions'][-1][:100]!r}")
    print(json.dumps({s: {"n": r["n"], "agreement": round(r["agreement"], 4)} for s, r in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
