"""Checked runs: the code under test in one sandbox, its tests in a checker process, the harness between.

    results = run_checked(programs, cfg, namespace)     # via pipeline.sandbox.run_programs

For each GuardedProgram: the code (`setup`) runs in a `serve` sandbox and serves its entry point;
the tests run in a checker: trusted tests (`trusted=True`, HumanEval's) in a child forked from a
warm checker process that never executes generated code; untrusted tests (written by a model) in a
`check` sandbox of their own. Every call goes checker -> harness -> sandbox and back, as one line
each way (pipeline/sandbox_wire.py); the harness gives each call a fresh random id, refuses a reply
to anything but the call pending, a message over MAX_FRAME bytes and a value that does not decode as
plain data, and ends the sample when either side dies or its time is up. The verdict is composed
here from the checker's per-case outcomes and what the harness itself saw.
"""

from __future__ import annotations

import ast
import os
import secrets
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pipeline.config import SandboxConfig
from pipeline.sandbox_proc import (
    DETAIL_CHARS, GRACE_SECONDS, STARTUP_SECONDS, WIRE, SandboxResult, _children, _kill_group, _pidfd,
    _read_capped, _tail, _terminate, encode_text, ended_how, spawn,
)
from pipeline.sandbox_wire import MAX_FRAME, WireError, decode

CHECKER = Path(__file__).with_name("sandbox_checker.py")  # the warm checker for trusted tests


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


class Session(Channel):
    """One launcher (serve or check mode) with its channel; `close` leaves nothing of it running."""

    def __init__(self, mode: str, work: Path, files: dict[str, bytes], entry: str, cfg: SandboxConfig, namespace: bool):
        work.mkdir()
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        try:
            self.proc = spawn(mode, work, files, cfg, namespace, (to_r, from_w), entry)
        except OSError:
            for fd in (to_r, to_w, from_r, from_w):
                os.close(fd)
            raise
        os.close(to_r)
        os.close(from_w)
        super().__init__(from_r, to_w)
        self.work, self.namespace, self.pinned = work, namespace, []

    def started(self) -> None:
        """At the launcher's `start` line: pin the pid namespace's init (see sandbox_proc._terminate)."""
        if self.namespace:
            self.pinned += [fd for fd in map(_pidfd, _children(self.proc.pid)) if fd is not None]

    def close(self) -> None:
        for fd in (self.rd, self.wr):
            os.close(fd)
        _terminate(self.proc, self.pinned, self.namespace)


class WarmChecker(Channel):
    """A long-lived `python -I -S sandbox_checker.py`: each job is run by a child it forks (trusted
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

    def kill(self) -> None:
        _kill_group(self.proc.pid)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc.wait()


class CheckerPool:
    """Warm checkers shared by the worker threads of one `run_checked` call."""

    def __init__(self):
        self.idle: list[WarmChecker] = []
        self.lock = threading.Lock()

    def take(self) -> WarmChecker:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        return WarmChecker()

    def give(self, checker: WarmChecker, healthy: bool) -> None:
        if healthy and checker.proc.poll() is None:
            with self.lock:
                self.idle.append(checker)
        else:
            checker.kill()

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for c in idle:
            c.kill()


def _relay(code: Session, checker: Channel, entry: str, n_cases: int, cfg: SandboxConfig) -> dict:
    """Carry calls between the checker and the code under test until the checker is done, either side
    ends, a message breaks the protocol, or the sample's time is up. Returns what happened."""
    st = {"outcomes": [], "violation": None, "setup": None, "dead": None, "timed_out": False, "done": False}
    t_spawn = time.monotonic()
    started: dict[str, float] = {}
    ready, pending, queued, clock0 = False, None, None, None

    def deadline() -> float:
        return t_spawn + STARTUP_SECONDS if clock0 is None else clock0 + cfg.timeout + GRACE_SECONDS

    def forward(payload: str) -> None:
        nonlocal pending
        pending = secrets.token_hex(8)
        if not code.send(f"call {pending} {payload}", deadline()):
            st["timed_out"] = True

    def on_code(msg: str) -> None:
        nonlocal ready, pending, queued
        kind, _, rest = msg.partition(" ")
        if kind == "start" and "code" not in started:
            started["code"] = time.monotonic()
            code.started()
        elif kind == "ready" and not ready and "code" in started:
            ready = True
            checker.send(f"go {rest == 'True'}", deadline())
            if queued is not None:
                forward(queued)
                queued = None
        elif kind == "setup" and not ready and "code" in started:
            st["setup"] = "failed: " + str(_literal(rest, "the program's error"))
            st["done"] = True
        elif kind in ("ret", "raise", "error") and pending is not None and rest.startswith(pending + " "):
            body = rest[len(pending) + 1:]
            pending = None
            if kind == "ret":
                try:
                    value = decode(body)
                    if type(value) is not tuple or len(value) != 2 or type(value[1]) is not dict:
                        raise WireError("not a (result, arguments) pair")
                except WireError as e:
                    raise ProtocolError(f"{entry} returned {e}") from None
            elif kind == "error":
                raise ProtocolError(f"{entry} {_literal(body, 'broke the protocol')}")
            checker.send(f"{kind} {body}", deadline())
        else:
            raise ProtocolError(f"the code under test wrote {msg[:60]!r} on the channel out of turn")

    def on_checker(msg: str) -> None:
        nonlocal queued
        kind, _, rest = msg.partition(" ")
        if kind == "start" and "checker" not in started:
            started["checker"] = time.monotonic()
        elif kind == "call" and pending is None and queued is None:
            if ready:
                forward(rest)
            else:
                queued = rest
        elif kind == "result" and len(st["outcomes"]) < n_cases:
            st["outcomes"].append(str(_literal(rest, "failed: unreadable outcome")))
        elif kind == "done":
            bad = _literal(rest, ["the checker's report did not decode"])
            if bad:
                st["violation"] = f"failed: {bad[0]}"
            st["done"] = st["checker_done"] = True
        else:
            raise ProtocolError(f"the checker sent {msg[:60]!r} out of turn")

    try:
        while not st["done"] and not st["timed_out"]:
            if clock0 is None and len(started) == 2:
                clock0 = max(started.values())
            left = deadline() - time.monotonic()
            if left <= 0:
                st["timed_out"] = True
                break
            fds = [c.rd for c in (code, checker) if not c.eof]
            for fd in select.select(fds, [], [], left)[0]:
                side = code if fd == code.rd else checker
                for msg in side.read():
                    if not st["done"]:
                        (on_code if side is code else on_checker)(msg)
                if side.eof and not st["done"]:
                    st["dead"] = ("code" if side is code else "checker", ready, pending is not None)
                    st["done"] = True
    except ProtocolError as e:
        st["violation"] = f"failed: {e}"
    st["seconds"] = time.monotonic() - clock0 if clock0 is not None else 0.0
    return st


