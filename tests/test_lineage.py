"""Lineage bookkeeping: manifests, ledger upserts under concurrency, teacher pointer, lock, schema guard."""

from __future__ import annotations

import json
import multiprocessing as mp
import os

import pytest

from pipeline.infra.io import JsonlError, append_jsonl, atomic_write_json, read_jsonl, read_jsonl_tolerant
from pipeline.lineage import SCHEMA_VERSION, Lineage, LineageError
from pipeline.lineage.runner import Manifest, StageResult, read_manifest, write_manifest


def make(tmp_path) -> Lineage:
    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    return lin


def test_init_is_idempotent_and_guards_base_model(tmp_path):
    lin = make(tmp_path)
    assert lin.init("tiny:qwen3", tmp_path / "base")["base_model_spec"] == "tiny:qwen3"
    with pytest.raises(LineageError, match="was started from model 'tiny:qwen3'"):
        lin.init("tiny:llama", tmp_path / "other")


def test_newer_schema_is_refused(tmp_path):
    lin = make(tmp_path)
    meta = json.loads((lin.path / "lineage.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (lin.path / "lineage.json").write_text(json.dumps(meta))
    with pytest.raises(LineageError, match="schema version"):
        lin.meta()


def test_ledger_merges_fields(tmp_path):
    lin = make(tmp_path)
    g = lin.gen(1)
    lin.record(g, status="candidate", metrics={"a": 1.0}, seconds={"synth": 3})
    lin.record(g, metrics={"b": 2.0}, seconds={"train": 4})
    row = lin.row(g)
    assert row["metrics"] == {"a": 1.0, "b": 2.0} and row["seconds"] == {"synth": 3, "train": 4}
    assert len(lin.rows()) == 1
    with pytest.raises(LineageError, match="unknown status"):
        lin.record(g, status="maybe")


def _writer(path, i):
    lin = Lineage(path.parent, path.name)
    for j in range(20):
        lin.record(lin.gen(1), metrics={f"w{i}_{j}": j})


def test_ledger_is_safe_under_concurrent_writers(tmp_path):
    lin = make(tmp_path)
    procs = [mp.get_context("fork").Process(target=_writer, args=(lin.path, i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert len(lin.row(lin.gen(1))["metrics"]) == 80  # no lost update


def test_teacher_pointer(tmp_path):
    lin = make(tmp_path)
    assert lin.teacher().name == "gen_000"
    lin.set_teacher(lin.gen(2))
    assert lin.teacher().index == 2


def test_manifest_marks_done(tmp_path):
    g = make(tmp_path).gen(1)
    assert not g.is_done("eval")
    write_manifest(g, Manifest("eval", StageResult()))
    assert g.is_done("eval") and read_manifest(g, "eval").stage == "eval"


def test_lock_refuses_second_run_and_recovers_stale(tmp_path):
    lin = make(tmp_path)
    with lin.lock():
        with pytest.raises(LineageError, match="in use by pid"):
            with lin.lock():
                pass
    assert not (lin.path / "LOCK").exists()
    # a lock left by a dead process is taken over
    dead = mp.get_context("fork").Process(target=lambda: None)
    dead.start()
    dead.join()
    (lin.path / "LOCK").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    with lin.lock():
        assert json.loads((lin.path / "LOCK").read_text())["pid"] == os.getpid()


def test_jsonl_errors_name_the_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(JsonlError, match=r"x.jsonl:2"):
        read_jsonl(p)
    p.write_bytes(b'{"a": 1}\n\xff\xfe\n')
    with pytest.raises(JsonlError, match="UTF-8"):
        read_jsonl(p)


def test_append_log_tolerates_torn_tail(tmp_path):
    p = tmp_path / "log.jsonl"
    append_jsonl(p, [{"i": 1}, {"i": 2}])
    with open(p, "a") as f:
        f.write('{"i": 3, "trunc')
    assert [r["i"] for r in read_jsonl_tolerant(p)] == [1, 2]


def test_atomic_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    atomic_write_json(tmp_path / "a.json", {"x": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(tmp_path / "a.json", {"x": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temp file left
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}  # old content intact
