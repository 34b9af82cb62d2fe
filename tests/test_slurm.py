"""Sweeps as SLURM jobs, through a real one-node SLURM cluster (tests/slurm_cluster.py: munged, slurmdbd
on MariaDB, slurmctld, slurmd) and Hydra's submitit launcher (`hydra/launcher=slurm_cpu`): each sweep
job is its own SLURM job, seen in `sacct`; a job cancelled with `scancel` fails the multirun and the
same command resumes it; `promote --sweep` picks one; a study runs one SLURM job per lineage. Skips without root or the
packages (make setup-slurm)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pipeline.infra.io import read_json
from pipeline.lineage import Lineage
from tests.support import ROOT, promote_two_job_sweep

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the slurm extra: pip install -e '.[slurm]'")

SMOKE = ["model=tiny:qwen3", "experiment=smoke", "engine.backend=hf", "train.max_steps=2", "train.save_steps=2"]


def _finished(cluster, ids: set[str], states: set[str]) -> dict:
    """sacct rows of `ids` once each is in one of `states` (slurmctld reports a job's end to slurmdbd
    asynchronously: accounting gets a minute)."""
    for _ in range(60):
        rows = {r["JobIDRaw"]: r for r in cluster.sacct("-j", ",".join(sorted(ids)))}
        if set(rows) == ids and all(r["State"].split()[0] in states for r in rows.values()):
            return rows
        time.sleep(1)
    raise AssertionError(f"jobs {sorted(ids)} not in {states}: {rows}")


def _squeue() -> list[str]:
    """Pending and running jobs of this cluster, an array task as `<array id>_<index>`."""
    res = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, check=True)
    return res.stdout.split()


@pytest.mark.slow
def test_sweep_of_two_slurm_jobs_one_cancelled_then_rerun_and_promote(slurm_cluster, tmp_path):
    """A 2-job sweep through `hydra/launcher=slurm_cpu`: job 0 is cancelled with `scancel` while its
    training phase runs, which fails the multirun; job 1 runs to its end uninterrupted. Re-running the
    same command with the same `hydra.sweep.dir` resumes job 0 from its manifests: both candidates end
    with the same stages, each trained inside its own SLURM job (seen in `sacct`), and
    `promote --sweep` picks one."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "pipeline.loop", "-m", "sweep=smoke", *SMOKE, f"paths.root={tmp_path}",
           "hydra/launcher=slurm_cpu", f"hydra.sweep.dir={sweep_dir}"]
    lin_path = tmp_path / "default"
    t0 = time.time()
    log = tmp_path / "first.log"
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        phase = lin_path / "gen_001-j0" / "train" / "sft"
        while not phase.exists():  # job 0's training phase has started
            assert first.poll() is None, log.read_text()[-4000:] + slurm_cluster.logs()
            assert time.time() - t0 < 1200, "job 0 never started training"
            time.sleep(0.2)
        (victim,) = [task for task in _squeue() if task.endswith("_0")]  # Hydra's job 0: array task 0
        subprocess.run(["scancel", victim], check=True)  # SIGTERM, then SIGKILL after KillWait
        assert not (lin_path / "gen_001-j0" / "train" / "manifest.json").exists()  # cancelled mid-training
        first.wait(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode != 0, log.read_text()[-4000:]  # a cancelled job fails the multirun
    while _squeue():  # the user re-runs once the other job is done
        time.sleep(1)
    for _ in range(60):  # accounting learns of the cancellation asynchronously
        (row,) = [r for r in slurm_cluster.sacct("-j", victim) if r["JobID"] == victim]
        if row["State"].startswith("CANCELLED"):
            break
        time.sleep(1)
    assert row["State"].startswith("CANCELLED"), row
    assert not (lin_path / "gen_001-j0" / "gate" / "manifest.json").exists()

    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    print(f"sweep through SLURM, one job cancelled and re-run: {time.time() - t0:.0f} s")
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:] + slurm_cluster.logs()
    lin = Lineage(tmp_path, "default")
    jobs = [read_json(p) for p in sorted(sweep_dir.rglob("candidate.json"))]
    assert sorted(j["candidate"] for j in jobs) == ["gen_001-j0", "gen_001-j1"]
    # each candidate trained inside its own SLURM job, recorded by accounting
    ids = {j["slurm_job"] for j in jobs}
    assert len(ids) == 2 and None not in ids
    rows = _finished(slurm_cluster, ids, {"COMPLETED"})
    assert all(r["JobName"] == "generation" for r in rows.values())  # submitit names them after the Hydra job
    # the re-run finished the cancelled job with the same stages as the uninterrupted one
    stages = {c: sorted(p.parent.name for p in (lin_path / c).glob("*/manifest.json")) for c in ("gen_001-j0", "gen_001-j1")}
    assert stages["gen_001-j0"] == stages["gen_001-j1"] and {"train", "eval", "gate"} <= set(stages["gen_001-j1"])
    assert {r["name"] for r in lin.rows()} >= {"gen_001-j0", "gen_001-j1"}

    promote_two_job_sweep(lin, sweep_dir, tmp_path, env)


@pytest.mark.slow
def test_study_of_two_seeds_as_two_slurm_jobs(slurm_cluster, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    res = subprocess.run([sys.executable, "-m", "pipeline.loop.study", "study=seeds", "study.seeds=[0,1]",
                          "study.slurm={timeout_min: 60, mem_gb: 2, cpus_per_task: 1}", *SMOKE,
                          f"paths.root={tmp_path}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=1500)
    print(f"study through SLURM: {time.time() - t0:.0f} s")
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:] + slurm_cluster.logs()
    rec = read_json(tmp_path / "studies" / "seeds" / "study.json")
    lineages = rec["lineages"]
    assert [m["status"] for m in lineages] == ["done", "done"]
    ids = {m["slurm_job"] for m in lineages}
    assert len(ids) == 2 and None not in ids
    _finished(slurm_cluster, ids, {"COMPLETED"})
    for m in lineages:  # each lineage really ran its generations in its job
        assert {r["name"] for r in Lineage(tmp_path / "studies" / "seeds", m["lineage"]).rows()} >= {"gen_000", "gen_001"}


def test_study_refuses_an_unknown_slurm_parameter(tmp_path, models_dir):
    """Checked when the executor is configured, before any job is submitted (no cluster needed)."""
    from pipeline.loop import study
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="study.slurm.*bogus"):
        study.run(["study=seeds", "study.seeds=[0]", "study.slurm={bogus: 1}", *SMOKE,
                   f"paths.root={tmp_path}", f"paths.models={models_dir}"])
