"""The generation loop and its entry point: propose -> synth -> train -> eval -> drift -> gate -> promote.

    python -m pipeline.loop                              # one generation, CPU profile
    python -m pipeline.loop model=tiny:qwen3 experiment=smoke generations=2   # up to gen 2
    make generation ARGS="model=tiny:qwen3 experiment=smoke"
    python -m pipeline.loop --help                       # groups, keys, examples
    python -m pipeline.loop --dry-run [overrides]        # stages, budgets, estimated time; writes nothing

Gen 0 (the base model) gets only eval and drift: the baseline row. Every stage is skipped when its
manifest exists, so re-running continues a crashed generation at its unfinished stage and a finished
run re-run does nothing new. One run per lineage at a time (a lock file). The loop owns the engines
(`pipeline.lineage.runner.Engines`): one stays open across consecutive stages on the same model and is
closed before training. `run` reads top to bottom; the stages are in `pipeline.loop.table`, the
bookkeeping (ledger rows, candidates) in `pipeline.loop.candidates`, promotion in
`pipeline.loop.promote`. A sweep job (`candidate.name` set) is `pipeline.loop.sweep.job`.
"""

from __future__ import annotations

import logging
import sys

from pipeline.config import Config, ConfigError
from pipeline.engine import parallel
from pipeline.infra.io import atomic_write_json
from pipeline.infra import progress
from pipeline.lineage import GenerationDir, Lineage, LineageError
from pipeline.lineage.runner import Engines
from pipeline.loop import candidates, ledger, plan, promote
from pipeline.report import trackers, verdict
from pipeline.report.text import write_lineage_report

log = logging.getLogger(__name__)


def run(cfg: Config) -> list[dict]:
    """Bring the lineage to `cfg.generations` generations (-1: one more than it has), after the gen-0
    baseline. Idempotent: a crashed run re-run continues where it stopped; a finished one re-run
    with the same target does nothing. Returns the ledger rows."""
    from pipeline import evals
    from pipeline.engine import models

    if cfg.candidate.name:
        raise ConfigError(f"invalid config value for 'candidate.name': {cfg.candidate.name!r} makes this a sweep "
                          "job, run by pipeline.loop.sweep.job (python -m pipeline.loop -m sweep=<name>), not the loop")
    # missing data, a bad model, or an engine.tensor_parallel_size it cannot take: refused before any write
    evals.check_inputs(cfg)
    lineage = Lineage(cfg.paths.root, cfg.paths.lineage)
    parallel.plan(models.resolve(cfg.model.spec, cfg.paths.models), cfg.engine)
    with lineage.lock(), Engines.for_config(cfg, keep=True) as engines, progress.tracking() as ticker:
        ledger.repair(lineage)  # a lost or corrupt ledger is rebuilt from the manifests
        ticker.plan(plan.todo(cfg, lineage), lineage.rows())  # every stage ahead, the baseline's too, and an ETA
        candidates.baseline(cfg, lineage, engines)  # gen 0: the base model's eval and drift
        promote.repair_teacher(lineage)  # a kill between the TEACHER pointer and the statuses heals here
        candidates.refuse_pending_sweep(lineage)
        target = target_generation(cfg, lineage)
        while keep_going(cfg, lineage, target):
            mark = len(engines.events)
            gen, teacher = candidates.shared_stages(cfg, lineage, engines)  # propose, synth: once per generation
            # each candidate (the generation itself, or gen_NNN-c<k>): train, eval (+ its card), drift, gate
            cands = candidates.train_candidates(cfg, lineage, gen, teacher, engines)
            promote.apply(lineage, gen, cands, cfg.candidate.select_metric, cfg.gate.metric)  # ranked on the selection slice, gated on validation
            # what the engines did in this run of the generation (scripts/bench.py counts the starts)
            atomic_write_json(gen.path / "engines.json", {"events": [list(e) for e in engines.events[mark:]]})
            finish_generation(lineage, gen)
            trackers.publish(cfg.log.trackers, lineage)  # W&B / MLflow, when log.trackers names them
    return lineage.rows()


