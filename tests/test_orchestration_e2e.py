"""Crash safety and sweeps, through the real CLI: kill -9 during training and resume; a second run on
the same lineage is refused; a sweep of two tiny jobs runs on CPU and promote picks one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.infra.io import read_json
from pipeline.lineage import Lineage
from pipeline.lineage.runner import read_manifest
from tests.support import ROOT, promote_two_job_sweep

SMOKE = ["model=tiny:qwen3", "experiment=smoke", "engine.backend=hf"]


def cli(tmp: Path, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    flags = [a for a in args if a.startswith("-")]  # Hydra's flags (e.g. -m) come before overrides
    overrides = [a for a in args if not a.startswith("-")]
    return subprocess.Popen([sys.executable, "-m", "pipeline.loop", *flags, *SMOKE, f"paths.root={tmp}",
                             *overrides],
                            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def wait_for(pred, timeout: float, proc: subprocess.Popen) -> None:
    t0 = time.time()
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"process ended early:\n{proc.stdout.read()[-3000:]}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.2)


@pytest.mark.slow
def test_kill_during_training_then_resume(tmp_path):
    lin = Lineage(tmp_path, "default")
    proc = cli(tmp_path, "generations=1", "train.max_steps=12", "train.save_steps=2", start_new_session=True)
    # wait until training has written a checkpoint, then kill -9 the whole run
    wait_for(lambda: any((lin.path / "gen_001" / "train").rglob("checkpoint-*")), 600, proc)
    # meanwhile a second run on the same lineage is refused with a clear message
    second = cli(tmp_path, "generations=1")
    out, _ = second.communicate(timeout=300)
    assert second.returncode != 0 and "is in use by pid" in out
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not lin.gen(1).is_done("train")
    done_before = {p.parent.name for p in (lin.path / "gen_001").glob("*/manifest.json")}
    assert {"propose", "synth"} <= done_before

    again = cli(tmp_path, "generations=1", "train.max_steps=12", "train.save_steps=2")
    out, _ = again.communicate(timeout=900)
    assert again.returncode == 0, out[-3000:]
    rows = lin.rows()
    assert [r["name"] for r in rows] == ["gen_000", "gen_001"]  # no duplicate rows
    assert rows[1]["status"] in ("promoted", "rejected")
    info = read_manifest(lin.gen(1), "train").info
    assert info["resumed_from"]["sft"]  # training continued from its checkpoint, not from scratch
    assert not (lin.path / "LOCK").exists()


@pytest.mark.slow
def test_sweep_of_two_jobs_and_promote(tmp_path):
    """The GPU node's path on CPU: the joblib launcher runs both jobs at once, each in a fresh child
    process on its own (fake) device set, then promote picks one."""
    proc = cli(tmp_path, "-m", "sweep=smoke", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "candidate.devices=2")
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 0, out[-3000:]
    lin = Lineage(tmp_path, "default")
    sweeps = list((lin.path / "sweeps").iterdir())
    assert len(sweeps) == 1
    jobs = [read_json(p) for p in sorted(sweeps[0].rglob("candidate.json"))]
    assert sorted(j["devices"] for j in jobs) == ["0", "1"]  # disjoint device sets
    assert len({j["pid"] for j in jobs}) == 2 and max(j["started"] for j in jobs) < min(j["finished"] for j in jobs)
    assert sorted(j["candidate"] for j in jobs) == ["gen_001-j0", "gen_001-j1"]
    names = {r["name"] for r in lin.rows()}
    assert {"gen_000", "gen_001", "gen_001-j0", "gen_001-j1"} <= names
    # both candidates trained on the same shared data with their own learning rates
    lrs = {read_manifest(lin.gen_by_name(f"gen_001-j{i}"), "train").info["hparams"]["learning_rate"]
           for i in (0, 1)}
    assert lrs == {1e-4, 1e-3}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    promote_two_job_sweep(lin, sweeps[0], tmp_path, env)
