"""What a metric is, wherever it is declared: its key, good direction, whether a gate budget may
name it, and the benchmark splits its records came from; the one place that says whether a metric
may decide anything.

    from pipeline.infra.metricspec import spec, decision_refusal
    spec("drift.eval_agreement_gen0", cfg.eval).splits      # ("gsm8k/validation",)
    decision_refusal("gsm8k_test.accuracy_flexible", cfg.eval)  # "... computed over the test split gsm8k/test ..."

- eval metrics `<task>.<metric>` read their task's split (`eval.tasks.<task>.split`);
- the drift stage's own metrics declare which eval tasks they read (pipeline.drift.metrics `evals`:
  eval agreement reads the non-test tasks; its `_test` twin and the items gained/lost read test ones);
- probe-suite metrics read probe items, no benchmark split.
A split is a test split when the benchmark registry says so (`Benchmark.test_splits`; a benchmark
no longer registered counts as one, since nothing shows it is not). A metric that read a test split
is reported, never used: config validation (`check_config`: gate budgets), the gate's inputs, the
proposal history the teacher reads and candidate selection all ask `decision_refusal` and refuse
it, whatever its name. Stages record the splits they actually read (the eval manifest's
`tasks.<task>.benchmark/split`, the drift manifest's `splits`); `manifest_splits` reads them back,
and a recorded declaration wins over one resolved from today's config.

A later change folds the three metric declarations (eval `Metric`, probe `Metric`, `DriftMetric`)
into this `MetricSpec`; for now it is resolved from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline import probes
from pipeline.config import ConfigError
from pipeline.drift import metrics as drift_metrics
from pipeline.evals import BENCHMARKS, parse_task_name
from pipeline.stats.ledger import base_of

if TYPE_CHECKING:
    from pipeline.config import Config, EvalConfig

Splits = Mapping[str, Sequence[str]]  # metric key -> "<benchmark>/<split>" labels its records came from


@dataclass(frozen=True)
class MetricSpec:
    key: str
    direction: str | None  # higher | lower | None (no better side)
    budgetable: bool  # whether `gate.budgets` may name it
    splits: tuple[str, ...] = ()  # "<benchmark>/<split>" of the records behind it; () = no benchmark items
    tasks: tuple[str, ...] = ()  # the eval tasks those records came from

    @property
    def test_splits(self) -> tuple[str, ...]:
        return tuple(s for s in self.splits if is_test_split(s))


def split_label(benchmark: str, split: str) -> str:
    return f"{benchmark}/{split}"


def is_test_split(label: str) -> bool:
    """Whether `<benchmark>/<split>` is a test split (an unregistered benchmark counts as one)."""
    bench, _, split = label.partition("/")
    return bench not in BENCHMARKS or split in BENCHMARKS.get(bench).test_splits


def _task_split(task: str, eval_cfg: "EvalConfig") -> str:
    t = eval_cfg.tasks[task]
    return split_label(t.benchmark, t.split)


def tasks_read(evals: str, eval_cfg: "EvalConfig") -> list[str]:
    """The eval tasks a drift metric with `evals` (""|decision|test|all) reads under `eval_cfg`."""
    if not evals:
        return []
    test = {name for name in eval_cfg.tasks if is_test_split(_task_split(name, eval_cfg))}
    return [name for name in eval_cfg.tasks
            if evals == "all" or (evals == "test") == (name in test)]


def spec(key: str, eval_cfg: "EvalConfig") -> MetricSpec | None:
    """The metric `key` as declared by its registry, its splits resolved against `eval_cfg`; None
    for a key no registry declares (an interval key, a task no longer configured)."""
    if key.startswith("drift."):
        m = drift_metrics.find(key)
        if m is not None:
            tasks = tasks_read(m.evals, eval_cfg)
            return MetricSpec(key, m.direction, m.budgetable,
                              tuple(dict.fromkeys(_task_split(t, eval_cfg) for t in tasks)), tuple(tasks))
        for s in probes.SUITES:
            for pm in s.all_metrics():
                if pm.key == key:
                    return MetricSpec(key, pm.direction, pm.budgetable)
        return None
    task, _, name = key.partition(".")
    t = eval_cfg.tasks.get(task)
    if t is None or t.benchmark not in BENCHMARKS:
        return None
    direction = BENCHMARKS.get(t.benchmark).task_metrics(t).get(name)
    if direction is None:
        return None
    return MetricSpec(key, direction, False, (_task_split(task, eval_cfg),), (task,))


def splits_of(key: str, eval_cfg: "EvalConfig | None", recorded: Splits | None = None) -> tuple[str, ...] | None:
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


def decision_refusal(key: str, eval_cfg: "EvalConfig | None", recorded: Splits | None = None) -> str | None:
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


def decision_metrics(metrics: Mapping[str, object], eval_cfg: "EvalConfig", recorded: Splits | None = None) -> dict:
    """`metrics` without every metric (and its interval keys) that read a test split or whose splits
    are unknown: what the gate, the proposal history and selection may read."""
    out = {}
    for k, v in metrics.items():
        base = base_of(k, metrics) or k
        if decision_refusal(base, eval_cfg, recorded) is None:
            out[k] = v
    return out


def manifest_splits(eval_info: Mapping | None, drift_info: Mapping | None, eval_cfg: "EvalConfig"
                    ) -> dict[str, tuple[str, ...]]:
    """The splits two finished manifests (eval's and drift's `info`) declare for their metrics:
    each eval metric `<task>.<m>` its task's benchmark/split, each drift metric its recorded `splits`.
    A drift manifest from before the declaration (no `splits`) computed eval agreement over every
    task: its eval-reading metrics count as reading every configured task's split."""
    out: dict[str, tuple[str, ...]] = {}
    if drift_info is not None and "splits" not in drift_info:
        every = tuple(dict.fromkeys(_task_split(t, eval_cfg) for t in eval_cfg.tasks))
        out.update({k: every for m in drift_metrics.ALL if m.evals for k in m.keys()})
    for task, t in ((eval_info or {}).get("tasks") or {}).items():
        if isinstance(t, Mapping) and t.get("benchmark") and t.get("split"):
            for m in t.get("directions") or {}:
                out[f"{task}.{m}"] = (split_label(t["benchmark"], t["split"]),)
    for key, labels in ((drift_info or {}).get("splits") or {}).items():
        out[key] = tuple(labels)
    return out


def check_config(cfg: "Config") -> None:
    """Gate budgets: a budget on a metric that reads a test split is a ConfigError naming the budget,
    the metric and the split (before the registry's "unknown drift metric", whatever its name)."""
    for name in cfg.gate.budgets:
        why = decision_refusal(f"drift.{name}", cfg.eval)
        if why is not None and spec(f"drift.{name}", cfg.eval) is not None:
            raise ConfigError(f"invalid config value for 'gate.budgets.{name}': {why}")
