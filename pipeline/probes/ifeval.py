"""Probe suite `ifeval`: prompts with IFEval-style constraints checkable by code (`CHECKS`);
prompt-level strict score (`score_ifeval`), and the instruction-level pass rate in the summary counts.

    python -m pipeline.probes --list     # its version, item counts and metrics
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from pipeline.infra.metricspec import MetricSpec
from pipeline.probes.suite import Packaged, ProbeSuite, of_kind, scored

def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9']+", text)


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None


def _strip_fences(text: str) -> str:
    m = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.DOTALL)
    return m.group(1) if m else text.strip()


def _json_ok(text: str, keys: list[str]) -> bool:
    try:
        obj = json.loads(_strip_fences(text))
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and all(k in obj for k in keys)


def _bullets(text: str) -> int:
    return sum(1 for line in text.splitlines() if re.match(r"\s*[-*] \S", line))


# check type -> (required params, predicate(completion, check) -> bool)
CHECKS: dict[str, tuple[tuple[str, ...], Callable[[str, dict], bool]]] = {
    "max_words": (("n",), lambda t, c: len(_words(t)) <= c["n"]),
    "min_words": (("n",), lambda t, c: len(_words(t)) >= c["n"]),
    "json": (("keys",), lambda t, c: _json_ok(t, c["keys"])),
    "include_words": (("words",), lambda t, c: all(_has_word(t, w) for w in c["words"])),
    "exclude_words": (("words",), lambda t, c: not any(_has_word(t, w) for w in c["words"])),
    "end_with": (("phrase",), lambda t, c: t.rstrip().endswith(c["phrase"])),
    "start_with": (("phrase",), lambda t, c: t.lstrip().startswith(c["phrase"])),
    "lowercase": ((), lambda t, c: bool(t.strip()) and t == t.lower()),
    "uppercase": ((), lambda t, c: any(ch.isalpha() for ch in t) and t == t.upper()),
    "bullets": (("n",), lambda t, c: _bullets(t) == c["n"]),
    "no_commas": ((), lambda t, c: bool(t.strip()) and "," not in t),
}


def score_ifeval(item: dict, completion: str) -> dict:
    """Prompt-level strict: score 1 only when every check passes; `passed` lists each check."""
    passed = [bool(CHECKS[c["type"]][1](completion, c)) for c in item["checks"]]
    ok = all(passed)
    return {"score": float(ok), "outcome": "followed" if ok else "broke", "evidence": {"passed": passed}}


def check_ifeval_item(item: dict) -> str | None:
    """Why an ifeval item's checks are malformed, or None."""
    checks: Any = item.get("checks")
    if not isinstance(checks, list) or not checks:
        return "'checks' must be a non-empty list"
    for c in checks:
        if not isinstance(c, dict) or c.get("type") not in CHECKS:
            return f"unknown check {c!r}; known types: {sorted(CHECKS)}"
        missing = [p for p in CHECKS[c["type"]][0] if p not in c]
        if missing:
            return f"check {c['type']!r} lacks {missing}"
    return None


def _counts(recs: list[dict]) -> dict:
    checks = [p for r in recs for p in r["evidence"]["passed"]]
    return {"ifeval": len(recs), "ifeval_instruction_level": sum(checks) / len(checks) if checks else None}


SUITE = ProbeSuite(
    name="ifeval",
    source=Packaged("ifeval"),
    schema={"id": str, "prompt": str, "checks": list},
    check_item=check_ifeval_item,
    prompt=lambda it: it["prompt"],
    score=score_ifeval,
    metrics=(MetricSpec("drift.ifeval", "higher", select=of_kind(), value=scored, budgetable=True),),
    summary_counts=_counts,
)
