"""Crash windows, fast: a kill while the lineage lock is created, a lock held from another host (its
heartbeat, not its pid, decides), a resume after the free memory changed (the preflight plan of the
first start is kept), the exported checkpoint's step beside the steps run, and the mode of written files.

    python -m pytest tests/test_crash_windows.py -q

The hosts are simulated: a holder process that reports another hostname (pipeline.infra.lease.this_host)
stands for a job on another node of a cluster sharing the filesystem.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.infra import lease
from pipeline.infra.faults import ENV, EXIT_CODE
from pipeline.infra.io import atomic_write_json, atomic_write_text, temp_dir, umask
from pipeline.lineage import Lineage, LineageError
from pipeline.train.export import exported_line, exported_step
from tests.support import ROOT

ENV_RUN = {**os.environ, "PYTHONPATH": str(ROOT)}

# Takes the lineage lock as a run on host "node-b" would, with a short lease, and holds it.
HOLDER = """
import sys, time
from pathlib import Path
from pipeline.infra import lease
lease.this_host = lambda: {"host": "node-b", "boot_id": "b"}
with lease.lease_lock(Path(sys.argv[1]), lease_s=float(sys.argv[2]), heartbeat_s=0.1):
    print("held", flush=True)
    time.sleep(600)
"""

LOCKER = "import sys; from pipeline.lineage import Lineage\nwith Lineage(sys.argv[1], 'default').lock(): pass"


def age_by(path: Path, seconds: float) -> None:
    """Move a file's heartbeat (its mtime) `seconds` into the past."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_a_kill_between_the_temp_file_and_the_link_leaves_no_lock(tmp_path):
    lin = Lineage(tmp_path, "default")
    lin.path.mkdir()
    res = subprocess.run([sys.executable, "-c", LOCKER, str(tmp_path)], env={**ENV_RUN, ENV: "lock:temp-written"},
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == EXIT_CODE, res.stderr[-2000:]
    left = list(lin.path.glob(".LOCK.*.tmp"))
    assert not (lin.path / "LOCK").exists() and len(left) == 1  # the record was complete; it never got its name
    assert json.loads(left[0].read_text())["pid"] > 0
    with lin.lock():  # nothing to wait for; the dead locker's temp file is cleared on the way
        assert json.loads((lin.path / "LOCK").read_text())["pid"] == os.getpid()
    assert not (lin.path / "LOCK").exists() and not list(lin.path.glob(".LOCK.*"))


def test_an_empty_lock_is_judged_by_its_mtime_against_the_lease(tmp_path):
    """An empty LOCK (an older version killed between creating and writing it) clears once the lease
    has passed since it was written; until then it holds the lineage."""
    lin = Lineage(tmp_path, "default")
    lin.path.mkdir()
    (lin.path / "LOCK").write_text("")
    with pytest.raises(LineageError, match=r"empty or unreadable, written 0s ago: stale after 120s"):
        with lin.lock(max_wait_s=0):
            pass
    age_by(lin.path / "LOCK", lease.LEASE_S + 5)
    with lin.lock(max_wait_s=0):
        assert json.loads((lin.path / "LOCK").read_text())["host"] == lease.this_host()["host"]


def test_without_hard_links_the_lock_is_created_exclusively(tmp_path, monkeypatch):
    """Some filesystems refuse link(2): the lock falls back to an exclusive create (its empty moment is
    what the lease judgement of an empty lock covers) and still refuses a second holder."""
    import errno

    def no_links(*a, **k):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    lin = Lineage(tmp_path, "default")
    with lin.lock():
        assert json.loads((lin.path / "LOCK").read_text())["pid"] == os.getpid()
        with pytest.raises(LineageError, match="in use by pid"):
            with lin.lock(max_wait_s=0):
                pass
    assert not (lin.path / "LOCK").exists() and not list(lin.path.glob(".LOCK.*"))


def test_a_record_from_another_host_counts_by_its_heartbeat_not_its_pid(tmp_path):
    lin = Lineage(tmp_path, "default")
    lin.path.mkdir()
    # pid 1 lives here, but the record names another machine: only the heartbeat says anything
    (lin.path / "LOCK").write_text(json.dumps({"host": "node-c", "boot_id": "c", "pid": 1, "lease_s": 60,
                                               "heartbeat_s": 10}))
    with pytest.raises(LineageError, match=r"in use by pid 1 on node-c \(pid 1 on node-c, heartbeat 0\.\d+s ago"):
        with lin.lock(max_wait_s=0):
            pass
    age_by(lin.path / "LOCK", 61)  # its heartbeat is past its lease: taken over
    with lin.lock(max_wait_s=0):
        assert json.loads((lin.path / "LOCK").read_text())["pid"] == os.getpid()
    # a dead pid of THIS host is stale at once, heartbeat or not (a same-host record is checked directly)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (lin.path / "LOCK").write_text(json.dumps({**lease.this_host(), "pid": int(dead.stdout)}))
    with lin.lock(max_wait_s=0):
        pass


def test_a_live_holder_on_another_host_is_refused_and_a_lapsed_one_taken_over(tmp_path):
    """A holder on "node-b" beats its heartbeat past its 1 s lease, so it stays refused; once it stops
    beating (SIGSTOP: a frozen or cut-off node) the next run waits out the lease and takes over, and
    the old holder, when it wakes, finds the lock gone to another and stops without touching it."""
    lin = Lineage(tmp_path, "default")
    lin.path.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lin.path / "LOCK"), "1.0"], env=ENV_RUN, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        time.sleep(1.5)  # longer than the lease: only the heartbeat keeps it
        with pytest.raises(LineageError, match=r"in use by pid \d+ on node-b .*heartbeat 0\.\d+s ago \(lease 1s\)"):
            with lin.lock(max_wait_s=0):
                pass
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(0.5)  # a few beats missed: a dying holder, waited out rather than refused
        t0 = time.monotonic()
        with lin.lock(max_wait_s=30):  # waits for the missed beats to become a lapsed lease
            waited = time.monotonic() - t0
            mine = (lin.path / "LOCK").stat().st_ino
            os.kill(proc.pid, signal.SIGCONT)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode != 0 and "lost the lock" in err, err[-2000:]
            assert (lin.path / "LOCK").stat().st_ino == mine  # the old holder left the new lock alone
        assert waited < 30
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()


