"""Test plugin for the sweep dispatch tests (tests/test_devices.py): a candidate that only starts a
process the way vLLM starts its engine, instead of training.

    python -m pipeline.loop -m sweep=smoke plugins=[tests.plugins.spawning_candidate] ...

vLLM starts its engine core through multiprocessing's spawn context. In a reused joblib (loky)
worker the spawned process inherits the start method 'loky' and dies with "cannot find context for
'loky'", the failure a sweep job must never meet; in a fresh child process the spawn works. The
candidate's info says which process ran it and on which devices. Tests only: never in a real config.
"""

from __future__ import annotations

import multiprocessing as mp
import os

from pipeline.infra import devices
from pipeline.loop import sweep


def _spawn_like_vllm(cfg, lineage) -> dict:
    proc = mp.get_context("spawn").Process(target=os.getpid)
    proc.start()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"a spawned process exited with {proc.exitcode} in a {mp.get_start_method()} process")
    return {"value": float(cfg.candidate.hparams.learning_rate), "candidate": f"gen_001-{cfg.candidate.name}",
            "start_method": mp.get_start_method(), "child": os.environ.get(devices.CHILD_ENV)}


sweep.train_job = _spawn_like_vllm
