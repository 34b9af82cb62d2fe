"""Leases on a shared filesystem: a lock file created atomically and kept alive by a heartbeat, and
the host/pid records that say whether a process named in a file may still be running.

    with lease_lock(Path("checkpoints/default/LOCK"), "lineage checkpoints/default"):
        ...   # a daemon thread touches LOCK every HEARTBEAT_S seconds meanwhile

Jobs on a cluster run on other hosts, so a pid alone proves nothing: a record names its host (and
boot id), and the file's mtime is its heartbeat. A file is stale when
- it is empty or unreadable and its mtime is older than the lease (a writer killed mid-write), or
- it names a process on this host (same boot) that is gone, or
- its heartbeat is older than its lease, whatever host or pid it names.
A holder that missed a few beats is dying (killed, requeued): its successor waits out the rest of
the lease instead of refusing. Ages are read on the filesystem's own clock (the mtime of a file we
just touched beside it), so clock skew between hosts does not count. The lock file is written in
full under a temporary name and hard-linked into place (link fails if the name exists), so a kill
at any point leaves either no lock or a complete one; leftover temporary files are judged the same
way and removed when stale. A holder whose lock was taken over (its heartbeat lapsed past the lease)
finds another file under the name at its next beat and interrupts its main thread: two runs never
keep writing side by side.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from pipeline.infra import faults
from pipeline.infra.io import temp_file

log = logging.getLogger(__name__)

# Above NFS's default attribute cache (acregmax 60 s) plus a few missed beats, so a live holder seen
# through a stale cache is never judged dead; a requeued job waits at most this long for its lock.
LEASE_S = 120.0
HEARTBEAT_S = 10.0
MISSED_BEATS = 3  # a holder this many beats late is dying: wait out its lease rather than refuse


class LeaseHeld(RuntimeError):
    """The lock is held by a live holder; `record` and `judgement` say who and why it counts as live."""

    def __init__(self, path: Path, record: dict | None, judgement: "Judgement") -> None:
        self.path, self.record, self.judgement = path, record, judgement
        super().__init__(f"{path} is held: {judgement.why}")


def boot_id() -> str | None:
    """Distinguishes two machines with one hostname (containers) and a host before and after a reboot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def this_host() -> dict:
    return {"host": socket.gethostname(), "boot_id": boot_id()}


def same_host(rec: dict) -> bool:
    """Does `rec` name a process of this machine in this boot (an older record without a boot id: by name)?"""
    me = this_host()
    return rec.get("host") == me["host"] and rec.get("boot_id") in (None, me["boot_id"])


def process_start(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22); None when gone or a
    zombie. With the pid it names one process: a reused pid has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    return None if fields[0] in ("Z", "X") else int(fields[19])


