"""A lineage on disk: generation dirs, stage manifests, the ledger, the teacher pointer, the lock.
With `pipeline.lineage.runner` (the stage contract: StageContext, StageResult, run_stage, manifests)
this package sits below every stage and the loop: the stages write into a lineage, the loop runs them.

    checkpoints/<lineage>/
      lineage.json     schema version, base model spec and its resolved dir
      ledger.sqlite    one row per generation (or sweep candidate); safe under concurrent writers
      TEACHER          name of the current teacher generation, e.g. gen_001
      LOCK             the run holding the lineage: host, pid, lease; its mtime is the heartbeat
      gen_000/ eval/ drift/ ...
      gen_001/ propose/ synth/ train/ model/ eval/ drift/ gate.json

A stage is finished exactly when `<stage>/manifest.json` exists; it is written last, atomically.
"""

from __future__ import annotations

import fcntl
import json
import re
import sqlite3
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

from pipeline.infra import lease
from pipeline.infra.cli import InputError
from pipeline.infra.io import atomic_write_json, atomic_write_text, read_json

SCHEMA_VERSION = 1
STATUSES = ("candidate", "promoted", "rejected", "failed")
LEDGER = "ledger.sqlite"


class LineageError(InputError, RuntimeError):
    pass


class GenerationDir:
    def __init__(self, lineage: "Lineage", index: int, name: str | None = None) -> None:
        self.lineage = lineage
        self.index = index
        self.name = name or f"gen_{index:03d}"
        self.path = lineage.path / self.name

    def __repr__(self) -> str:
        return f"GenerationDir({self.path})"

    def stage_dir(self, stage: str) -> Path:
        d = self.path / stage
        d.mkdir(parents=True, exist_ok=True)
        return d

    def manifest_path(self, stage: str) -> Path:
        return self.path / stage / "manifest.json"

    def is_done(self, stage: str) -> bool:
        return self.manifest_path(stage).exists()

    @property
    def model_dir(self) -> Path:
        """This generation's model: the base for gen 0, the trained (merged) model otherwise."""
        if self.index == 0:
            return Path(self.lineage.meta()["base_model_dir"])
        return self.path / "model"


def is_generation_row(row: dict) -> bool:
    """A generation's own ledger row (gen_NNN), not one of its candidates' (gen_NNN-<name>)."""
    return row.get("name") == f"gen_{row['gen']:03d}"


def is_promoted(row: dict) -> bool:
    """A generation the gate promoted. A K-candidate or sweep generation's candidate row carries the
    status itself (`promoted` only for the selected one), and so does the generation's own row."""
    return row.get("status") == "promoted"


