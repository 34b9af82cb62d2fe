"""The selection slice: the GSM8K *train* items that rank several candidates, apart from the gate.

With more than one candidate (`propose.candidates > 1`, a sweep, Optuna) the best score among them
is inflated by the choice itself; if the gate then judged the winner on the same items, that
inflation would pass straight into the gate and into the next generation's reference. So the
candidates are ranked on their own slice (`candidate.select_metric`, task `gsm8k_sel` by default)
and the gate reads only its validation slice (`gate.metric`). The selection slice is cut from GSM8K
train minus the validation slice, from the end of the same seeded shuffle that cuts the verifier and
exemplar slices (which keep their ids), so it never overlaps the validation slice, the verifier's
questions, the few-shot exemplars or the synthesis pool (the anchor rows and the question pool of
synthesis); it is protected like validation (never trained on, decontaminated against). GSM8K test
is never used for selection.

Only a candidate among several (a directory `gen_NNN-<name>`) is scored on it: gen 0 and a
generation that is its own single candidate have nothing to choose between.

    python -c "from pipeline.evals.gsm8k import train_slice; print(len(train_slice('selection')))"
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

from pipeline.config import ConfigError
from pipeline.infra.slices import SELECTION_SIZE, SELECTION_SLICE  # noqa: F401 (the cut: pipeline.infra.slices)

if TYPE_CHECKING:
    from pipeline.config import Config

# Bump when the ids change (its version in pipeline.infra.slices.SLICES too). v1: the SELECTION_SIZE ids
# just before validation block 2 at the end of the shuffle of train minus validation block 1.
SELECTION_VERSION = "gsm8k-train-selection-v1"


def has_choice(gen_name: str, index: int) -> bool:
    """Whether a generation dir is one candidate among several (`gen_NNN-<name>`): only those are ranked."""
    return gen_name != f"gen_{index:03d}"


def selection_task(cfg: "Config") -> str | None:
    """The eval task `candidate.select_metric` reads, when it is not the gate's own task."""
    task = cfg.candidate.select_metric.partition(".")[0]
    return task if task != cfg.gate.metric.partition(".")[0] else None


def tasks_for(cfg: "Config", gen_name: str, index: int) -> "Config":
    """`cfg` as the eval stage of `gen_name` should see it: without the selection task where there is
    no choice to make (it would only cost generations)."""
    task = selection_task(cfg)
    if has_choice(gen_name, index) or task not in cfg.eval.tasks:
        return cfg
    kept = {k: v for k, v in cfg.eval.tasks.items() if k != task}
    return dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, tasks=kept))


def check_config(cfg: "Config", is_test_task: Callable, task_metrics: Callable) -> None:
    """`candidate.select_metric`: a higher-is-better metric of a non-test eval task on another split
    than the gate's (selection apart from gating). Its task may be missing only where no run of this
    config compares candidates (`propose.candidates` 1 and no sweep job). `is_test_task` and
    `task_metrics` (spec -> {metric: direction}) are the benchmark registry's, passed in by
    pipeline.evals.check_config."""
    key, metric = "candidate.select_metric", cfg.candidate.select_metric
    task, _, name = metric.partition(".")
    chooses = cfg.propose.candidates > 1 or bool(cfg.candidate.name)
    if task not in cfg.eval.tasks:
        if chooses:
            raise ConfigError(f"invalid config value for '{key}': task {task!r} is not in eval.tasks "
                              f"{sorted(cfg.eval.tasks)}, and this run compares candidates")
        return
    spec, gate = cfg.eval.tasks[task], cfg.eval.tasks.get(cfg.gate.metric.partition(".")[0])
    if is_test_task(task, cfg.eval):
        raise ConfigError(f"invalid config value for '{key}': {metric} is computed over a test split "
                          f"({spec.benchmark}/{spec.split}); test splits are never used for selection")
    if gate is not None and (gate.benchmark, gate.split) == (spec.benchmark, spec.split):
        raise ConfigError(f"invalid config value for '{key}': {metric} reads {spec.benchmark}/{spec.split}, the "
                          f"split the gate reads ({cfg.gate.metric}); rank candidates on a disjoint slice "
                          f"(e.g. gsm8k_sel.accuracy_flexible)")
    directions = task_metrics(spec)
    if directions.get(name) != "higher":
        raise ConfigError(f"invalid config value for '{key}': {name!r} is not a higher-is-better metric of "
                          f"eval task {task!r} ({sorted(directions)})")
