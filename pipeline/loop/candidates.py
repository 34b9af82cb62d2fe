"""Candidate bookkeeping: which generation runs next, what its candidates share, and sweep jobs.

A generation's `propose` and `synth` stages run once and are shared; each candidate successor gets
its own `train`, `eval`, `drift` and `gate`:
- one proposal: the generation dir itself is the single candidate;
- `propose.candidates=K>1`: `gen_NNN-c<k>` for each of the teacher's K proposals (the loop's own);
- a sweep job (`candidate.name` set): `gen_NNN-<name>`, trained with the job's `candidate.hparams`
  laid over the teacher's proposal; `pipeline.loop.promote --sweep` selects among the jobs afterwards.
A candidate shares its generation's data through a `synth` link and gets its own accepted proposal.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from pipeline.engine import models
from pipeline.propose import accepted as proposal
from pipeline.loop import table as stages
from pipeline.config import Config
from pipeline.gate.stage import refuse_before_training
from pipeline.loop.lineage import GenerationDir, Lineage, LineageError
from pipeline.loop.runner import (Engines, Stage, StageContext, StageResult, config_hash, git_commit, new_manifest,
                            read_manifest, run_stage, versions, write_manifest)
from pipeline.train import methods, mixture as train_mixture
from pipeline.train.methods.base import CHAT

log = logging.getLogger(__name__)


def context(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir, stage: str,
            engines: Engines | None) -> StageContext:
    return StageContext(cfg=cfg, lineage=lineage, gen=gen, teacher=teacher, stage=stage, engines=engines)


def baseline(cfg: Config, lineage: Lineage, engines: Engines | None = None) -> GenerationDir:
    """Gen 0, the base model: its ledger row and its eval and drift stages (the baseline row)."""
    gen0 = lineage.gen(0)
    if lineage.row(gen0) is None:
        lineage.record(gen0, parent=None, teacher=None, status="promoted", config_hash=config_hash(cfg),
                       model=str(gen0.model_dir), versions=versions(), git_commit=git_commit())
    for stage in stages.BASELINE:
        run_stage(stage, context(cfg, lineage, gen0, gen0, stage.name, engines))
    return gen0


def prepare(cfg: Config, lineage: Lineage, engines: Engines | None = None) -> None:
    """Create (or check) the lineage for the configured base model and run the gen-0 baseline."""
    base_dir = models.resolve(cfg.model.spec, cfg.paths.models)
    lineage.init(cfg.model.spec, base_dir)
    baseline(cfg, lineage, engines)


def pending_generation(lineage: Lineage) -> dict | None:
    """The ledger row of the generation a stopped run left unfinished (status `candidate`), if any."""
    return next((r for r in lineage.generation_rows() if r["gen"] > 0 and r.get("status") == "candidate"), None)


def next_generation(lineage: Lineage) -> tuple[GenerationDir, GenerationDir]:
    """The unfinished generation to resume, or a new one after the newest."""
    pending = pending_generation(lineage)
    if pending:
        return lineage.gen(pending["gen"]), lineage.gen_by_name(pending["teacher"])
    return lineage.gen(lineage.generation_rows()[-1]["gen"] + 1), lineage.teacher()


def loop_candidates(lineage: Lineage, gen: GenerationDir) -> list[GenerationDir]:
    """The successor(s) the loop trains itself: the generation dir for one proposal, `gen_NNN-c<k>`
    for each of the teacher's `propose.candidates=K>1` proposals."""
    k = proposal.read(gen).n_candidates
    if k <= 1:
        return [gen]
    return [lineage.gen_by_name(f"{gen.name}-c{i}") for i in range(k)]


def candidate_dirs(cfg: Config, lineage: Lineage, gen: GenerationDir) -> list[GenerationDir]:
    """Where the successor(s) get trained: the loop's own (`loop_candidates`), or `gen_NNN-<name>`
    for a sweep job."""
    if cfg.candidate.name:
        return [lineage.gen_by_name(f"{gen.name}-{cfg.candidate.name}")]
    return loop_candidates(lineage, gen)


def refuse_pending_sweep(lineage: Lineage) -> None:
    """A generation whose candidates came from a sweep is finished by `pipeline.loop.promote --sweep`,
    not resumed by the loop as a single candidate."""
    pending = pending_generation(lineage)
    if not pending:
        return
    gen = lineage.gen(pending["gen"])
    recorded = [r["name"] for r in lineage.rows() if r["name"].startswith(f"{gen.name}-")]
    own = {c.name for c in loop_candidates(lineage, gen)} if recorded else set()
    jobs = [n for n in recorded if n not in own]
    if jobs:
        raise LineageError(
            f"{gen.name} is a sweep generation ({', '.join(jobs)}) waiting for its promotion: run "
            f"`python -m pipeline.loop.promote --sweep {lineage.path / 'sweeps'}/<time>` (or finish the sweep) first")