def _literal(text: str, default):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return default


def _verdict(st: dict, n_cases: int, cfg: SandboxConfig, code: Session, t0: float) -> SandboxResult:
    seconds = time.perf_counter() - t0
    stdout = _read_capped(code.work / "stdout", cfg.output_kb * 1024).decode("utf-8", errors="replace")
    outcomes = st["outcomes"]
    cases = tuple(o == "passed" for o in outcomes) + (False,) * (n_cases - len(outcomes))
    if st["violation"]:
        return SandboxResult(False, "failed", st["violation"][:DETAIL_CHARS], seconds, stdout, (False,) * n_cases)
    if st["timed_out"] or st["seconds"] > cfg.timeout:
        return SandboxResult(False, "timeout", "timed out", seconds, stdout, cases)
    if st["setup"]:
        return SandboxResult(False, "failed", st["setup"][:DETAIL_CHARS], seconds, stdout, (False,) * n_cases)
    if st["dead"] is not None:
        side, ready, in_call = st["dead"]
        if side == "checker":
            detail = "failed: the tests ended without their checker's verdict"
        elif not ready:
            detail = f"failed: program ended without the harness's completion record ({ended_how(code.proc)})"
            stderr = _read_capped(code.work / "stderr", 64 * 1024)
            if stderr.strip():
                detail += "; stderr: " + _tail(stderr, DETAIL_CHARS // 2)
        else:
            detail = f"failed: the code under test ended {'during a call' if in_call else 'between calls'} " \
                     f"({ended_how(code.proc)})"
        return SandboxResult(False, "failed", detail[:DETAIL_CHARS], seconds, stdout, cases)
    failed = next((o for o in outcomes if o != "passed"), None)
    if failed is None and len(outcomes) < n_cases:
        failed = "failed: the checker reported fewer outcomes than cases"
    if failed is not None:
        return SandboxResult(False, "failed", failed[:DETAIL_CHARS], seconds, stdout, cases)
    return SandboxResult(True, "passed", "passed", seconds, stdout, cases)


def check_one(program, cfg: SandboxConfig, namespace: bool, pool: CheckerPool) -> SandboxResult:
    """One GuardedProgram (`setup`, `entry_point`, `tests` as str or tuple of cases, `context`,
    `trusted`) checked in one sandbox session and one checker."""
    t0 = time.perf_counter()
    entry = program.entry_point
    if not entry.isidentifier():
        return SandboxResult(False, "error", f"entry point {entry[:80]!r} is not an identifier", 0.0)
    cases = (program.tests,) if isinstance(program.tests, str) else tuple(program.tests)
    texts = [encode_text(x) for x in (program.setup, program.context, repr(list(cases)))]
    if None in texts:
        return SandboxResult(False, "error", "program is not valid UTF-8 text (surrogates not allowed)", 0.0)
    setup, context, cases_text = texts
    with tempfile.TemporaryDirectory(prefix="sandbox-") as tmp:
        try:
            code = Session("serve", Path(tmp) / "code", {"program": setup}, entry, cfg, namespace)
        except OSError as e:
            return SandboxResult(False, "error", f"could not start the sandbox: {e}", time.perf_counter() - t0)
        checker: Channel | None = None
        st = None
        try:
            if program.trusted:
                checker = pool.take()
                if not checker.job(program.context, entry, cases, time.monotonic() + STARTUP_SECONDS):
                    raise OSError("the warm checker did not take the job")
            else:
                checker = Session("check", Path(tmp) / "checker", {"context": context, "cases": cases_text},
                                  entry, cfg, namespace)
            st = _relay(code, checker, entry, len(cases), cfg)
        except OSError as e:
            return SandboxResult(False, "error", f"could not start the checker: {e}", time.perf_counter() - t0)
        finally:
            code.close()
            if checker is not None:
                if isinstance(checker, WarmChecker):  # reused only when its child finished cleanly
                    pool.give(checker, bool(st and st.get("checker_done") and not st["timed_out"]))
                else:
                    checker.close()
        return _verdict(st, len(cases), cfg, code, t0)
