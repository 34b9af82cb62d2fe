"""Start the training worker: a child process (one GPU or CPU) or one process per GPU.

    train.num_gpus=1                     python -m pipeline.train <job.json>
    train.num_gpus=8                     python -m accelerate.commands.launch --config_file conf/accelerate/ddp.yaml
                                           --num_processes 8 --main_process_port <free> -m pipeline.train <job.json>
    train.num_gpus=2 train.launcher=torchrun
                                         python -m torch.distributed.run --standalone --nproc_per_node 2
                                           -m pipeline.train <job.json>      (also gloo DDP on CPU)

A child process gives every byte of accelerator memory back to the OS when it exits, so the next
stage's vLLM engine never competes with a trainer that has not been garbage-collected.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path

from pipeline.config import TrainConfig

ACCELERATE_DIR = Path(__file__).resolve().parents[2] / "conf" / "accelerate"


class LaunchError(RuntimeError):
    pass


def accelerate_config_path(name: str) -> Path:
    """`ddp` / `fsdp` name files under conf/accelerate/; anything with a slash or .yaml is a path."""
    p = Path(name) if ("/" in name or name.endswith((".yaml", ".yml"))) else ACCELERATE_DIR / f"{name}.yaml"
    if not p.is_file():
        known = sorted(x.stem for x in ACCELERATE_DIR.glob("*.yaml"))
        raise LaunchError(f"train.accelerate_config={name!r}: {p} does not exist (known: {known})")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_command(job_path: Path, t: TrainConfig, port: int | None = None) -> list[str]:
    """The argv that runs the worker for `job_path` with `t.num_gpus` processes."""
    worker = ["-m", "pipeline.train", str(job_path)]
    if t.num_gpus == 1:
        return [sys.executable, *worker]
    if t.launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(t.num_gpus), *worker]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config_path(t.accelerate_config)),
            "--num_processes", str(t.num_gpus), "--num_machines", "1",
            "--main_process_port", str(port or free_port()), *worker]


def run_worker(job_path: Path, t: TrainConfig, log_path: Path) -> None:
    """Run the worker command, teeing its output to `log_path`; a failure names the log and its tail."""
    cmd = worker_command(job_path, t)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    tail: deque[str] = deque(maxlen=30)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=root)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            sys.stderr.write(line)
            tail.append(line)
        rc = proc.wait()
    if rc != 0:
        raise LaunchError(f"training worker failed with exit code {rc} (full log: {log_path}):\n{''.join(tail)}")
