"""The training worker's lifetime (pipeline.train.launch): it dies with its parent, and a resume
reaps a leftover worker or refuses with a clear message when it runs on another host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.train.launch import PID_FILE, LaunchError, process_start, reap_stale_worker, start_worker, write_pid_file
from tests.support import ROOT

# Stands in for the train stage: starts a long "worker" with start_worker, reports its pid, waits.
PARENT = """
import sys, time
from pathlib import Path
from pipeline.train.launch import start_worker
proc = start_worker([sys.executable, "-c", "import time; time.sleep(600)"], Path(sys.argv[1]))
print(proc.pid, flush=True)
time.sleep(600)
"""


def gone_within(pid: int, start: int | None, seconds: float) -> bool:
    """Polls (no timing assertion: the bound only keeps a broken test from hanging)."""
    deadline = time.monotonic() + seconds
    while process_start(pid) == start:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_worker_dies_when_only_its_parent_is_killed(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    worker = int(parent.stdout.readline())
    rec = json.loads((tmp_path / PID_FILE).read_text())
    assert rec["pid"] == worker and rec["pgid"] == worker  # its own process group
    assert os.getpgid(worker) != os.getpgid(parent.pid)  # so a kill of the parent's group misses it...
    start = process_start(worker)
    assert start is not None
    os.kill(parent.pid, signal.SIGKILL)  # ...and only PR_SET_PDEATHSIG takes it down
    parent.wait()
    assert gone_within(worker, start, 60)


@pytest.fixture
def stale(tmp_path):
    """A live process named by a worker.pid in a train dir, as a killed run leaves it."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    write_pid_file(tmp_path, proc.pid, ["python", "-m", "pipeline.train", "job.json"])
    yield tmp_path, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_leftover_worker_is_reaped(stale):
    out, proc = stale
    start = process_start(proc.pid)
    assert reap_stale_worker(out) == f"killed pid {proc.pid}"
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert process_start(proc.pid) != start and not (out / PID_FILE).exists()
    assert reap_stale_worker(out) is None  # nothing left to do


def test_a_worker_on_another_host_is_a_clear_refusal(stale):
    out, proc = stale
    rec = json.loads((out / PID_FILE).read_text())
    (out / PID_FILE).write_text(json.dumps({**rec, "host": "elsewhere"}))
    with pytest.raises(LaunchError, match=r"ran on host 'elsewhere'.*delete .*worker.pid"):
        reap_stale_worker(out)
    assert proc.poll() is None and (out / PID_FILE).exists()  # nothing killed, nothing deleted


def test_a_dead_or_reused_pid_is_only_a_stale_file(stale):
    out, proc = stale
    rec = json.loads((out / PID_FILE).read_text())
    (out / PID_FILE).write_text(json.dumps({**rec, "start": rec["start"] - 1}))  # the pid now names another process
    assert reap_stale_worker(out) is None
    assert proc.poll() is None and not (out / PID_FILE).exists()


def test_an_unreadable_pid_file_names_itself(tmp_path):
    (tmp_path / PID_FILE).write_text("{}")
    with pytest.raises(LaunchError, match="worker.pid is unreadable"):
        reap_stale_worker(Path(tmp_path))


def test_a_worker_record_from_another_host_whose_heartbeat_lapsed_is_dropped(stale):
    """A job requeued on another node: the old node's record is judged by its heartbeat (the file's
    mtime, which the old stage stopped beating), never by a pid that means nothing here."""
    from pipeline.infra import lease

    out, proc = stale
    rec = json.loads((out / PID_FILE).read_text())
    (out / PID_FILE).write_text(json.dumps({**rec, "host": "elsewhere", "boot_id": "x"}))
    t = time.time() - lease.LEASE_S - 5
    os.utime(out / PID_FILE, (t, t))
    assert reap_stale_worker(out).startswith(f"dropped the record of pid {proc.pid} on host elsewhere")
    assert proc.poll() is None and not (out / PID_FILE).exists()  # the pid named another machine's process
