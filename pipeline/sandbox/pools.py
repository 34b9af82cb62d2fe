"""The warm processes behind checked runs (pipeline.sandbox.verdicts): zygotes and warm checkers.

- `Zygote`: one sandboxed launcher (`pipeline/sandbox/launcher.py` in zygote mode, under the
  isolation in force) that forks a freshly confined child per job: the code under test (`serve`) or
  a sandboxed checker for model-written tests (`check`). Each job gets three new pipes (requests,
  replies, the child's stdout) passed over the zygote's control socket, so a child that outlives its
  job holds only its own dead pipes. A zygote is reused only after it reported "reaped" for the
  last child; on a timeout or anything unexpected the whole zygote (its pid namespace) is killed.
- `WarmChecker`: `python -I -S pipeline/sandbox/checker.py` forks a child per job for trusted tests.
- `Pools`: both kinds, shared by the worker threads of one `run_programs` call.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pipeline.config import SandboxConfig
from pipeline.sandbox.proc import (
    STARTUP_SECONDS, WIRE, _children, _kill_group, _pidfd, _terminate, spawn, warn_once,
)
from pipeline.sandbox.wire import MAX_FRAME

CHECKER = Path(__file__).with_name("checker.py")  # the warm checker for trusted tests
REAP_SECONDS = 2.0  # a child must be gone this soon after its pipes close, or its zygote is killed


class ProtocolError(Exception):
    """A message nobody asked for, or one too long: the sample fails."""


class Channel:
    """Line messages over a pair of non-blocking fds; writes wait (select) at most until the deadline."""

    def __init__(self, rd: int, wr: int):
        self.rd, self.wr, self.buf, self.eof = rd, wr, b"", False
        os.set_blocking(rd, False)
        os.set_blocking(wr, False)

    def read(self) -> list[str]:
        out = []
        while not self.eof:
            try:
                chunk = os.read(self.rd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                self.eof = True
                break
            *lines, self.buf = (self.buf + chunk).split(b"\n")
            out += [x.decode("utf-8", "replace") for x in lines]
            if len(self.buf) > MAX_FRAME + 64:
                raise ProtocolError(f"a message over {MAX_FRAME} bytes")
        return out

    def send(self, line: str, deadline: float) -> bool:
        data = (line + "\n").encode("utf-8", "surrogatepass")
        while data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [self.wr], [], left)[1]:
                return False
            try:
                data = data[os.write(self.wr, data):]
            except BlockingIOError:
                continue
            except OSError:  # the other side is gone; its EOF says so
                return True
        return True


class Job(Channel):
    """One child of a zygote: its request/reply channel and its stdout (kept up to `limit` bytes)."""

    def __init__(self, zygote: "Zygote", rd: int, wr: int, out: int, limit: int):
        super().__init__(rd, wr)
        self.zygote, self.out, self.limit, self.stdout = zygote, out, limit, b""
        os.set_blocking(out, False)
        self.exit_code: int | None = None
        self.out_eof = False

    def drain(self) -> None:
        while not self.out_eof:
            try:
                chunk = os.read(self.out, 1 << 16)
            except (BlockingIOError, OSError):
                return
            if not chunk:
                self.out_eof = True
                return
            self.stdout = (self.stdout + chunk)[:self.limit]  # read on, so the child never blocks on a full pipe

    def abandon(self) -> None:
        self.drain()
        for fd in (self.rd, self.wr, self.out):
            os.close(fd)

    def close(self) -> bool:
        """Close the pipes and wait for the zygote's "reaped"; False if the child lingers (kill the zygote)."""
        self.drain()
        for fd in (self.rd, self.wr, self.out):
            os.close(fd)
        self.exit_code = self.zygote.reaped(time.monotonic() + REAP_SECONDS)
        return self.exit_code is not None


