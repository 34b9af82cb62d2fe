"""How far a run is and how long it has left: one count over every stage the run will do (the gen-0
baseline included), with an ETA from the measured stage times of the lineage's earlier generations
(their manifests' `seconds`, copied into the ledger rows).

    with progress.tracking() as ticker:                      # pipeline.loop.generation.run
        ticker.plan(plan.todo(cfg, lineage), lineage.rows())  # the stages ahead, priced
        ...                                                   # run_stage: started / finished

The bar is drawn only on a terminal (`pipeline.infra.logs.bars_wanted`); the ETA is also in each stage's
`running` log line, so a log file has it without control characters. The dry run
(`pipeline.loop.plan`) prices its plan with the same `stage_seconds`. This module imports no stage, so
the runner can use it.
"""

from __future__ import annotations

import logging
import statistics
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Iterator

from tqdm import tqdm

from pipeline.infra import logs

log = logging.getLogger(__name__)
BASELINE = "baseline"  # gen 0's eval and drift take their own times (the base model, the full suites)


def stage_seconds(rows: list[dict]) -> dict[tuple[str, str], float]:
    """(kind, stage) -> the median measured seconds, kind `baseline` for gen 0 and `generation` for
    the others; a stage that ran only in the baseline also prices a generation's, and back."""
    seen: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        kind = BASELINE if r.get("gen") == 0 else "generation"
        for stage, s in (r.get("seconds") or {}).items():
            if isinstance(s, (int, float)):
                seen.setdefault((kind, stage), []).append(float(s))
    out = {k: statistics.median(v) for k, v in seen.items()}
    for (kind, stage), s in list(out.items()):
        other = "generation" if kind == BASELINE else BASELINE
        out.setdefault((other, stage), s)
    return out


def kind(gen: str) -> str:
    """Which of `stage_seconds`' prices a stage of generation `gen` takes."""
    return BASELINE if gen == "gen_000" else "generation"


def fmt_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


@dataclass
class Progress:
    """The stages a run still has to do and what each took before; `finished` strikes one off."""

    todo: list[tuple[str, str]]  # (generation, stage)
    estimates: dict[tuple[str, str], float]
    done: int = 0
    bar: tqdm | None = field(default=None, repr=False)

    def plan(self, todo: list[tuple[str, str]], rows: list[dict]) -> None:
        """The stages ahead ((generation, stage), `pipeline.loop.plan.todo`), priced by the ledger `rows`;
        a bar on a terminal."""
        self.todo, self.estimates = list(todo), stage_seconds(rows)
        if logs.bars_wanted():
            self.bar = tqdm(total=len(todo), desc="run", unit="stage",
                            bar_format="{desc}: {n}/{total} stages |{bar:20}| {elapsed} {postfix}")
        log.info("this run: %d stage(s), %s", len(todo), self.describe().split(", ", 1)[-1])

    def eta(self) -> tuple[float, list[str]]:
        """(seconds the remaining stages took before, the stages never measured in this lineage)."""
        priced = [(stage, self.estimates.get((kind(gen), stage))) for gen, stage in self.todo]
        known = [s for _, s in priced if s is not None]
        unknown = sorted({stage for stage, s in priced if s is None})
        return sum(known), unknown

    def describe(self) -> str:
        if not self.todo:
            return f"stage {self.done}/{self.done}"
        s, unknown = self.eta()
        eta = f"ETA {fmt_seconds(s)}" if not unknown else (
            f"ETA > {fmt_seconds(s)} (no earlier time for {', '.join(unknown)})" if s else "no ETA yet (first generation)")
        return f"stage {self.done + 1}/{self.done + len(self.todo)}, {eta}"

    def started(self, gen: str, stage: str) -> str:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{gen}/{stage} {self.describe().split(', ', 1)[-1]}")
        return self.describe()

    def finished(self, gen: str, stage: str, seconds: float | None = None) -> None:
        """`stage` of `gen` is done; `seconds` (when it ran) prices the stages still ahead that no
        earlier generation priced (a first generation's eval and drift by the baseline's)."""
        if seconds is not None:
            for k in (kind(gen), BASELINE if kind(gen) != BASELINE else "generation"):
                self.estimates.setdefault((k, stage), seconds)
        # a candidate `gen_NNN-c<k>` strikes off one of its generation's planned copies; a stage that
        # was done before the run started (skipped) was never planned
        t = (gen.split("-")[0], stage)
        if t in self.todo:
            self.todo.remove(t)
            self.done += 1
        if self.bar is not None:
            self.bar.total = self.done + len(self.todo)
            self.bar.update(self.done - self.bar.n)


_current: ContextVar[Progress | None] = ContextVar("progress", default=None)


@contextmanager
def tracking() -> Iterator[Progress]:
    """The run's progress for `run_stage`, for the `with` block; `plan` gives it the stages ahead."""
    p = Progress([], {})
    token = _current.set(p)
    t0 = time.time()
    try:
        yield p
    finally:
        _current.reset(token)
        if p.bar is not None:
            p.bar.close()
        log.info("run: %d stage(s) in %s", p.done, fmt_seconds(time.time() - t0))


def current() -> Progress | None:
    """The run's progress, or None outside `tracking` (a stage run on its own, a sweep job)."""
    return _current.get()
