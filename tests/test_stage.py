"""The stage contract: loop-owned engines, run_stage (manifest last, then the ledger; done stages skipped),
and the typed manifest reader."""

from __future__ import annotations

import pytest

from pipeline.lineage import Lineage, LineageError
from pipeline.lineage.runner import (Engines, Manifest, Stage, StageContext, StageResult, read_manifest, run_stage,
                            write_manifest)


class FakeEngine:
    def __init__(self, path, log):
        self.path, self.log, self.closed = path, log, False
        log.append(("open", path.name))

    def close(self):
        self.closed = True
        self.log.append(("close", self.path.name))

    def sleep(self):
        return False  # like vLLM on CPU: cannot sleep, so the loop closes it

    def wake(self):
        raise AssertionError("a closed engine is never woken")


class SleepyEngine(FakeEngine):
    """Like vLLM on CUDA with sleep mode: gives the memory back and wakes on the next use."""

    def sleep(self):
        self.log.append(("sleep", self.path.name))
        return True

    def wake(self):
        self.log.append(("wake", self.path.name))


def test_kept_engines_are_reused_per_model_and_closed_on_release(tmp_path):
    log: list = []
    engines = Engines(lambda p: FakeEngine(p, log), keep=True)
    with engines.use(tmp_path / "teacher") as a:
        pass
    with engines.use(tmp_path / "teacher") as b:  # the next stage on the same model: no new start
        assert b is a and not a.closed
    with engines.use(tmp_path / "student") as c:  # another model: the old engine goes first
        assert a.closed and c is not a
    engines.release()
    assert c.closed and engines.current is None
    assert log == [("open", "teacher"), ("close", "teacher"), ("open", "student"), ("close", "student")]
    assert engines.starts == [str((tmp_path / "teacher").resolve()), str((tmp_path / "student").resolve())]


def test_release_sleeps_an_engine_that_can_and_wakes_it_for_the_next_stage(tmp_path):
    log: list = []
    engines = Engines(lambda p: SleepyEngine(p, log), keep=True)
    with engines.use(tmp_path / "cand") as a:
        pass
    engines.release()  # e.g. drift loads its own models for KL
    with engines.use(tmp_path / "cand") as b:
        assert b is a
    engines.close()
    assert log == [("open", "cand"), ("sleep", "cand"), ("wake", "cand"), ("close", "cand")]
    assert [e for e, _ in engines.events] == ["start", "sleep", "wake", "close"] and len(engines.starts) == 1


class CpuEngine(FakeEngine):
    """Like vLLM on CPU: holds no accelerator, so there is nothing to give back."""

    def holds_accelerator(self):
        return False


def test_release_keeps_an_engine_that_holds_no_accelerator(tmp_path):
    log: list = []
    engines = Engines(lambda p: CpuEngine(p, log), keep=True)
    with engines.use(tmp_path / "m") as a:
        pass
    engines.release()  # drift's KL on CPU: the engine stays, the next stage on the model starts none
    with engines.use(tmp_path / "m") as b:
        assert b is a and not a.closed
    engines.close()
    assert [e for e, _ in engines.events] == ["start", "keep", "close"] and len(engines.starts) == 1


def test_scoped_engines_close_after_each_use(tmp_path):
    log: list = []
    engines = Engines(lambda p: FakeEngine(p, log))
    with engines.use(tmp_path / "m") as a:
        assert not a.closed
    assert a.closed
    with engines.use(tmp_path / "m") as b:
        assert b is not a
    assert len(engines.starts) == 2


def test_accelerator_releases_the_loops_engine(smoke_cfg, tmp_path):
    cfg = smoke_cfg()
    lin = Lineage(cfg.paths.root, cfg.paths.lineage)
    log: list = []
    ctx = StageContext(cfg=cfg, lineage=lin, gen=lin.gen(1), teacher=lin.gen(0), stage="drift",
                       engines=Engines(lambda p: FakeEngine(p, log), keep=True))
    with ctx.engine(tmp_path / "m") as eng:
        pass
    assert not eng.closed
    with ctx.accelerator():
        assert eng.closed


def test_run_stage_writes_manifest_then_ledger_and_skips_when_done(smoke_cfg):
    cfg = smoke_cfg()
    lin = Lineage(cfg.paths.root, cfg.paths.lineage)
    calls = []

    def work(ctx: StageContext) -> StageResult:
        calls.append(ctx.stage)
        (ctx.out / "out.txt").write_text("x")
        return StageResult(metrics={"toy.score": 0.5}, info={"note": "ok"}, tokens=7)

    stage = Stage("toy", work, accelerator=True)
    ctx = StageContext(cfg=cfg, lineage=lin, gen=lin.gen(1), teacher=lin.gen(0), stage="toy")
    res = run_stage(stage, ctx)
    assert res.metrics == {"toy.score": 0.5} and calls == ["toy"]
    m = read_manifest(lin.gen(1), "toy")
    assert m.info == {"note": "ok"} and m.teacher == "gen_000" and m.config_hash and m.versions["torch"]
    row = lin.row(lin.gen(1))
    assert row["metrics"]["toy.score"] == 0.5 and row["tokens"]["toy"] == 7 and "toy" in row["seconds"]
    assert run_stage(stage, ctx).metrics == {"toy.score": 0.5} and calls == ["toy"]  # done: not run again


def test_manifest_reader_names_a_bad_file(tmp_path):
    lin = Lineage(tmp_path, "lin")
    g = lin.gen(1)
    with pytest.raises(LineageError, match="has not finished"):
        read_manifest(g, "eval")
    write_manifest(g, Manifest("eval", StageResult(metrics={"a": 1})))
    assert read_manifest(g, "eval").metrics == {"a": 1}
    g.manifest_path("eval").write_text('{"stage": "eval"}')
    with pytest.raises(LineageError, match="not a stage manifest"):
        read_manifest(g, "eval")


def test_a_done_stage_repairs_a_ledger_row_a_kill_left_behind(smoke_cfg):
    cfg = smoke_cfg()
    lin = Lineage(cfg.paths.root, cfg.paths.lineage)
    g = lin.gen(1)
    # as if killed right after the manifest was written: the ledger never got the stage's numbers
    write_manifest(g, Manifest("eval", StageResult(metrics={"t.acc": 0.25}, tokens=3), seconds=1.5))
    ctx = StageContext(cfg=cfg, lineage=lin, gen=g, teacher=lin.gen(0), stage="eval")
    run_stage(Stage("eval", lambda c: pytest.fail("a finished stage must not run again")), ctx)
    row = lin.row(g)
    assert row["metrics"] == {"t.acc": 0.25} and row["seconds"] == {"eval": 1.5} and row["tokens"] == {"eval": 3}


def test_teacher_pointer_is_repaired_from_the_ledger(tmp_path):
    from pipeline.loop.promote import repair_teacher

    lin = Lineage(tmp_path, "lin")
    lin.record(lin.gen(0), status="promoted", parent=None)
    lin.record(lin.gen(1), status="promoted", parent="gen_000")
    lin.record(lin.gen(2), status="rejected", parent="gen_001")
    assert lin.teacher().name == "gen_000"  # as if killed between the status and the TEACHER write
    repair_teacher(lin)
    assert lin.teacher().name == "gen_001"
    lin.record(lin.gen(3), status="promoted", parent="gen_001", selected="gen_003-c1")
    repair_teacher(lin)
    assert lin.teacher().name == "gen_003-c1"