def alive(rec: dict) -> bool:
    """Is the process a same-host record names still running (its start time, when recorded, rules out
    a reused pid)?"""
    pid = rec.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if rec.get("start") is not None:
        return process_start(pid) == rec["start"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder(pid: int | None = None, lease_s: float = LEASE_S, heartbeat_s: float = HEARTBEAT_S) -> dict:
    """The record a holder writes: who (host, boot, pid and its start) and its lease terms."""
    pid = os.getpid() if pid is None else pid
    return {**this_host(), "pid": pid, "start": process_start(pid), "since": time.time(),
            "lease_s": lease_s, "heartbeat_s": heartbeat_s}


@dataclass(frozen=True)
class Judgement:
    stale: bool
    why: str
    age: float  # seconds since the last heartbeat, on the filesystem's clock
    wait: float = 0.0  # > 0: a dying holder; judge again after this many seconds


def judge(rec: dict | None, age: float) -> Judgement:
    """Is a lock (or pid) record whose file's heartbeat is `age` seconds old stale? `rec` None: empty
    or unreadable."""
    if rec is None:
        if age > LEASE_S:
            return Judgement(True, f"empty or unreadable, last written {age:.0f}s ago (lease {LEASE_S:.0f}s)", age)
        return Judgement(False, f"empty or unreadable, written {age:.0f}s ago: stale after {LEASE_S:.0f}s",
                         age, wait=LEASE_S - age + 0.1)
    lease = _number(rec.get("lease_s"), LEASE_S)
    who = f"pid {rec.get('pid')} on {rec.get('host')}"
    if same_host(rec) and not alive(rec):
        return Judgement(True, f"{who} is gone", age)
    if age > lease:
        return Judgement(True, f"{who}: heartbeat {age:.0f}s old, past its {lease:.0f}s lease", age)
    beat = _number(rec.get("heartbeat_s"), HEARTBEAT_S)
    live = f"{who}, heartbeat {age:.1f}s ago (lease {lease:.0f}s)"
    return Judgement(False, live, age, wait=lease - age + 0.1 if age > MISSED_BEATS * beat else 0.0)


def _number(x: Any, default: float) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 else default


def read_record(path: Path) -> tuple[dict | None, os.stat_result | None]:
    """(record or None when empty/unreadable, stat or None when absent). Opening the file revalidates
    NFS's attribute cache (close-to-open), so the mtime is the server's."""
    try:
        with open(path, "rb") as f:
            st, raw = os.fstat(f.fileno()), f.read()
    except FileNotFoundError:
        return None, None
    try:
        rec = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        rec = None
    return (rec if isinstance(rec, dict) else None), st


def fs_now(probe: Path) -> float:
    """The filesystem's clock: touch `probe` (a file of ours beside the judged one) and read its mtime."""
    os.utime(probe, None)
    return os.stat(probe).st_mtime


def settle(path: Path, probe: Path, max_wait_s: float) -> tuple[dict | None, os.stat_result | None, Judgement | None]:
    """Judge the file at `path`, waiting (up to `max_wait_s`) while its holder is dying; returns its record,
    stat and final judgement (None, None, None when there is no file)."""
    deadline = time.monotonic() + max_wait_s
    while True:
        rec, st = read_record(path)
        if st is None:
            return None, None, None
        j = judge(rec, fs_now(probe) - st.st_mtime)
        if j.stale or not j.wait or time.monotonic() + 0.1 > deadline:
            return rec, st, j
        pause = min(j.wait, deadline - time.monotonic(), _number((rec or {}).get("heartbeat_s"), HEARTBEAT_S))
        log.warning("%s: %s; waiting %.0fs for it to lapse", path, j.why, j.wait)
        time.sleep(max(pause, 0.05))


def settle_file(path: Path, max_wait_s: float) -> tuple[dict | None, os.stat_result | None, Judgement | None]:
    """`settle` for a file this process does not lock (a worker's pid record), with a probe file of its own."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
    os.close(fd)
    try:
        return settle(path, Path(name), max_wait_s)
    finally:
        Path(name).unlink(missing_ok=True)


def _clear_leftovers(path: Path, mine: Path) -> None:
    """Temporary and broken-off files of killed lockers (`.LOCK.*.tmp`, `.LOCK.*.stale`) that are stale."""
    for p in path.parent.glob(f".{path.name}.*"):
        if p == mine or not p.name.endswith((".tmp", ".stale")):
            continue
        rec, st = read_record(p)
        if st is not None and judge(rec, fs_now(mine) - st.st_mtime).stale:
            p.unlink(missing_ok=True)


def _break(path: Path, st: os.stat_result) -> None:
    """Remove the stale lock `st` describes, and only it: another locker may have replaced it meanwhile."""
    moved = path.with_name(f".{path.name}.{uuid.uuid4().hex}.stale")
    try:
        os.rename(path, moved)
    except FileNotFoundError:
        return
    now = os.stat(moved)
    if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):  # a fresh lock: put it back
        try:
            os.link(moved, path)
        except FileExistsError:  # a third locker got in: that one's holder loses at its next beat
            pass
    moved.unlink(missing_ok=True)


def acquire(path: Path, lease_s: float = LEASE_S, heartbeat_s: float = HEARTBEAT_S,
            max_wait_s: float | None = None) -> tuple[dict, int]:
    """Create the lock file `path` holding this process's record; returns (record, inode). A stale lock is
    taken over, a dying one waited out (at most `max_wait_s`, default the lease), a live one raises
    LeaseHeld."""
    me = holder(lease_s=lease_s, heartbeat_s=heartbeat_s)
    fd, name = temp_file(path)  # readable by the other users of a shared filesystem, like any output
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
            f.flush()
            os.fsync(f.fileno())
        faults.point("lock:temp-written")  # killed here: a complete temp file, no lock
        _clear_leftovers(path, tmp)
        for _ in range(100):  # each round either links or removes a stale lock; a bound against livelock only
            try:
                return me, _link(tmp, path, me)
            except FileExistsError:
                pass
            rec, st, j = settle(path, tmp, lease_s if max_wait_s is None else max_wait_s)
            if st is None:
                continue  # released meanwhile
            if not j.stale:
                raise LeaseHeld(path, rec, j)
            log.warning("taking over the stale lock %s: %s", path, j.why)
            _break(path, st)
        raise LeaseHeld(path, None, Judgement(False, "contended by other lockers for 100 rounds", 0.0))
    finally:
        tmp.unlink(missing_ok=True)


def _link(tmp: Path, path: Path, me: dict) -> int:
    """Put the complete record `tmp` under `path` (FileExistsError if taken); returns the lock's inode."""
    try:
        os.link(tmp, path)  # atomic: fails when the name exists, even over NFS
        return os.stat(tmp).st_ino
    except FileExistsError:
        raise
    except OSError as e:  # a filesystem without hard links: exclusive create, then write; the empty
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):  # moment ages by the lease
            raise
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    with os.fdopen(fd, "w") as f:
        json.dump(me, f)
        f.flush()
        os.fsync(f.fileno())
        return os.fstat(f.fileno()).st_ino