class Zygote:
    def __init__(self, cfg: SandboxConfig, namespace: bool):
        self.cfg, self.namespace, self.pinned = cfg, namespace, []
        self.tmp = Path(tempfile.mkdtemp(prefix="sandbox-"))
        ours, theirs = socket.socketpair()
        try:
            self.proc = spawn("zygote", self.tmp, {}, cfg, namespace, (theirs.fileno(),))
        except OSError:
            ours.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        finally:
            theirs.close()
        self.sock, self.buf = ours, b""
        line = self._line(time.monotonic() + STARTUP_SECONDS)
        if line is None or not line.startswith("ready "):
            self.kill()
            raise OSError(f"the sandbox zygote did not start ({line!r})")
        if namespace:  # pin the pid namespace's init, so that kill() reaches everything in it
            self.pinned = [fd for fd in map(_pidfd, _children(self.proc.pid)) if fd is not None]
        import ast

        warn_once(ast.literal_eval(line[len("ready "):]))

    def _line(self, deadline: float) -> str | None:
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                return None
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def job(self, payload: dict, deadline: float) -> Job:
        """Fork a confined child for `payload` (mode, entry_point, program | context + cases)."""
        data = repr({**payload, "cpu_seconds": int(self.cfg.timeout) + 2}).encode("utf-8", "surrogatepass")
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            socket.send_fds(self.sock, [b"%-16d" % len(data)], [req_r, rep_w, out_w])
            self.sock.sendall(data)
            self.sock.settimeout(None)
        except OSError:
            for fd in (req_w, rep_r, out_r):
                os.close(fd)
            raise
        finally:
            for fd in (req_r, rep_w, out_w):
                os.close(fd)
        if self._line(deadline) != "forked":
            for fd in (req_w, rep_r, out_r):
                os.close(fd)
            raise OSError("the sandbox zygote did not fork")
        return Job(self, rep_r, req_w, out_r, self.cfg.output_kb * 1024)

    def reaped(self, deadline: float) -> int | None:
        line = self._line(deadline)
        if line is None or not line.startswith("reaped "):
            return None
        return int(line.split()[1])

    def kill(self) -> None:
        _terminate(self.proc, self.pinned, self.namespace)
        self.sock.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class WarmChecker(Channel):
    """A long-lived `python -I -S checker.py`: each job is run by a child it forks (trusted
    tests only); the child talks on the server's own pipes while the server waits for it."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", str(CHECKER), str(WIRE)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                                     env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"})
        super().__init__(self.proc.stdout.fileno(), self.proc.stdin.fileno())

    def job(self, context: str, entry: str, cases: tuple[str, ...], deadline: float) -> bool:
        self.buf, self.eof = b"", False
        payload = repr((context, entry, list(cases)))
        return self.send(f"job {len(payload.encode('utf-8', 'surrogatepass'))}\n{payload}", deadline)

    def stop(self, deadline: float) -> bool:
        """After the code's setup failed: tell the waiting child to stop; True once it said "bye"."""
        if not self.send("stop", deadline):
            return False
        while time.monotonic() < deadline:
            try:
                lines = self.read()
            except ProtocolError:
                return False
            if "bye" in lines:
                return lines[-1] == "bye" and not self.buf
            if self.eof or not select.select([self.rd], [], [], max(deadline - time.monotonic(), 0))[0]:
                return False
        return False

    def kill(self) -> None:
        _kill_group(self.proc.pid)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc.wait()


class Pools:
    """Zygotes and warm checkers shared by the worker threads of one `run_programs` call."""

    def __init__(self, cfg: SandboxConfig, namespace: bool):
        self.cfg, self.namespace = cfg, namespace
        self.idle: dict[type, list] = {Zygote: [], WarmChecker: []}
        self.lock = threading.Lock()

    def take(self, kind: type):
        with self.lock:
            if self.idle[kind]:
                return self.idle[kind].pop()
        return Zygote(self.cfg, self.namespace) if kind is Zygote else WarmChecker()

    def give(self, item, healthy: bool) -> None:
        if healthy and item.proc.poll() is None:
            with self.lock:
                self.idle[type(item)].append(item)
        else:
            item.kill()

    def close(self) -> None:
        with self.lock:
            items = [x for xs in self.idle.values() for x in xs]
            self.idle = {Zygote: [], WarmChecker: []}
        for x in items:
            x.kill()
