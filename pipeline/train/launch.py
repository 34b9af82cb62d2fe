"""Start the training worker: a child process (one GPU or CPU) or one process per GPU.

    train.num_gpus=1                     python -m pipeline.train <job.json>
    train.num_gpus=8                     python -m accelerate.commands.launch --config_file conf/accelerate/ddp.yaml
                                           --num_processes 8 --main_process_port <free> -m pipeline.train <job.json>
    train.num_gpus=2 train.launcher=torchrun
                                         python -m torch.distributed.run --standalone --nproc_per_node 2
                                           -m pipeline.train <job.json>      (also gloo DDP on CPU)

A child process gives every byte of accelerator memory back to the OS when it exits, so the next
stage's vLLM engine never competes with a trainer that has not been garbage-collected.

The worker dies with its parent: it runs in its own process group with PR_SET_PDEATHSIG=SIGKILL,
so a `kill -9` of the stage alone never leaves it training. Its pid, process group, host, boot id
and start time are in `<gen>/train/worker.pid` while it runs, whose mtime the stage beats as a
heartbeat (pipeline.infra.lease); the lineage lock means no live run owns that file when a stage starts,
so `reap_stale_worker` kills a leftover worker's group on this host (e.g. ranks a launcher orphaned)
before a resume touches its checkpoints. A record from another host (a job requeued on another
node) is judged by its heartbeat alone: dropped once older than the lease, waited out when its
beats stopped, refused while fresh.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from pipeline.infra import lease
from pipeline.config import TrainConfig
from pipeline.infra.io import atomic_write_json, read_json
from pipeline.infra.lease import process_start

log = logging.getLogger(__name__)
PID_FILE = "worker.pid"
PR_SET_PDEATHSIG = 1  # linux/prctl.h

ACCELERATE_DIR = Path(__file__).resolve().parents[2] / "conf" / "accelerate"


class LaunchError(RuntimeError):
    pass


def accelerate_config_path(name: str) -> Path:
    """`ddp` / `fsdp` name files under conf/accelerate/; anything with a slash or .yaml is a path."""
    p = Path(name) if ("/" in name or name.endswith((".yaml", ".yml"))) else ACCELERATE_DIR / f"{name}.yaml"
    if not p.is_file():
        known = sorted(x.stem for x in ACCELERATE_DIR.glob("*.yaml"))
        raise LaunchError(f"train.accelerate_config={name!r}: {p} does not exist (known: {known})")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_command(job_path: Path, t: TrainConfig, port: int | None = None) -> list[str]:
    """The argv that runs the worker for `job_path` with `t.num_gpus` processes."""
    worker = ["-m", "pipeline.train", str(job_path)]
    if t.num_gpus == 1:
        return [sys.executable, *worker]
    if t.launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(t.num_gpus), *worker]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config_path(t.accelerate_config)),
            "--num_processes", str(t.num_gpus), "--num_machines", "1",
            "--main_process_port", str(port or free_port()), *worker]


def _die_with_parent(parent: int):
    """preexec_fn: SIGKILL this child when the thread that started it dies. libc is loaded here, in
    the parent, so the forked child only makes the call (little Python runs between fork and exec)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def set_pdeathsig() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: no signal will ever come
            os._exit(1)

    return set_pdeathsig


def write_pid_file(out: Path, pid: int, cmd: list[str]) -> Path:
    """The worker's record (pipeline.infra.lease.holder: host, boot, pid, start, lease); `run_worker` beats its
    heartbeat (the file's mtime) while the worker runs."""
    return atomic_write_json(out / PID_FILE, {**lease.holder(pid), "pgid": os.getpgid(pid), "out": str(out.resolve()),
                                              "cmd": cmd})


def reap_stale_worker(out: Path, timeout: float = 60.0) -> str | None:
    """Make sure no worker of an earlier run still writes under `out` (a train dir). Called with the
    lineage lock held, so a live worker named by `out/worker.pid` is a leftover: its process group
    is killed and waited for. Returns what was done, or None when there was nothing to do."""
    path = out / PID_FILE
    if not path.exists():
        return None
    try:
        rec = read_json(path)
        pid, pgid, host, start = int(rec["pid"]), int(rec["pgid"]), str(rec["host"]), rec["start"]
    except (ValueError, KeyError, TypeError) as e:
        raise LaunchError(f"{path} is unreadable ({e}); check that no training worker for {out} still runs, "
                          f"then delete the file") from e
    if not lease.same_host(rec):  # another machine's process: only its heartbeat says whether it still runs
        _, _, j = lease.settle_file(path, max_wait_s=lease.LEASE_S)
        if j is None or j.stale:
            log.warning("dropping %s: the worker on host %r %s", path, host, j.why if j else "is gone")
            path.unlink(missing_ok=True)
            return f"dropped the record of pid {pid} on host {host}" + (f" ({j.why})" if j else "")
        raise LaunchError(f"{path}: the training worker of this checkpoint dir (pid {pid}) ran on host {host!r}, "
                          f"not this one ({socket.gethostname()!r}), and may still run there ({j.why}); stop it "
                          f"there (or make sure it is gone) and delete {path} before resuming")
    if process_start(pid) != start:  # gone, or the pid now belongs to another process
        path.unlink()
        return None
    if rec.get("out") != str(out.resolve()):  # a copied dir: that worker writes elsewhere, leave it be
        log.warning("%s names pid %d working on %s, not this dir: ignored", path, pid, rec.get("out"))
        path.unlink()
        return None
    log.warning("reaping a leftover training worker: pid %d (process group %d) of %s", pid, pgid, out)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while process_start(pid) == start:
        if time.monotonic() > deadline:
            raise LaunchError(f"leftover training worker pid {pid} ({path}) survived SIGKILL for {timeout}s")
        time.sleep(0.1)
    path.unlink()
    return f"killed pid {pid}"


def start_worker(cmd: list[str], out: Path, env: dict | None = None, cwd: str | None = None) -> subprocess.Popen:
    """Start `cmd` in its own process group, dying with this process, and name it in `out/worker.pid`;
    its stdout and stderr come merged through the returned process's pipe."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd,
                            start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
    write_pid_file(out, proc.pid, cmd)
    return proc


def run_worker(job_path: Path, t: TrainConfig, log_path: Path) -> None:
    """Run the worker command, teeing its output to `log_path`; a failure names the log and its tail.
    The caller (the train stage) has reaped any leftover worker of this dir (`reap_stale_worker`)."""
    cmd = worker_command(job_path, t)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    tail: deque[str] = deque(maxlen=30)
    out = job_path.parent
    with open(log_path, "a", encoding="utf-8") as log_file:
        log_file.write("$ " + " ".join(cmd) + "\n")
        proc = start_worker(cmd, out, env, root)
        assert proc.stdout is not None
        try:
            with lease.Heartbeat(out / PID_FILE, lease.HEARTBEAT_S):  # a resume on another host reads it
                for line in proc.stdout:
                    log_file.write(line)
                    sys.stderr.write(line)
                    tail.append(line)
                rc = proc.wait()
        finally:
            if proc.poll() is None:  # an exception here (KeyboardInterrupt): take the worker's group down too
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            (out / PID_FILE).unlink(missing_ok=True)
    if rc != 0:
        raise LaunchError(f"training worker failed with exit code {rc} (full log: {log_path}):\n{''.join(tail)}")
