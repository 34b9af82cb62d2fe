"""Sweep jobs: each Hydra multirun job trains one candidate successor of the same teacher.

    make sweep SWEEP=lr_rank              # = python -m pipeline.generation -m +sweep=lr_rank experiment=...
    python -m pipeline.promote --sweep checkpoints/<lineage>/sweeps/<time>

A job (`candidate.name` set, see conf/sweep/) shares the generation's propose and synth stages with
the other jobs and trains only its own candidate, `gen_NNN-<name>/`. On a GPU node every job gets a
distinct device set: the job claims a free slot of `candidate.gpus` GPUs (a lock file per slot, held
for the job's life) and runs the candidate in a fresh child process with CUDA_VISIBLE_DEVICES set,
because launcher workers can be reused (joblib) and CUDA must not be initialised before the devices
are chosen. Without CUDA the job runs in-process, so the same sweep runs sequentially on a CPU machine.
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
from pipeline.io import atomic_write_json, read_json
from pipeline.promote import CANDIDATE_FILE

log = logging.getLogger(__name__)
CHILD_ENV = "PIPELINE_SWEEP_CHILD"


def device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


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
    n = device_count()
    if n and cfg.candidate.gpus and not os.environ.get(CHILD_ENV):
        with claim_slot(Path(cfg.paths.root) / ".gpu_slots", n, cfg.candidate.gpus) as devices:
            log.info("sweep job %s on GPUs %s", cfg.candidate.name, devices)
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": devices, CHILD_ENV: "1"}
            cmd = [sys.executable, "-m", "pipeline.generation", *hc.overrides.task, f"hydra.run.dir={out}"]
            subprocess.run(cmd, env=env, check=True)
        info = read_json(out / CANDIDATE_FILE)
    else:
        info = run_candidate(cfg, Lineage(cfg.paths.root, cfg.paths.lineage))
        atomic_write_json(out / CANDIDATE_FILE, info)
    return info["value"]
