"""Which devices a sweep job, study lineage or engine replica gets (pipeline/infra/devices.py), and where a
sweep job runs: a fresh child process under any launcher that reuses its workers, devices or not."""

from __future__ import annotations

import os
import threading

import pytest
from omegaconf import open_dict

from pipeline.infra import devices
from pipeline.loop import sweep
from pipeline.config import ConfigError
from pipeline.infra.io import read_json
from tests.support import CONF, ROOT, compose


def test_device_sets_map_through_the_parents_visible_devices(tmp_path):
    assert devices.map_devices("1", "4,5") == "5" and devices.map_devices("0,1", "6, 7") == "6,7"
    assert devices.map_devices("1", None) == "1" and devices.map_devices("1", "") == "1"  # unrestricted
    assert devices.map_devices("0", "GPU-a1b2,GPU-c3d4") == "GPU-a1b2"
    with pytest.raises(RuntimeError, match=r"index 2 .*CUDA_VISIBLE_DEVICES='4,5'"):
        devices.map_devices("2", "4,5")
    env = devices.child_env("1", on_cuda=False, visible="4,5")
    assert env == {"CUDA_VISIBLE_DEVICES": "5", "VLLM_CPU_OMP_THREADS_BIND": devices.cpu_binding("5")}
    # locks are per physical device: a parent on GPUs 5,6 holding its device 0 (GPU 5) keeps a parent
    # on GPUs 4,5 from taking its set 0,1 (GPUs 4,5) until it lets go
    got = threading.Event()

    def claim_4_5():
        with devices.claim_slot(tmp_path, 2, 2, visible="4,5", poll=0.01):
            got.set()

    with devices.claim_slot(tmp_path, 2, 1, visible="5,6", poll=0.01) as slot:
        assert slot == "0"
        t = threading.Thread(target=claim_4_5)
        t.start()
        assert not got.wait(0.3)
    t.join(10)
    assert got.is_set()


def test_under_slurm_the_allocation_is_used_as_given(monkeypatch):
    monkeypatch.delenv(devices.CHILD_ENV, raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert devices.claims_slots(2, 1) and not devices.claims_slots(0, 1) and not devices.claims_slots(2, 0)
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert not devices.claims_slots(8, 1)  # never a slot claim, so never a renumbered CUDA_VISIBLE_DEVICES


def _job_config(tmp_path, *overrides, child_only=()):
    """A sweep job's config and its Hydra runtime config, as Hydra would give them to the job;
    `child_only` overrides reach only a child started for the job (its task overrides)."""
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from pipeline.config.compose import prepare

    args = ["model=tiny:qwen3", "experiment=smoke", f"paths.root={tmp_path}", "candidate.name=j0", *overrides]
    prepare()  # the built-in methods registered, their knobs in the schema
    with initialize_config_dir(str(CONF), version_base=None):
        hc = hcompose("config", args, return_hydra_config=True)
    with open_dict(hc):
        hc.hydra.runtime.output_dir = str(tmp_path / "job0")
        hc.hydra.overrides.task = [a for a in args if not a.startswith("hydra")] + list(child_only)
    HydraConfig.instance().set_config(hc)
    return compose([a for a in args if not a.startswith("hydra")])


def test_sweep_job_under_a_restricted_parent_runs_on_the_parents_devices(tmp_path, monkeypatch):
    """CUDA_VISIBLE_DEVICES=4,5 in the parent, two fake device sets: the job's child gets GPU 4 or 5."""
    seen = []
    monkeypatch.setattr(sweep, "run_child", lambda overrides, name, out, env: seen.append(env) or {"value": 1.0})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    monkeypatch.delenv(devices.CHILD_ENV, raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    cfg = _job_config(tmp_path, "candidate.devices=2", "candidate.gpus=1")
    with devices.claim_slot(tmp_path / ".gpu_slots", 2, 1, visible="4,5"):  # another job holds GPU 4
        assert sweep.job(cfg) == 1.0
    assert seen == [devices.child_env("1", on_cuda=False, visible="4,5")] and seen[0]["CUDA_VISIBLE_DEVICES"] == "5"


def test_worker_sharing_launchers_run_each_job_in_a_fresh_child_and_slurm_refuses_them(tmp_path, monkeypatch):
    """Under joblib without devices the job really starts a fresh child (`python -m pipeline.loop`,
    a single run), whose candidate starts a process the way vLLM starts its engine: in a reused loky
    worker that dies with "cannot find context for 'loky'", in the child it works."""
    assert sweep.shares_workers("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher")
    assert not sweep.shares_workers("hydra._internal.core_plugins.basic_launcher.BasicLauncher")
    assert not sweep.shares_workers("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher")
    monkeypatch.delenv(devices.CHILD_ENV, raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    cfg = _job_config(tmp_path, "candidate.devices=0", "candidate.hparams.learning_rate=0.001", "hydra/launcher=joblib",
                      child_only=["plugins=[tests.plugins.spawning_candidate]"])
    assert sweep.job(cfg) == 0.001
    info = read_json(tmp_path / "job0" / "candidate.json")
    assert info["child"] == "1" and info["pid"] != os.getpid() and info["candidate"] == "gen_001-j0"
    assert info["devices"] == os.environ.get("CUDA_VISIBLE_DEVICES")  # no devices: what the parent sees
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with pytest.raises(ConfigError, match=r"'hydra/launcher'.*inside SLURM job 42.*hydra/launcher=slurm"):
        sweep.job(cfg)
