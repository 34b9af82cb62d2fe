"""The loop's bookkeeping: which generation runs next, its ledger row, what its candidates share, and
each candidate's stages.

A generation's `propose` and `synth` stages run once and are shared; each candidate successor gets
its own `train`, `eval`, `drift` and `gate`:
- one proposal: the generation dir itself is the single candidate;
- `propose.candidates=K>1`: `gen_NNN-c<k>` for each of the teacher's K proposals (the loop's own);
- a sweep job (`candidate.name` set, pipeline.loop.sweep): `gen_NNN-<name>`, trained with the job's
  `candidate.hparams` laid over the teacher's proposal; `pipeline.loop.promote --sweep` selects among
  the jobs afterwards.
A candidate shares its generation's data through a `synth` link and gets its own accepted proposal
(its `propose` stage, run like every stage by `run_stage`). Every row of the ledger starts in
`start_row`; stages add to it (pipeline.lineage.runner.record), promotion gives its status.
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
from pipeline.lineage import GenerationDir, Lineage, LineageError
from pipeline.lineage.runner import (Engines, Stage, StageContext, StageResult, config_hash, git_commit, opening_row,
                                  read_manifest, run_stage, versions)
from pipeline.evals import cards
from pipeline.train import methods, mixture as train_mixture
from pipeline.train.methods.base import CHAT

log = logging.getLogger(__name__)


def context(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir, stage: str,
            engines: Engines | None) -> StageContext:
    return StageContext(cfg=cfg, lineage=lineage, gen=gen, teacher=teacher, stage=stage, engines=engines)


def start_row(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir | None) -> None:
    """The one writer of a generation's (or a candidate's) first ledger row, when it starts: its
    teacher, status (`promoted` for gen 0, else `candidate`), and what made it (config hash, package
    versions, commit; the profile after gen 0). A row that exists is left alone (a resumed run)."""
    if lineage.row(gen) is not None:
        return
    extra = {} if teacher is None else {"profile": cfg.profile}
    lineage.record(gen, **opening_row(gen, teacher.name if teacher else None, config_hash(cfg), versions(),
                                      git_commit()), **extra)


def baseline(cfg: Config, lineage: Lineage, engines: Engines | None = None) -> GenerationDir:
    """Create (or check) the lineage for the configured base model, then gen 0, the base model: its
    ledger row and its eval and drift stages (the baseline row)."""
    lineage.init(cfg.model.spec, models.resolve(cfg.model.spec, cfg.paths.models))
    gen0 = lineage.gen(0)
    start_row(cfg, lineage, gen0, None)
    for stage in stages.BASELINE:
        run_stage(stage, context(cfg, lineage, gen0, gen0, stage.name, engines))
    return gen0


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


def record_proposal(lineage: Lineage, gen: GenerationDir, result: StageResult) -> None:
    """The report shows what a generation (or candidate) was trained with and where it came from."""
    lineage.record(gen, hparams=result.info.get("hparams"), hparams_source=result.info.get("source"))


def adopt_proposal(ctx: StageContext, shared: GenerationDir, i: int) -> StageResult:
    """A candidate's `propose` stage: candidate i of the teacher's list in the generation `shared`, with
    the job's `candidate.hparams` overrides laid on top; its data is the generation's (a `synth` link)."""
    cand = ctx.gen
    accepted = proposal.read(shared)
    pick = accepted.candidate(i)
    overrides = {k: v for k, v in asdict(ctx.cfg.candidate.hparams).items() if v is not None}
    hparams = {**pick["hparams"], **overrides}
    source = "sweep" if overrides else pick.get("source", accepted.source)
    link = cand.path / "synth"
    if not link.is_symlink():
        link.symlink_to(Path("..") / shared.name / "synth", target_is_directory=True)
    proposal.write(cand, {**pick, "hparams": hparams, "source": source, "overrides": overrides, "from": shared.name})
    return StageResult(info={"hparams": hparams, "source": source, "from": shared.name})


def prepare_candidate(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir,
                      cand: GenerationDir, i: int, engines: Engines | None = None) -> None:
    """A candidate other than the generation itself: its ledger row and its own accepted proposal."""
    start_row(cfg, lineage, cand, teacher)
    stage = Stage(stages.PROPOSE.name, lambda ctx: adopt_proposal(ctx, gen, i))
    record_proposal(lineage, cand, run_stage(stage, context(cfg, lineage, cand, teacher, stage.name, engines)))


def shared_stages(cfg: Config, lineage: Lineage, engines: Engines | None = None) -> tuple[GenerationDir, GenerationDir]:
    """Start or resume the next generation and run what its candidates share: propose and synth."""
    gen, teacher = next_generation(lineage)
    start_row(cfg, lineage, gen, teacher)
    for stage in stages.SHARED:
        result = run_stage(stage, context(cfg, lineage, gen, teacher, stage.name, engines))
        if stage is stages.PROPOSE:
            record_proposal(lineage, gen, result)
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


def update_card(cand: GenerationDir) -> None:
    """The candidate's eval results into its model card's `model-index`. The loop's step, not the eval
    stage's: a stage writes only its own directory, and the model dir is train's. Rewriting the same
    results is harmless, so a run killed between the eval manifest and the card heals on resume."""
    summary = cand.path / stages.EVAL.name / "summary.json"
    if cand.model_dir.parent == cand.path and summary.exists():
        cards.add_results(cand.model_dir, summary)


def train_candidate(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir, cand: GenerationDir,
                    i: int, engines: Engines | None = None) -> None:
    """One candidate of generation `gen`: its own proposal (unless it is `gen` itself), then train, eval
    (and its model card), drift and gate, unless its data ends it before training."""
    if cand.name != gen.name:
        prepare_candidate(cfg, lineage, gen, teacher, cand, i, engines)
    if rejected_before_training(cfg, lineage, cand, teacher, engines):
        return
    for stage in stages.CANDIDATE:  # the run's one count and ETA: pipeline.infra.progress
        run_stage(stage, context(cfg, lineage, cand, teacher, stage.name, engines))
        if stage is stages.EVAL:
            update_card(cand)


def train_candidates(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir,
                     engines: Engines | None = None) -> list[GenerationDir]:
    """The loop's candidates of `gen` (`loop_candidates`), each through `train_candidate`."""
    cands = loop_candidates(lineage, gen)
    for i, cand in enumerate(cands):
        train_candidate(cfg, lineage, gen, teacher, cand, i, engines)
    return cands
