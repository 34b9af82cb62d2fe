"""One metric vocabulary: `MetricSpec` declares every metric (a benchmark's, a probe suite's, the drift
stage's own) and says whether a metric may decide anything.

    MetricSpec("accuracy_flexible", "higher", "the last number is right")        # pipeline/evals/gsm8k.py
    MetricSpec("drift.honesty", "higher", select=of_kind(), value=scored, budgetable=True)  # a probe suite
    MetricSpec("drift.kl_{ref}", "lower", budgetable=True, identity=0.0)         # pipeline/drift/metrics.py

    from pipeline.infra.metricspec import spec, decision_refusal
    spec("drift.eval_agreement_gen0", cfg.eval).splits      # ("gsm8k/validation",)
    decision_refusal("gsm8k_test.accuracy_flexible", cfg.eval)  # "... computed over the test split gsm8k/test ..."

A declaration holds the key (a `{k}`, `{n}` or `{ref}` in it stands for a family: HumanEval's
`pass@{k}`, `drift.distinct_{n}`, `drift.kl_{ref}`), the good direction, whether a gate budget may
name it, which eval records it reads (`reads`: "" none, "decision" the tasks on non-test splits,
"test" the tasks on test splits, "all"), and how its per-item values are read (`select`, `value`;
an eval metric reads `record["metrics"][<name>]`) and reduced: the reported value is the mean of the
per-item values, the same values paired statistics test (`item_values`, `mean`).

The splits a metric read are resolved against the eval config (`spec(key, eval_cfg)`):
- eval metrics `<task>.<metric>` read their task's split (`eval.tasks.<task>.split`);
- the drift stage's own metrics read the eval tasks their `reads` names;
- probe-suite metrics read probe items, no benchmark split.
A split is a test split when the benchmark registry says so (`Benchmark.test_splits`; a benchmark
no longer registered counts as one, since nothing shows it is not). A metric that read a test split
is reported, never used: config validation (gate budgets), the gate's inputs, the proposal history
the teacher reads and candidate selection all ask `decision_refusal` and refuse it, whatever its
name. Stages record the splits they actually read (the eval manifest's `tasks.<task>.benchmark/split`,
the drift manifest's `splits`); `manifest_splits` reads them back, and a recorded declaration wins
over one resolved from today's config.

This module is the bottom layer: it reads the benchmark, probe-suite and drift-metric registries
through `pipeline.infra.registry` and imports no package above it. The eval config is any object
with `tasks` (name -> an object with `benchmark`, `split`): `pipeline.config.EvalConfig`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from typing import Any, Callable

from pipeline.infra.slices import SELECTION_SLICE
from pipeline.infra.registry import registry

DIRECTIONS = ("higher", "lower")  # which way is better; None: no better side (a mean length)
READS = ("", "decision", "test", "all")  # which eval tasks' records a metric reads
REFS = ("gen0", "parent")  # the generations a drift distance is measured from (`{ref}`)
SUFFIXES = ("_lo", "_hi", "_n")  # a metric's interval keys beside it in a flat metrics dict
_FIELDS = {"k": r"(\d+)", "n": r"(\d+)", "ref": "(" + "|".join(REFS) + ")"}

Splits = Mapping[str, Sequence[str]]  # metric key -> "<benchmark>/<split>" labels its records came from


class MetricError(ValueError):
    """A malformed metric declaration."""


@dataclass(frozen=True)
class MetricSpec:
    key: str  # ledger key (`drift.<name>`, or a benchmark's metric name within its task), maybe a template
    direction: str | None  # higher | lower | None (no better side)
    description: str = ""
    _: KW_ONLY
    budgetable: bool = False  # whether `gate.budgets` may name it
    reads: str = ""  # "" | decision | test | all: which eval tasks' records it reads
    select: Callable[[dict], bool] | None = None  # which records it counts (None: every one)
    value: Callable[[dict], float] | None = None  # per-record value (None: `record["metrics"][key]`)
    identity: float | None = None  # its value for a generation against itself (distances only: KL 0)
    lm_eval: str = ""  # its key in lm-eval's results.json, `<metric>,<filter>`; default `<key>,none`
    splits: tuple[str, ...] = ()  # resolved: "<benchmark>/<split>" of the records behind it
    tasks: tuple[str, ...] = ()  # resolved: the eval tasks those records came from

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise MetricError(f"a metric needs a non-empty string key, got {self.key!r}")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise MetricError(f"metric {self.key!r}: direction {self.direction!r} is not higher|lower")
        if self.reads not in READS:
            raise MetricError(f"metric {self.key!r}: reads {self.reads!r} is not one of {READS}")

    @property
    def name(self) -> str:  # what a Registry keys entries by
        return self.key

    @property
    def test_splits(self) -> tuple[str, ...]:
        return tuple(s for s in self.splits if is_test_split(s))

    # -- keys of a family ----------------------------------------------------------------------------
    def expand(self, **fields: object) -> str:
        """One key of the family: `KL.expand(ref="gen0")` -> "drift.kl_gen0"."""
        return self.key.format(**fields)

    def _match(self, key: str) -> re.Match | None:
        pattern = re.escape(self.key)
        for f, p in _FIELDS.items():
            pattern = pattern.replace(re.escape("{" + f + "}"), p)
        return re.fullmatch(pattern, key)

    def matches(self, key: str) -> bool:
        """Whether `key` is one of this metric's keys (any k, n or reference)."""
        return self._match(key) is not None

    def keys(self) -> list[str]:
        """Every key of a `{ref}` family (one per reference); [] when `{k}` or `{n}` is left open."""
        if "{n}" in self.key or "{k}" in self.key:
            return []
        return [self.expand(ref=r) for r in REFS] if "{ref}" in self.key else [self.key]

    def names(self, task: Any) -> list[str]:
        """A benchmark metric's names in one eval task: `pass@{k}` -> one per k of the task's `k`."""
        return [self.expand(k=k) for k in task.k] if "{k}" in self.key else [self.key]

    def lm_eval_key(self, name: str) -> tuple[str, str]:
        """(metric, filter) of one expanded name in lm-eval's layout: `pass@1` -> ("pass@1", "create_test")."""
        m = self._match(name)
        key = (self.lm_eval or f"{self.key},none").format(k=m.group(1) if m and m.groups() else "")
        metric, _, filt = key.partition(",")
        return metric, filt or "none"

    # -- per-item values and their reduction ---------------------------------------------------------
    def counts(self, record: dict) -> bool:
        return self.select is None or bool(self.select(record))

    def read(self, record: dict, key: str | None = None) -> float | None:
        """The record's value of this metric (`key`: one name of a family), None when it has none."""
        if self.value is not None:
            return float(self.value(record))
        v = (record.get("metrics") or {}).get(key or self.key)
        return None if v is None else float(v)

    def item_values(self, records: list[dict], key: str | None = None) -> dict[str, float]:
        """id -> per-record value of the records it counts (what paired statistics compare)."""
        return {r["id"]: v for r in records if self.counts(r) and (v := self.read(r, key)) is not None}

    def mean(self, records: list[dict], key: str | None = None) -> float | None:
        """The reported value: the mean of the per-record values (None when it counts no record)."""
        vs = [v for r in records if self.counts(r) and (v := self.read(r, key)) is not None]
        return sum(vs) / len(vs) if vs else None