class Lineage:
    def __init__(self, root: str | Path, name: str) -> None:
        self.path = (Path(root) / name).resolve()
        self.name = name

    # -- metadata -------------------------------------------------------------------------------
    def meta(self) -> dict:
        p = self.path / "lineage.json"
        if not p.exists():
            raise LineageError(f"{self.path} is not a lineage (no lineage.json)")
        meta = read_json(p)
        v = meta.get("schema_version")
        if not isinstance(v, int) or v > SCHEMA_VERSION:
            raise LineageError(
                f"{self.path} was written by lineage schema version {v!r}; this code reads up to "
                f"{SCHEMA_VERSION}. Upgrade the pipeline or use another paths.lineage"
            )
        return meta

    def init(self, base_spec: str, base_model_dir: Path) -> dict:
        """Create the lineage, or check that an existing one has the same base model."""
        p = self.path / "lineage.json"
        if p.exists():
            meta = self.meta()
            if meta["base_model_spec"] != base_spec:
                raise LineageError(
                    f"lineage {self.path} was started from model {meta['base_model_spec']!r}, not {base_spec!r}; "
                    f"choose another paths.lineage for a different base model"
                )
            return meta
        meta = {"schema_version": SCHEMA_VERSION, "name": self.name, "base_model_spec": base_spec,
                "base_model_dir": str(base_model_dir), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_json(p, meta)
        return meta

    def gen(self, index: int, name: str | None = None) -> GenerationDir:
        return GenerationDir(self, index, name)

    def gen_by_name(self, name: str) -> GenerationDir:
        """`gen_003` or a candidate of it such as `gen_003-c1` / `gen_003-lr3e4`."""
        m = re.fullmatch(r"gen_(\d+)(-[A-Za-z0-9_-]+)?", name.strip())
        if not m:
            raise LineageError(f"{name!r} is not a generation name (gen_NNN or gen_NNN-<candidate>)")
        return self.gen(int(m.group(1)), name.strip())

    # -- teacher pointer ----------------------------------------------------------------------------
    def teacher(self) -> GenerationDir:
        p = self.path / "TEACHER"
        return self.gen_by_name(p.read_text() if p.exists() else "gen_000")

    def set_teacher(self, gen: GenerationDir) -> None:
        atomic_write_text(self.path / "TEACHER", gen.name + "\n")

    # -- ledger -------------------------------------------------------------------------------------
    def ledger_error(self, problem: str) -> LineageError:
        """A ledger that cannot be read: the message says how to rebuild it from the manifests."""
        return LineageError(f"{self.path / LEDGER} {problem}; rebuild it from the stage manifests with "
                            f"`python -m pipeline.loop.ledger --rebuild {self.path}` (a run of the lineage also rebuilds it)")

    def new_ledger(self) -> None:
        """An empty ledger where there is none (pipeline.loop.ledger rebuilds into it)."""
        with self._db():
            pass

    def ledger_lost(self) -> bool:
        """No ledger, but a finished eval (every generation's, gen 0's first): it was deleted, not never
        written."""
        return not (self.path / LEDGER).exists() and any(self.path.glob("gen_*/eval/manifest.json"))

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path / LEDGER, timeout=60, isolation_level=None)
        try:
            try:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute(
                    "CREATE TABLE IF NOT EXISTS generations (name TEXT PRIMARY KEY, gen INTEGER NOT NULL, "
                    "data TEXT NOT NULL, updated REAL NOT NULL)"
                )
            except sqlite3.DatabaseError as e:  # not a database (overwritten, truncated)
                raise self.ledger_error(f"is not a readable ledger ({e})") from None
            yield con
        finally:
            con.close()

    def record(self, gen: GenerationDir, **fields: Any) -> dict:
        """Merge `fields` into the generation's ledger row (dict fields merge one level deep)."""
        if "status" in fields and fields["status"] not in STATUSES:
            raise LineageError(f"unknown status {fields['status']!r}")
        with self._db() as con:
            con.execute("BEGIN IMMEDIATE")  # serialises read-modify-write across processes
            row = con.execute("SELECT data FROM generations WHERE name=?", (gen.name,)).fetchone()
            data = json.loads(row[0]) if row else {"name": gen.name, "gen": gen.index}
            for k, v in fields.items():
                data[k] = {**data[k], **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
            con.execute(
                "INSERT INTO generations(name, gen, data, updated) VALUES(?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET data=excluded.data, updated=excluded.updated",
                (gen.name, gen.index, json.dumps(data, default=str), time.time()),
            )
            con.execute("COMMIT")
        return data

    def rows(self) -> list[dict]:
        if not (self.path / LEDGER).exists():
            if self.ledger_lost():
                raise self.ledger_error("is missing but stage manifests exist")
            return []
        with self._db() as con:
            try:
                return [json.loads(r[0]) for r in con.execute("SELECT data FROM generations ORDER BY gen, name")]
            except (sqlite3.DatabaseError, ValueError) as e:
                raise self.ledger_error(f"is not a readable ledger ({e})") from None

    def generation_rows(self) -> list[dict]:
        """Ledger rows of whole generations (gen_NNN), without their candidates (gen_NNN-<name>)."""
        return [r for r in self.rows() if is_generation_row(r)]

    def row(self, gen: GenerationDir) -> dict | None:
        return next((r for r in self.rows() if r["name"] == gen.name), None)

    def teacher_line(self, teacher: str) -> list[dict]:
        """The ledger rows of `teacher` and of its teachers back to gen 0, newest first, following each
        row's `teacher` (else `parent`) link. The walk stops at a name without a row (or a loop), so a
        broken link shortens the line and never borrows a generation outside it. Statuses are the
        caller's to judge (`is_promoted`)."""
        by_name = {r["name"]: r for r in self.rows()}
        out: list[dict] = []
        name: str | None = teacher
        while name and name in by_name and all(r["name"] != name for r in out):
            out.append(by_name[name])
            name = by_name[name].get("teacher") or by_name[name].get("parent")
        return out

    # -- locks --------------------------------------------------------------------------------------
    @contextmanager
    def shared_lock(self) -> Iterator[None]:
        """Blocking lock for sweep jobs: they take turns on what they share (baseline, propose, synth)
        and then train their own candidates side by side."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".shared.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @contextmanager
    def lock(self, max_wait_s: float | None = None) -> Iterator[None]:
        """Refuse a second run on this lineage, from any host sharing the filesystem (pipeline.infra.lease:
        LOCK is linked into place whole and kept alive by a heartbeat). A stale lock is taken over; one
        whose holder stopped beating is waited out (at most `max_wait_s`, default the lease)."""
        self.path.mkdir(parents=True, exist_ok=True)
        p = self.path / "LOCK"
        with ExitStack() as held:
            try:
                held.enter_context(lease.lease_lock(p, max_wait_s=max_wait_s))
            except lease.LeaseHeld as e:
                other = e.record or {}
                raise LineageError(
                    f"lineage {self.path} is in use by pid {other.get('pid')} on {other.get('host')} "
                    f"({e.judgement.why}; lock file {p}); wait for it, or delete the lock if that process is gone"
                ) from None
            yield
