"""The generation loop and its entry point: propose -> synth -> train -> eval -> drift -> gate -> promote.

    python -m pipeline.loop                              # one generation, CPU profile
    python -m pipeline.loop model=tiny:qwen3 experiment=smoke generations=2   # up to gen 2
    make generation ARGS="model=tiny:qwen3 experiment=smoke"
    python -m pipeline.loop --help                       # groups, keys, examples
    python -m pipeline.loop --dry-run [overrides]        # stages, budgets, estimated time; writes nothing

Gen 0 (the base model) gets only eval and drift: the baseline row. Every stage is skipped when its
manifest exists, so re-running continues a crashed generation at its unfinished stage and a finished
run re-run does nothing new. One run per lineage at a time (a lock file). The loop owns the engines
(`pipeline.loop.runner.Engines`): one stays open across consecutive stages on the same model and is closed
before training. The stages themselves are in `pipeline.loop.table`; candidates and sweep jobs in
`pipeline.loop.candidates`; promotion in `pipeline.loop.promote`.
"""

from __future__ import annotations

import logging
import sys

from pipeline.loop import candidates, plan, progress, promote
from pipeline.infra import logs
from pipeline.config import Config
from pipeline.engine import parallel
from pipeline.infra.io import atomic_write_json
from pipeline.loop.lineage import Lineage, LineageError
from pipeline.report import trackers
from pipeline.report.text import write_lineage_report
from pipeline.loop.runner import Engines

log = logging.getLogger(__name__)


def one_generation(cfg: Config, lineage: Lineage, engines: Engines) -> dict:
    mark = len(engines.events)
    gen, teacher = candidates.shared_stages(cfg, lineage, engines)
    cands = candidates.train_candidates(cfg, lineage, gen, teacher, engines)
    promote.apply(lineage, gen, cands, cfg.gate.metric)
    # what the engines did in this run of the generation (scripts/bench.py counts the starts)
    atomic_write_json(gen.path / "engines.json", {"events": [list(e) for e in engines.events[mark:]]})
    row = lineage.row(gen) or {}
    log.info("%s: %s (%s)", gen.name, row.get("status"), "; ".join(row.get("gate_reasons", [])))
    write_report(lineage)
    trackers.publish(cfg.log.trackers, lineage)
    return row


def write_report(lineage: Lineage) -> None:
    """Regenerate `<lineage>/report.html`. The generation's files are already safe on disk, so a
    report that cannot be written is logged as an error (with the reason), not a failed generation."""
    try:
        path = write_lineage_report(lineage.path)
        log.info("report: %s", path)
    except (OSError, ValueError, KeyError, TypeError, LineageError) as e:
        log.error("could not write %s/report.html: %s: %s", lineage.path, type(e).__name__, e)


def consecutive_rejections(lineage: Lineage) -> int:
    n = 0
    for r in reversed(lineage.generation_rows()):
        if r.get("status") != "rejected":
            break
        n += 1
    return n


def run(cfg: Config) -> list[dict]:
    """Bring the lineage to `cfg.generations` generations (-1: one more than it has), after the gen-0
    baseline. Idempotent: a crashed run re-run continues where it stopped; a finished one re-run
    with the same target does nothing. Returns the ledger rows. A sweep job (`candidate.name` set)
    instead trains one candidate of the next generation: see `candidates.run_candidate`."""
    from pipeline import evals
    from pipeline.loop import ledger
    from pipeline.engine import models

    # missing data, a bad model, or an engine.tensor_parallel_size it cannot take: refused before any write
    evals.check_inputs(cfg)
    lineage = Lineage(cfg.paths.root, cfg.paths.lineage)
    if cfg.candidate.name:
        candidates.run_candidate(cfg, lineage)
        return lineage.rows()
    parallel.plan(models.resolve(cfg.model.spec, cfg.paths.models), cfg.engine)
    with lineage.lock(), Engines.for_config(cfg, keep=True) as engines, progress.tracking() as ticker:
        ledger.repair(lineage)  # a lost or corrupt ledger is rebuilt from the manifests
        ticker.plan(plan.todo(cfg, lineage), lineage.rows())  # every stage ahead, the baseline's too, and an ETA
        candidates.prepare(cfg, lineage, engines)
        promote.repair_teacher(lineage)
        candidates.refuse_pending_sweep(lineage)
        target = cfg.generations
        if target < 0:
            newest = lineage.generation_rows()[-1]
            target = newest["gen"] + (0 if newest.get("status") == "candidate" else 1)
        while True:
            newest = lineage.generation_rows()[-1]
            if newest.get("status") != "candidate" and newest["gen"] >= target:
                break
            rejected = consecutive_rejections(lineage)
            if newest.get("status") != "candidate" and rejected >= cfg.gate.max_consecutive_rejections:
                if cfg.gate.on_max_rejections == "stop":
                    log.warning("stopping: %d consecutive rejections (gate.max_consecutive_rejections)", rejected)
                    break
                # repropose: the teacher stays and proposes again; it sees the rejections and their
                # reasons in the history table of its prompt (pipeline.propose)
                log.warning("%d consecutive rejections: re-proposing from teacher %s", rejected, lineage.teacher().name)
            one_generation(cfg, lineage, engines)
    return lineage.rows()


def _hydra_main() -> int:
    import hydra
    from omegaconf import DictConfig

    from pipeline.infra import cli
    from pipeline.config.compose import EXPECTED, config_path, load_config
    from pipeline.config import register

    register()
    status = {"code": 0}

    @hydra.main(config_path=config_path(), config_name="config", version_base=None)
    def main(dcfg: DictConfig) -> float | None:
        from pipeline.report import text as report
        from pipeline.loop import sweep

        try:
            cfg = load_config(dcfg)
            logs.configure(cfg.log.level)
            if cfg.candidate.name:
                return sweep.job(cfg)
            rows = run(cfg)
        except EXPECTED as e:
            status["code"] = cli.fail(e)
            return None
        print(report.render(rows, "table"))
        newest = Lineage(cfg.paths.root, cfg.paths.lineage).generation_rows()[-1]
        return newest.get("metrics", {}).get(cfg.gate.metric)  # what a sweeper optimises

    main()
    return status["code"]


def cli() -> int:
    """`python -m pipeline.loop`: the config checked (and `--help`) before Hydra runs the loop."""
    from pipeline.config.compose import EXPECTED, hydra_entry
    from pipeline.evals import check_inputs
    from pipeline.infra import cli as front

    argv = sys.argv[1:]
    if "--dry-run" in argv and not {"-h", "--help"} & set(argv):  # the plan (pipeline.loop.plan); writes nothing
        try:
            return plan.dry_run([a for a in argv if a != "--dry-run"])
        except EXPECTED as e:
            return front.fail(e)
    return hydra_entry(_hydra_main, __doc__, "pipeline.loop", inputs=check_inputs)
