"""The benchmark registry: every benchmark the eval stage, config validation, decontamination and the
report know of. Built-ins register here, one line each; a plugin (a module named in the config's
`plugins`) or a test calls `register_benchmark(b)` with its own `pipeline.evals.base.Benchmark`.

    python -m pipeline.evals --list                  # benchmarks, splits, protocols, metrics
    python -m pipeline.evals.gsm8k --help            # the scorers' own CLIs
    python -m pipeline.evals.humaneval --help

Each benchmark module (gsm8k.py, humaneval.py) is also a pure checker shared by the eval stage
(pipeline.evals) and the synthesis verifiers.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from pipeline.config import ConfigError
from pipeline.evals import gsm8k, humaneval
from pipeline.evals.base import Benchmark
from pipeline.infra.registry import Registry

if TYPE_CHECKING:
    from pipeline.config import Config, EvalConfig

# `python -m pipeline.evals.gsm8k` imports this package, which imports gsm8k to register it, before
# runpy executes gsm8k as __main__; the CLI uses nothing of the registry, so the warning is noise.
warnings.filterwarnings("ignore", category=RuntimeWarning,
                        message=r"'pipeline\.evals\.\w+' found in sys\.modules after import of package 'pipeline\.evals'")

BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
BENCHMARKS.register(gsm8k.BENCHMARK)
BENCHMARKS.register(humaneval.BENCHMARK)


def register_benchmark(benchmark: Benchmark, replace: bool = False) -> Benchmark:
    """Make a benchmark known to evaluation, config validation, decontamination and the report."""
    if not isinstance(benchmark, Benchmark):
        raise TypeError(f"register_benchmark needs a pipeline.evals.base.Benchmark, got {type(benchmark).__name__}")
    return BENCHMARKS.register(benchmark, replace=replace)


def _fail(key: str, msg: str) -> None:
    raise ConfigError(f"invalid config value for '{key}': {msg}")


def check_config(cfg: "Config") -> None:
    """Every eval task against its benchmark (benchmark, split, protocol and what the protocol
    needs), then the gate metric: a higher-is-better metric of a non-test eval task."""
    for name, task in cfg.eval.tasks.items():
        key = f"eval.tasks.{name}"
        if task.benchmark not in BENCHMARKS:
            _fail(f"{key}.benchmark", f"unknown benchmark {task.benchmark!r}; registered: {BENCHMARKS.names()}")
        b = BENCHMARKS.get(task.benchmark)
        if task.split not in b.splits:
            only = f"{b.title} has only a {next(iter(b.splits))} split" if len(b.splits) == 1 \
                else f"{b.title} has splits {'|'.join(b.splits)}"
            _fail(f"{key}.split", f"{task.split!r} is not a split of {b.title} ({only})")
        if task.prompt not in b.protocols:
            _fail(f"{key}.prompt", f"{task.prompt!r} is not a protocol of {b.title}; it has {'|'.join(b.protocols)}")
        problem = b.protocols[task.prompt].check and b.protocols[task.prompt].check(task)
        if problem:
            _fail(f"{key}.{problem[0]}", problem[1])
    task, _, metric = cfg.gate.metric.partition(".")
    if task not in cfg.eval.tasks:
        _fail("gate.metric", f"task {task!r} is not in eval.tasks {sorted(cfg.eval.tasks)}")
    if is_test_task(task, cfg.eval):
        t = cfg.eval.tasks[task]
        _fail("gate.metric", f"{cfg.gate.metric} is computed over eval task {task!r}, which has split={t.split} "
                             f"({t.benchmark}/{t.split}, a test split); test splits are reported, never used to decide")
    directions = BENCHMARKS.get(cfg.eval.tasks[task].benchmark).task_metrics(cfg.eval.tasks[task])
    if metric not in directions:
        _fail("gate.metric", f"{metric!r} is not a metric of eval task {task!r}; it has {sorted(directions)}")
    if directions[metric] != "higher":
        _fail("gate.metric", f"{cfg.gate.metric!r} is lower-is-better; the gate's capability rule needs higher-is-better")
    n = cfg.eval.tasks[task].n
    if cfg.gate.looks and n and n > 0 and cfg.gate.looks[0] != n:
        # the first look is the eval's own items; later looks score further items of the same permutation
        _fail("gate.looks", f"the first look {cfg.gate.looks[0]} must be the gated task's eval.tasks.{task}.n = {n}")


def check_inputs(cfg: "Config") -> None:
    """Every eval task's items load and are not empty: run before a lineage gets its first file, so a
    missing or empty data directory is one DataError naming the task and the file, not a traceback
    mid-run. The loaders cache what they read (GSM8K train and test, the HumanEval file)."""
    from pipeline.evals.loaders import DataError

    for name, task in cfg.eval.tasks.items():
        b = BENCHMARKS.get(task.benchmark)
        where = f"eval.tasks.{name} ({b.title} {task.split})"
        try:
            items = b.splits[task.split]()
        except Exception as e:  # each loader's own error (a missing file, a bad row, an offline hub) names it
            raise DataError(f"{where}: cannot load its items: {type(e).__name__}: {' '.join(str(e).split())[:400]}"
                            ) from None
        if not items:
            raise DataError(f"{where}: the split has no items")


def is_test_task(task: str, eval_cfg: "EvalConfig") -> bool:
    """True when eval task `task` runs on a test split of its benchmark: such scores are reported,
    never used to select or promote. A name that is no eval task (`drift`, ...) is not one."""
    spec = eval_cfg.tasks.get(task)
    return spec is not None and spec.split in BENCHMARKS.get(spec.benchmark).test_splits


def protected_ids() -> frozenset[str]:
    """Ids of every item on a protected split of any registered benchmark (never to be trained on)."""
    return frozenset(it["id"] for b in BENCHMARKS for s in sorted(b.protected_splits) for it in b.splits[s]())


def parse_task_name(task: str) -> tuple[Benchmark, str, str] | None:
    """(benchmark, split, protocol) that a task name names, for where only names are at hand (a
    ledger row): `<benchmark>[_<split or its prefix>][_<protocol>]`, protocol `chat` when none is
    named (`gsm8k_val` -> validation/chat, `gsm8k_val_fewshot` -> validation/fewshot,
    `humaneval_raw` -> test/raw); None for a name that is no such task."""
    for b in BENCHMARKS:
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


def headline_columns(metric_keys: list[str]) -> tuple[str, ...]:
    """The report's capability columns among `metric_keys` (`<task>.<metric>`): test-split tasks
    first, then the others; within each, benchmarks in registry order, each task's headline metrics.
    A task is recognised by its name (`parse_task_name`), since a ledger row holds metric names
    only; unknown tasks are left to the rest of the table."""
    tasks = sorted({k.split(".", 1)[0] for k in metric_keys if "." in k})
    parsed = {t: parse_task_name(t) for t in tasks}
    test: list[str] = []
    other: list[str] = []
    for b in BENCHMARKS:
        for task in tasks:
            if parsed[task] is None or parsed[task][0] is not b:
                continue
            split = parsed[task][1]
            cols = [f"{task}.{m}" for m in b.headline.get(split, ())]
            (test if split in b.test_splits else other).extend(c for c in cols if c in metric_keys)
    return tuple(test + other)
