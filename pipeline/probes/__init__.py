"""The drift probe suites, stored in this package and versioned (`suites.json`).

    safety.jsonl      harmful requests (must be refused) and benign look-alikes (must be answered)
    honesty.jsonl     false-premise and unanswerable questions
    sycophancy.jsonl  a question with a known answer, and a wrong pushback for the second turn
    ifeval.jsonl      prompts with constraints checkable by code (pipeline.probes.scoring.CHECKS)
    reference.jsonl   prompts with reference continuations, for teacher-forced KL

The items never change within a version: bump the suite's `version` in `suites.json` when editing
a file, so per-item agreement is only ever computed between the same items. `load_suite` checks the
schema (ids unique, required fields, valid regexes, known check types) and names file and line on
error.

    python -m pipeline.probes        # validate every suite and print counts and versions
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pipeline.io import JsonlError, iter_jsonl, sha256_bytes
from pipeline.probes.scoring import check_ifeval_item

PROBE_SUITES = ("safety", "honesty", "sycophancy", "ifeval")  # scored probes
ALL_SUITES = PROBE_SUITES + ("reference",)
MIN_SAFETY_PER_KIND = 40


class ProbeError(ValueError):
    """A probe file that does not match its schema; the message names file and line."""


@dataclass
class Suite:
    name: str
    version: int
    items: list[dict]
    sha256: str  # of the file's bytes, recorded with every drift summary

    @property
    def tag(self) -> str:
        return f"{self.name}-v{self.version}"


# suite -> field -> required type; `kind` values are checked separately.
SCHEMAS: dict[str, dict[str, type | tuple]] = {
    "safety": {"id": str, "kind": str, "category": str, "prompt": str},
    "honesty": {"id": str, "kind": str, "prompt": str, "accept": list},
    "sycophancy": {"id": str, "question": str, "answer": list, "pushback": str},
    "ifeval": {"id": str, "prompt": str, "checks": list},
    "reference": {"id": str, "prompt": str, "continuation": str},
}
KINDS = {"safety": ("harmful", "benign"), "honesty": ("false_premise", "unanswerable")}
REGEX_FIELDS = {"honesty": "accept", "sycophancy": "answer"}


def _files():
    return resources.files(__package__)


def versions() -> dict[str, dict[str, Any]]:
    return json.loads(_files().joinpath("suites.json").read_text(encoding="utf-8"))


def _item_error(suite: str, item: dict) -> str | None:
    for key, typ in SCHEMAS[suite].items():
        if not isinstance(item.get(key), typ) or (typ is str and not item[key].strip()):
            return f"field {key!r} must be a non-empty {getattr(typ, '__name__', typ)}"
    if suite in KINDS and item["kind"] not in KINDS[suite]:
        return f"kind {item['kind']!r} is not one of {KINDS[suite]}"
    if suite in REGEX_FIELDS:
        pats = item[REGEX_FIELDS[suite]]
        if suite == "sycophancy" and not pats:
            return "'answer' needs at least one pattern"
        for p in pats:
            try:
                re.compile(p)
            except (re.error, TypeError) as e:
                return f"bad regex {p!r} in {REGEX_FIELDS[suite]!r}: {e}"
    if suite == "ifeval":
        return check_ifeval_item(item)
    return None


def validate(suite: str, rows: list[tuple[int, dict]], where: str) -> None:
    """Raise ProbeError for the first bad row (schema, duplicate id) or a too-small safety suite."""
    seen: dict[str, int] = {}
    for lineno, item in rows:
        err = _item_error(suite, item)
        if err:
            raise ProbeError(f"{where}:{lineno}: {err}")
        if item["id"] in seen:
            raise ProbeError(f"{where}:{lineno}: duplicate id {item['id']!r} (first on line {seen[item['id']]})")
        seen[item["id"]] = lineno
    if suite == "safety":
        for kind in KINDS["safety"]:
            n = sum(1 for _, it in rows if it["kind"] == kind)
            if n < MIN_SAFETY_PER_KIND:
                raise ProbeError(f"{where}: {n} {kind} items; the safety suite needs >= {MIN_SAFETY_PER_KIND}")
    if not rows:
        raise ProbeError(f"{where}: no items")


def load_suite(name: str) -> Suite:
    """One validated suite with its version and content hash."""
    if name not in ALL_SUITES:
        raise ProbeError(f"unknown probe suite {name!r}; known: {ALL_SUITES}")
    meta = versions()[name]
    ref = _files().joinpath(meta["file"])
    with resources.as_file(ref) as path:
        try:
            rows = list(enumerate(iter_jsonl(path), 1))
        except JsonlError as e:
            raise ProbeError(str(e)) from None
        data = path.read_bytes()
    # iter_jsonl skips blank lines, so recount to report real line numbers
    lines = [i for i, raw in enumerate(data.decode("utf-8").splitlines(), 1) if raw.strip()]
    rows = [(lines[k], item) for k, (_, item) in enumerate(rows)]
    validate(name, rows, f"pipeline/probes/{meta['file']}")
    return Suite(name=name, version=int(meta["version"]), items=[it for _, it in rows], sha256=sha256_bytes(data))


def take(suite: Suite, max_items: int) -> list[dict]:
    """The first `max_items` items (0 = all); safety takes that many of EACH kind, so a small
    smoke run still measures both refusal and over-refusal."""
    if max_items <= 0:
        return list(suite.items)
    if suite.name in KINDS:
        out = []
        for kind in KINDS[suite.name]:
            out += [it for it in suite.items if it["kind"] == kind][:max_items]
        return out
    return suite.items[:max_items]


def main() -> int:
    try:
        for name in ALL_SUITES:
            s = load_suite(name)
            kinds = {}
            for it in s.items:
                kinds[it.get("kind", "-")] = kinds.get(it.get("kind", "-"), 0) + 1
            print(f"{s.tag:16s} {len(s.items):3d} items {kinds} sha256={s.sha256[:12]}")
    except ProbeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def check_config(cfg) -> None:
    """Drift suites and gate budgets against the probe-suite registry (filled in by the suite registry)."""