def target_generation(cfg: Config, lineage: Lineage) -> int:
    """The newest generation this run brings the lineage to (`generations=-1`: the next one, or the
    unfinished one a stopped run left)."""
    if cfg.generations >= 0:
        return cfg.generations
    newest = lineage.generation_rows()[-1]
    return newest["gen"] + (0 if newest.get("status") == "candidate" else 1)


def consecutive_rejections(lineage: Lineage) -> int:
    n = 0
    for r in reversed(lineage.generation_rows()):
        if r.get("status") != "rejected":
            break
        n += 1
    return n


def keep_going(cfg: Config, lineage: Lineage, target: int) -> bool:
    """Whether another generation runs: an unfinished one always; else until `target`, or until
    `gate.max_consecutive_rejections` with `gate.on_max_rejections=stop`."""
    newest = lineage.generation_rows()[-1]
    if newest.get("status") == "candidate":
        return True
    if newest["gen"] >= target:
        return False
    rejected = consecutive_rejections(lineage)
    if rejected >= cfg.gate.max_consecutive_rejections:
        if cfg.gate.on_max_rejections == "stop":
            log.warning("stopping: %d consecutive rejections (gate.max_consecutive_rejections)", rejected)
            return False
        # repropose: the teacher stays and proposes again; it sees the rejections and their
        # reasons in the history table of its prompt (pipeline.propose)
        log.warning("%d consecutive rejections: re-proposing from teacher %s", rejected, lineage.teacher().name)
    return True


def finish_generation(lineage: Lineage, gen: GenerationDir) -> None:
    """The end of a generation: its outcome in the log, the lineage report regenerated."""
    row = lineage.row(gen) or {}
    log.info("verdict: %s", verdict.of(row, lineage.path, lineage.rows()).line())  # one line, the deciding reason first
    write_report(lineage)


def objective(cfg: Config, lineage: Lineage) -> float | None:
    """What a sweeper optimises: the selection metric of the newest generation's selected candidate,
    never the gate's metric (pipeline.evals.selection); None when no choice among candidates was made."""
    newest = lineage.generation_rows()[-1]
    row = lineage.row(lineage.gen_by_name(newest["selected"])) if newest.get("selected") else newest
    return (row or {}).get("metrics", {}).get(cfg.candidate.select_metric)


def write_report(lineage: Lineage) -> None:
    """Regenerate `<lineage>/report.html`. The generation's files are already safe on disk, so a
    report that cannot be written is logged as an error (with the reason), not a failed generation."""
    try:
        path = write_lineage_report(lineage.path)
        log.info("report: %s", path)
    except (OSError, ValueError, KeyError, TypeError, LineageError) as e:
        log.error("could not write %s/report.html: %s: %s", lineage.path, type(e).__name__, e)


def main(cfg: Config) -> float | None:
    """The Hydra task of `python -m pipeline.loop`: a sweep job, or the loop with its table printed;
    returns `objective`, what a sweeper optimises (the selection side, never the gate's metric)."""
    from pipeline.loop import sweep
    from pipeline.report import text as report

    if cfg.candidate.name:
        return sweep.job(cfg)
    rows = run(cfg)
    lineage = Lineage(cfg.paths.root, cfg.paths.lineage)
    print(report.verdict_block(rows, lineage.path) + "\n\n" + report.text_view(rows))  # verdicts first, compact table
    return objective(cfg, lineage)


def cli() -> int:
    """`python -m pipeline.loop`: the config checked (and `--help`) before Hydra runs the loop."""
    from pipeline.config.compose import EXPECTED, hydra_entry, hydra_main
    from pipeline.evals import check_inputs
    from pipeline.infra import cli as front

    argv = sys.argv[1:]
    if "--dry-run" in argv and not {"-h", "--help"} & set(argv):  # the plan (pipeline.loop.plan); writes nothing
        try:
            return plan.dry_run([a for a in argv if a != "--dry-run"])
        except EXPECTED as e:
            return front.fail(e)
    return hydra_entry(lambda: hydra_main(main, job="generation"), __doc__, "pipeline.loop", inputs=check_inputs)