class Heartbeat:
    """A daemon thread that touches `path` every `interval` seconds while the holder runs. When the file
    is gone, or (given `inode`) another file holds the name, the lease is lost: `on_lost` is called once
    and the beat stops. A failed touch (a filesystem hiccup) is logged and retried at the next beat."""

    def __init__(self, path: Path, interval: float, inode: int | None = None,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.path, self.interval, self.inode, self.on_lost = path, interval, inode, on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat:{path.name}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                st = os.stat(self.path)
                if self.inode is not None and st.st_ino != self.inode:
                    return self._lost("another holder's file is in its place")
                os.utime(self.path, None)
            except FileNotFoundError:
                return self._lost("the file is gone")
            except OSError as e:
                log.warning("heartbeat on %s failed (%s); retrying in %.0fs", self.path, e, self.interval)

    def _lost(self, why: str) -> None:
        if self._stop.is_set():
            return
        log.warning("heartbeat on %s stopped: %s", self.path, why)
        if self.on_lost:
            self.on_lost(why)


def interrupt_main(path: Path) -> Callable[[str], None]:
    """on_lost for a lock: the run must stop, since another run now owns what it writes. SIGINT to the
    main thread interrupts a blocking read too (it is raised there as KeyboardInterrupt)."""

    def stop(why: str) -> None:
        log.error("lost the lock %s (%s): its heartbeat lapsed past the lease and another run took it over; "
                  "stopping this run", path, why)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    return stop


@contextmanager
def lease_lock(path: Path, lease_s: float = LEASE_S, heartbeat_s: float = HEARTBEAT_S,
               max_wait_s: float | None = None) -> Iterator[dict]:
    """Hold the lock file `path` (acquire), beating its heartbeat; released (only if still ours) on exit."""
    me, inode = acquire(path, lease_s, heartbeat_s, max_wait_s)
    try:
        with Heartbeat(path, heartbeat_s, inode, interrupt_main(path)):
            yield me
    finally:
        try:
            if os.stat(path).st_ino == inode:
                path.unlink()
        except FileNotFoundError:
            pass
