"""The benchmark registry: every benchmark the eval stage, config validation, decontamination and the
report know of. Built-ins are the modules of this package that declare `BENCHMARK = Benchmark(...)`
(found by reading the files, registered in name order); a plugin (a module named in the config's
`plugins`) or a test calls `register_benchmark(b)` with its own `pipeline.evals.base.Benchmark`.

    python -m pipeline.evals --list                  # benchmarks, splits, protocols, metrics
    python -m pipeline.evals.gsm8k --help            # the scorers' own CLIs
    python -m pipeline.evals.humaneval --help

Each benchmark module (gsm8k.py, humaneval.py) is also a pure checker shared by the eval stage
(pipeline.evals) and the synthesis verifiers.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import ConfigError
from pipeline.evals import selection
from pipeline.evals.base import Benchmark
from pipeline.infra.metricspec import parse_task_name  # noqa: F401 (the benchmark registry's name parser)
from pipeline.infra.registry import Registry, register_check

if TYPE_CHECKING:
    from pipeline.config import Config, EvalConfig

# `python -m pipeline.evals.gsm8k` imports this package, which imports gsm8k to register it, before
# runpy executes gsm8k as __main__; the CLI uses nothing of the registry, so the warning is noise.
warnings.filterwarnings("ignore", category=RuntimeWarning,
                        message=r"'pipeline\.evals\.\w+' found in sys\.modules after import of package 'pipeline\.evals'")

BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def _builtin_modules() -> list[str]:
    """The modules of this package that declare a top-level `BENCHMARK = Benchmark(...)`, by name:
    found by reading the files (as lm-eval finds its tasks by scanning a folder), so adding a
    built-in benchmark is its module plus its config, and the stage modules here are never imported."""
    here = Path(__file__).parent
    return [m.name for m in sorted(pkgutil.iter_modules([str(here)]), key=lambda m: m.name)
            if not m.ispkg and _DECLARES.search((here / f"{m.name}.py").read_text(encoding="utf-8"))]


_DECLARES = re.compile(r"^BENCHMARK\s*(?::[^=]*)?=\s*Benchmark\(", re.MULTILINE)
for _name in _builtin_modules():
    BENCHMARKS.register(importlib.import_module(f"{__name__}.{_name}").BENCHMARK)


def register_benchmark(benchmark: Benchmark, replace: bool = False) -> Benchmark:
    """Make a benchmark known to evaluation, config validation, decontamination and the report."""
    if not isinstance(benchmark, Benchmark):
        raise TypeError(f"register_benchmark needs a pipeline.evals.base.Benchmark, got {type(benchmark).__name__}")
    return BENCHMARKS.register(benchmark, replace=replace)


def modelled_on(domain: str) -> Benchmark:
    """The registered benchmark a synthesis domain (`math`, `code`) is modelled on: the first, in
    registry order, that declares `domain` (built-ins register first, so a plugin adds a domain
    rather than silently replacing a built-in's)."""
    found = next((b for b in BENCHMARKS if b.domain == domain), None)
    if found is None:
        raise KeyError(f"no registered benchmark declares domain={domain!r}; "
                       f"declared: {sorted({b.domain for b in BENCHMARKS if b.domain})}")
    return found


def card_metrics() -> list[str]:
    """The model card's `metrics`: every registered benchmark's card metric names, in registry
    order, each once (a benchmark declaring none contributes its metric names)."""
    names = [n for b in BENCHMARKS for n in (b.card_metrics or tuple(m.key for m in b.metrics))]
    return list(dict.fromkeys(names))


def training_datasets() -> list[str]:
    """Hub ids of the benchmarks whose train slices synthesis reads (pool questions and anchor rows
    enter the training mixture), for a trained model's card."""
    return list(dict.fromkeys(b.dataset or b.name for b in BENCHMARKS if b.train_slices))


def capability_keys(metric_keys) -> list[str]:
    """The keys among `metric_keys` (`<task>.<metric>`) that are a registered benchmark's metric of
    the task the name parses to (`parse_task_name`), in the given order: what the capability plot draws."""
    out = []
    for key in metric_keys:
        task, _, metric = key.partition(".")
        parsed = parse_task_name(task) if metric else None
        if parsed is not None and any(m.matches(metric) for m in parsed[0].metrics):
            out.append(key)
    return out


def metric_direction(key: str) -> str | None:
    """`higher` | `lower` for a `<task>.<metric>` key of a registered benchmark, else None."""
    task, _, metric = key.partition(".")
    parsed = parse_task_name(task) if metric else None
    return next((m.direction for m in parsed[0].metrics if m.matches(metric)), None) if parsed else None


def _fail(key: str, msg: str) -> None:
    raise ConfigError(f"invalid config value for '{key}': {msg}")


def check_config(cfg: "Config") -> None:
    """Every eval task against its benchmark (benchmark, split, protocol and what the protocol
    needs), then the gate metric: a higher-is-better metric of a non-test eval task, and the
    selection metric: one on another split than the gate's (pipeline.evals.selection)."""
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
    selection.check_config(cfg, is_test_task, lambda spec: BENCHMARKS.get(spec.benchmark).task_metrics(spec))


register_check(BENCHMARKS.kind, check_config)


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