def declared(specs: Sequence[MetricSpec], key: str) -> MetricSpec | None:
    """The declaration among `specs` that `key` is one of, or None."""
    return next((m for m in specs if m.matches(key)), None)


def budget_keys(specs: Sequence[MetricSpec]) -> dict[str, str]:
    """Every key of `specs` a gate budget may name (`{ref}` families expanded) -> its direction."""
    return {k: m.direction for m in specs if m.budgetable and m.direction for k in m.keys()}


def base_of(key: str, metrics: Mapping[str, Any]) -> str | None:
    """The metric `key` is an interval key of (present in `metrics`), else None."""
    for s in SUFFIXES:
        if key.endswith(s) and key[: -len(s)] in metrics:
            return key[: -len(s)]
    return None


# -- which splits a metric read ---------------------------------------------------------------------
def split_label(benchmark: str, split: str) -> str:
    return f"{benchmark}/{split}"


def is_test_split(label: str) -> bool:
    """Whether `<benchmark>/<split>` is a test split (an unregistered benchmark counts as one)."""
    bench, _, split = label.partition("/")
    benchmarks = registry("benchmark")
    return bench not in benchmarks or split in benchmarks.get(bench).test_splits


def parse_task_name(task: str) -> tuple[Any, str, str] | None:
    """(benchmark, split, protocol) that a task name names, for where only names are at hand (a
    ledger row): `<benchmark>[_<split or its prefix>][_<protocol>]`, protocol `chat` when none is
    named (`gsm8k_val` -> validation/chat, `gsm8k_val_fewshot` -> validation/fewshot,
    `humaneval_raw` -> test/raw); None for a name that is no such task."""
    for b in registry("benchmark"):
        if task != b.name and not task.startswith(b.name + "_"):
            continue
        rest, proto = task[len(b.name) + 1:], "chat"
        for p in sorted(b.protocols, key=len, reverse=True):  # few_shot before a shorter name it ends in
            if rest == p or rest.endswith("_" + p):
                rest, proto = rest[:-len(p)].rstrip("_"), p
                break
        split = b.split_for(rest)
        if split is not None:
            return b, split, proto
    return None


def _task_split(task: str, eval_cfg: Any) -> str:
    t = eval_cfg.tasks[task]
    return split_label(t.benchmark, t.split)