def prepare_candidate(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir,
                      cand: GenerationDir, i: int) -> None:
    """A candidate shares its generation's data (a `synth` link) and gets its own accepted proposal:
    candidate i of the teacher's list, with the job's `candidate.hparams` overrides laid on top."""
    if cand.is_done("propose"):
        return
    accepted = proposal.read(gen)
    pick = accepted.candidate(i)
    overrides = {k: v for k, v in asdict(cfg.candidate.hparams).items() if v is not None}
    hparams = {**pick["hparams"], **overrides}
    source = "sweep" if overrides else pick.get("source", accepted.source)
    link = cand.path / "synth"
    cand.path.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(Path("..") / gen.name / "synth", target_is_directory=True)
    cand.stage_dir("propose")
    proposal.write(cand, {**pick, "hparams": hparams, "source": source, "overrides": overrides, "from": gen.name})
    result = StageResult(info={"hparams": hparams, "source": source, "from": gen.name})
    write_manifest(cand, new_manifest(cfg, "propose", teacher, result, 0.0))
    lineage.record(cand, parent=teacher.name, teacher=teacher.name, status="candidate", profile=cfg.profile,
                   hparams=hparams, hparams_source=source, config_hash=config_hash(cfg))


def shared_stages(cfg: Config, lineage: Lineage, engines: Engines | None = None) -> tuple[GenerationDir, GenerationDir]:
    """Start or resume the next generation and run what its candidates share: propose and synth."""
    gen, teacher = next_generation(lineage)
    if lineage.row(gen) is None:
        lineage.record(gen, parent=teacher.name, teacher=teacher.name, status="candidate", profile=cfg.profile,
                       config_hash=config_hash(cfg), versions=versions(), git_commit=git_commit())
    for stage in stages.SHARED:
        result = run_stage(stage, context(cfg, lineage, gen, teacher, stage.name, engines))
        if stage is stages.PROPOSE:  # the report shows what was trained with and where it came from
            lineage.record(gen, hparams=result.info.get("hparams"), hparams_source=result.info.get("source"))
    return gen, teacher


def rejected_before_training(cfg: Config, lineage: Lineage, cand: GenerationDir, teacher: GenerationDir,
                             engines: Engines | None = None) -> bool:
    """Whether the candidate ends before training: its chat mixture (drawn, not written) has no
    trustworthy synthetic row left by the label guard (`gate.min_verifier_precision`). Its gate stage
    then records the rejection (decision.json, manifest, ledger) and no train directory is made; a
    resumed run finds that gate manifest and skips the candidate's other stages again."""
    if cand.is_done("gate"):
        return bool(read_manifest(cand, "gate").info.get("before_training"))
    if cand.is_done("train") or not any(m.data == CHAT for m in methods.chain(cfg)):
        return False
    drawn = train_mixture.draw(cfg, lineage, cand, teacher, proposal.read(cand).typed_hparams())
    if drawn.refusal is None:
        return False
    refuse = Stage(stages.GATE.name, lambda ctx: refuse_before_training(ctx, drawn.info))
    run_stage(refuse, context(cfg, lineage, cand, teacher, refuse.name, engines))
    return True


def train_candidates(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir,
                     engines: Engines | None = None) -> list[GenerationDir]:
    cands = candidate_dirs(cfg, lineage, gen)
    for i, cand in enumerate(cands):
        if cand.name != gen.name:
            prepare_candidate(cfg, lineage, gen, teacher, cand, i)
        if rejected_before_training(cfg, lineage, cand, teacher, engines):
            continue
        for stage in stages.CANDIDATE:  # the run's one bar and ETA: pipeline.loop.progress
            run_stage(stage, context(cfg, lineage, cand, teacher, stage.name, engines))
    return cands


def run_candidate(cfg: Config, lineage: Lineage) -> dict:
    """One sweep job: join (or start) the next generation, share its propose/synth with the other
    jobs (serialised by a lock), then train, evaluate, drift-check and gate only this candidate."""
    with Engines.for_config(cfg, keep=True) as engines:
        with lineage.shared_lock():
            prepare(cfg, lineage, engines)
            gen, teacher = shared_stages(cfg, lineage, engines)
        engines.close()  # the lock is gone: the other jobs need the accelerator, not a sleeping engine
        cand = train_candidates(cfg, lineage, gen, teacher, engines)[0]
    return {"lineage_root": str(lineage.path.parent), "lineage": lineage.name, "generation": gen.name,
            "candidate": cand.name, "metric": cfg.gate.metric,
            "value": read_manifest(cand, "eval").metrics.get(cfg.gate.metric) if cand.is_done("eval") else None,
            "gate": read_manifest(cand, "gate").info["status"]}