def test_a_resume_keeps_the_memory_plan_of_the_first_start(smoke_cfg, tiny_qwen3, tmp_path):
    """First start: little free memory, so the preflight turns on gradient checkpointing and halves the
    per-device batch; the run is killed. On resume far more memory is free (a fresh reading would change
    nothing), and the plan, so the job the worker gets, is the first start's. (prepare_job, which calls
    `planned` on every start, is covered end to end in test_memory.)"""
    from pipeline.config import HParams, resolved_dict
    from pipeline.infra.io import read_json
    from pipeline.train import memory
    from pipeline.train.memory import MB, ModelShape, Plan, apply, estimate, planned, preflight

    cfg = smoke_cfg("train.per_device_batch_size=4")
    hp = HParams(learning_rate=1e-4, epochs=1, lora_r=0, lora_alpha=16, lora_dropout=0.0, batch_size=4,
                 max_seq_length=1024, warmup_ratio=0.0, num_examples=16, math_fraction=1.0, synth_temperature=0.8)
    need = estimate(ModelShape.from_dir(tiny_qwen3), Plan(0, 2, 1024, True, False))["total"]
    little, plenty = ("cpu", int(need / memory.HEADROOM) + MB, 2**36), ("cpu", 2**36, 2**36)
    first = planned(tmp_path, cfg, hp, tiny_qwen3, device=little)
    assert (first.plan.gradient_checkpointing, first.plan.per_device) == (True, 2)
    recorded = read_json(tmp_path / memory.FILE)

    assert preflight(cfg, hp, tiny_qwen3, device=plenty).changes == []
    resumed = planned(tmp_path, cfg, hp, tiny_qwen3, device=plenty)
    assert resumed == first and read_json(tmp_path / memory.FILE) == recorded
    job = apply(resumed, resolved_dict(cfg), {"lora_r": 0})[0]["train"]
    assert (job["gradient_checkpointing"], job["per_device_batch_size"]) == (True, 2)

    # other inputs (a changed proposal) are planned again, on today's memory
    other = planned(tmp_path, cfg, replace(hp, max_seq_length=512), tiny_qwen3, device=plenty)
    assert other.changes == [] and read_json(tmp_path / memory.FILE)["changes"] == []


def test_the_exported_step_is_the_best_validation_checkpoint():
    best = {"steps": 40, "val": {"used": True, "best_checkpoint": "checkpoint-20"}}
    last = {"steps": 12, "val": {"used": False, "why": "no validation rows"}}
    assert exported_step(best) == 20 and exported_step(last) == 12
    assert exported_line({"sft": best, "dpo": last}) == (
        "- Exported weights: sft step 20 of 40 run (lowest validation loss); dpo step 12 of 12 run (the last step).")


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_written_files_and_dirs_get_the_usual_mode(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert umask() == mask
        f = atomic_write_text(tmp_path / "a" / "manifest.json", "{}")
        d = temp_dir(tmp_path / "model")
        with lease.lease_lock(tmp_path / "LOCK", max_wait_s=0):
            lock = (tmp_path / "LOCK").stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert f.stat().st_mode & 0o777 == 0o666 & ~mask
    assert d.stat().st_mode & 0o777 == 0o777 & ~mask
    assert lock == 0o666 & ~mask