def tasks_read(reads: str, eval_cfg: Any) -> list[str]:
    """The eval tasks a metric with `reads` (""|decision|test|all) reads under `eval_cfg`. "decision"
    leaves out the selection slice too: what the gate may read stays apart from what ranks candidates."""
    if not reads:
        return []
    test = {name for name in eval_cfg.tasks if is_test_split(_task_split(name, eval_cfg))}
    chosen = {name for name in eval_cfg.tasks if eval_cfg.tasks[name].split == SELECTION_SLICE}
    return [name for name in eval_cfg.tasks
            if reads == "all" or (reads == "test" and name in test)
            or (reads == "decision" and name not in test and name not in chosen)]


def spec(key: str, eval_cfg: Any) -> MetricSpec | None:
    """The metric `key` as declared by its registry, its splits resolved against `eval_cfg`; None
    for a key no registry declares (an interval key, a task no longer configured)."""
    if key.startswith("drift."):
        m = declared(list(registry("drift metric")), key)
        if m is not None:
            tasks = tasks_read(m.reads, eval_cfg)
            return replace(m, key=key, splits=tuple(dict.fromkeys(_task_split(t, eval_cfg) for t in tasks)),
                           tasks=tuple(tasks))
        for s in registry("probe suite"):
            for pm in s.all_metrics():
                if pm.key == key:
                    return pm
        return None
    task, _, name = key.partition(".")
    t = eval_cfg.tasks.get(task)
    benchmarks = registry("benchmark")
    if t is None or t.benchmark not in benchmarks:
        return None
    m = next((m for m in benchmarks.get(t.benchmark).metrics if name in m.names(t)), None)
    if m is None:
        return None
    return replace(m, key=key, splits=(_task_split(task, eval_cfg),), tasks=(task,))


def splits_of(key: str, eval_cfg: Any | None, recorded: Splits | None = None) -> tuple[str, ...] | None:
    """The splits metric `key` read: its recorded declaration, else its spec under `eval_cfg` (when
    given), else what its task name says (`gsm8k_test` -> gsm8k/test, for a ledger row of a task
    since removed); None when nothing says."""
    if recorded is not None and key in recorded:
        return tuple(recorded[key])
    s = spec(key, eval_cfg) if eval_cfg is not None else None
    if s is not None:
        return s.splits
    parsed = None if key.startswith("drift.") else parse_task_name(key.partition(".")[0])
    return (split_label(parsed[0].name, parsed[1]),) if parsed else None


def decision_refusal(key: str, eval_cfg: Any | None, recorded: Splits | None = None) -> str | None:
    """Why metric `key` may not decide anything (a one-line reason naming the test split), or None
    when it may. A key nothing declares is refused too: nothing shows it read no test split."""
    splits = splits_of(key, eval_cfg, recorded)
    if splits is None:
        return f"{key} is declared by no registry, so the splits it read are unknown"
    test = [s for s in splits if is_test_split(s)]
    if test:
        return (f"{key} is computed over the test split{'s' if len(test) > 1 else ''} {', '.join(test)}; "
                "test splits are reported, never used to decide")
    return None


def budget_refusal(name: str, eval_cfg: Any) -> str | None:
    """Why `gate.budgets.<name>` may not budget its metric because it read a test split (checked before
    "unknown drift metric", whatever its name), or None."""
    key = f"drift.{name}"
    return decision_refusal(key, eval_cfg) if spec(key, eval_cfg) is not None else None


def decision_metrics(metrics: Mapping[str, object], eval_cfg: Any, recorded: Splits | None = None) -> dict:
    """`metrics` without every metric (and its interval keys) that read a test split or whose splits
    are unknown: what the gate, the proposal history and selection may read."""
    out = {}
    for k, v in metrics.items():
        base = base_of(k, metrics) or k
        if decision_refusal(base, eval_cfg, recorded) is None:
            out[k] = v
    return out


def manifest_splits(eval_info: Mapping | None, drift_info: Mapping | None, eval_cfg: Any
                    ) -> dict[str, tuple[str, ...]]:
    """The splits two finished manifests (eval's and drift's `info`) declare for their metrics:
    each eval metric `<task>.<m>` its task's benchmark/split, each drift metric its recorded `splits`.
    A drift manifest from before the declaration (no `splits`) computed eval agreement over every
    task: its eval-reading metrics count as reading every configured task's split."""
    out: dict[str, tuple[str, ...]] = {}
    if drift_info is not None and "splits" not in drift_info:
        every = tuple(dict.fromkeys(_task_split(t, eval_cfg) for t in eval_cfg.tasks))
        out.update({k: every for m in registry("drift metric") if m.reads for k in m.keys()})
    for task, t in ((eval_info or {}).get("tasks") or {}).items():
        if isinstance(t, Mapping) and t.get("benchmark") and t.get("split"):
            for m in t.get("directions") or {}:
                out[f"{task}.{m}"] = (split_label(t["benchmark"], t["split"]),)
    for key, labels in ((drift_info or {}).get("splits") or {}).items():
        out[key] = tuple(labels)
    return out
