"""Sweeps as SLURM jobs, through a real one-node SLURM cluster (tests/slurm_cluster.py: munged, slurmdbd
on MariaDB, slurmctld, slurmd) and Hydra's submitit launcher (`hydra/launcher=slurm_cpu`): each sweep
job is its own SLURM job, seen in `sacct`, and `promote --sweep` picks one. Skips without root or the
packages (make setup-slurm)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pipeline.io import read_json
from pipeline.lineage import Lineage
from tests.conftest import ROOT, promote_two_job_sweep

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the slurm extra: pip install -e '.[slurm]'")

SMOKE = ["model=tiny:qwen3", "experiment=smoke", "engine.backend=hf", "train.max_steps=2", "train.save_steps=2"]


@pytest.mark.slow
def test_sweep_of_two_slurm_jobs_and_promote(slurm_cluster, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    res = subprocess.run([sys.executable, "-m", "pipeline.generation", "-m", "sweep=smoke", *SMOKE,
                          f"paths.root={tmp_path}", "hydra/launcher=slurm_cpu"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    print(f"sweep through SLURM: {time.time() - t0:.0f} s")
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:] + slurm_cluster.logs()
    lin = Lineage(tmp_path, "default")
    (sweep_dir,) = list((lin.path / "sweeps").iterdir())
    jobs = [read_json(p) for p in sorted(sweep_dir.rglob("candidate.json"))]
    assert sorted(j["candidate"] for j in jobs) == ["gen_001-j0", "gen_001-j1"]
    # two candidates, each trained inside its own SLURM job, both recorded by accounting
    ids = {j["slurm_job"] for j in jobs}
    assert len(ids) == 2 and None not in ids
    # (slurmctld reports a job's end to slurmdbd asynchronously: give accounting a few seconds)
    for _ in range(60):
        rows = {r["JobIDRaw"]: r for r in slurm_cluster.sacct("-j", ",".join(sorted(ids)))}
        if set(rows) == ids and {r["State"] for r in rows.values()} == {"COMPLETED"}:
            break
        time.sleep(1)
    assert set(rows) == ids and {r["State"] for r in rows.values()} == {"COMPLETED"}, rows
    assert all(r["JobName"] == "generation" for r in rows.values())  # submitit names them after the Hydra job
    assert {r["name"] for r in lin.rows()} >= {"gen_001-j0", "gen_001-j1"}

    promote_two_job_sweep(lin, sweep_dir, tmp_path, env)


@pytest.mark.slow
def test_study_of_two_seeds_as_two_slurm_jobs(slurm_cluster, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    res = subprocess.run([sys.executable, "-m", "pipeline.study", "study=seeds", "study.seeds=[0,1]",
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
    for _ in range(60):  # accounting learns of a job's end asynchronously
        rows = {r["JobIDRaw"]: r for r in slurm_cluster.sacct("-j", ",".join(sorted(ids)))}
        if set(rows) == ids and {r["State"] for r in rows.values()} == {"COMPLETED"}:
            break
        time.sleep(1)
    assert set(rows) == ids and {r["State"] for r in rows.values()} == {"COMPLETED"}, rows
    for m in lineages:  # each lineage really ran its generations in its job
        assert {r["name"] for r in Lineage(tmp_path / "studies" / "seeds", m["lineage"]).rows()} >= {"gen_000", "gen_001"}


def test_study_refuses_an_unknown_slurm_parameter(tmp_path, models_dir):
    """Checked when the executor is configured, before any job is submitted (no cluster needed)."""
    from pipeline import study
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="study.slurm.*bogus"):
        study.run(["study=seeds", "study.seeds=[0]", "study.slurm={bogus: 1}", *SMOKE,
                   f"paths.root={tmp_path}", f"paths.models={models_dir}"])
