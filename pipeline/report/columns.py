"""What a report column means and which way is better, read from the registries that declare it.

    from pipeline.report.columns import describe
    describe("gsm8k_test.accuracy_flexible")  # ("higher", "gsm8k test split, chat protocol: the last number is right")
    describe("drift.refusal_harmful")         # ("higher", "probe suite safety: harmful requests (must be refused) ...")

Eval metrics: the benchmark registry (`Metric.direction`, `Metric.description`) through the task's
name; probe metrics: the suite registry (direction) and the first line of the module declaring the
suite; the drift stage's own metrics: `pipeline.drift.metrics` (direction, and a `description` where declared);
anything else (synthesis, training, hyperparameters, wall time) has no better side here. The text
report's `--long` view prints the direction; the HTML table shows both on hover.
"""

from __future__ import annotations

import sys

from pipeline import probes
from pipeline.drift import metrics as drift_metrics
from pipeline.evals import parse_task_name


def _suite_doc(suite) -> str:
    """The first line of the docstring of the module that declares `suite` (its `SUITE`), if any."""
    for mod in list(sys.modules.values()):
        if getattr(mod, "SUITE", None) is suite and mod.__doc__:
            first = " ".join(mod.__doc__.strip().split("\n\n")[0].split())  # its first paragraph
            return first.split(":", 1)[1].strip() if first.lower().startswith("probe suite") and ":" in first else first
    return ""


def describe(key: str) -> tuple[str | None, str]:
    """(direction: higher | lower | None, meaning) of a report column."""
    if key.startswith("drift."):
        for s in probes.SUITES:
            for m in s.all_metrics():
                if m.key == key:
                    judge = " (a judge model's verdict)" if s.judge and m in s.judge.metrics else ""
                    return m.direction, f"probe suite {s.name}{judge}: {_suite_doc(s)}".rstrip(": ")
        m = drift_metrics.find(key)
        if m is not None:
            what = getattr(m, "description", "") or f"the drift stage's own metric {m.key}"
            return m.direction, what
        return None, ""
    task, _, name = key.partition(".")
    parsed = parse_task_name(task) if name else None
    if parsed is None:
        return None, ""
    bench, split, protocol = parsed
    where = f"{bench.name} {split} split, {protocol} protocol"
    for m in bench.metrics:
        if m.matches(name):
            return m.direction, f"{where}: {m.description}" if m.description else where
    return None, where


def tooltip(key: str) -> str:
    """`higher is better. <meaning>` (or the meaning alone)."""
    direction, meaning = describe(key)
    head = f"{direction} is better" if direction else ""
    return ". ".join(p for p in (head, meaning) if p)
