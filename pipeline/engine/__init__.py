"""One text-generation interface for every stage: vLLM (default when importable) or HF `generate`,
in this process, as replicas on several device sets, or a running `vllm serve` endpoint.

Prompts are raw strings or chat messages, rendered and tokenized once (pipeline/engine/base.py);
every call is one batch: pass all prompts of a step at once, never one call per item. The engine's
lifetime is scoped: use `with open_engine(...) as eng:` so the accelerator is free again before
training starts (in the loop, `pipeline.lineage.runner.Engines` owns them).

    with open_engine(model_dir, cfg.model, cfg.engine, seed=0) as eng:
        outs = eng.generate([[{"role": "user", "content": "2+2?"}]], GenParams(max_tokens=32))

Which engine serves a model: `engine.endpoint` when that server serves this model dir
(pipeline/engine/endpoint.py); else `parallel.plan` sizes tensor parallelism and replicas
(pipeline/engine/parallel.py): one replica is a local engine (backends.py), more are worker
processes (replicas.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.config import EngineConfig, ModelConfig
from pipeline.engine import parallel
from pipeline.engine.backends import HFEngine, VLLMEngine, local_engine
from pipeline.engine.base import (Engine, EngineError, EngineFactory, GenParams, GenStats, Output, Prompt,
                                  end_of_turn_id, has_cuda, parse_json_object, pick_backend, torch_dtype)
from pipeline.engine.endpoint import EndpointEngine, served_model
from pipeline.engine.replicas import ReplicatedEngine

__all__ = ["Engine", "EngineError", "EngineFactory", "EndpointEngine", "GenParams", "GenStats", "HFEngine", "Output",
           "Prompt", "ReplicatedEngine", "VLLMEngine", "end_of_turn_id", "has_cuda", "open_engine",
           "parse_json_object", "pick_backend", "torch_dtype"]

log = logging.getLogger(__name__)


def open_engine(model_dir: str | Path, model_cfg: ModelConfig, engine_cfg: EngineConfig, seed: int = 0) -> Engine:
    """The engine for a local model dir under `engine_cfg`. Use as a context manager."""
    model_dir = Path(model_dir)
    if engine_cfg.endpoint:
        model_id = served_model(engine_cfg.endpoint, model_dir)
        if model_id is not None:
            return EndpointEngine(model_dir, model_cfg, engine_cfg.endpoint, model_id)
        log.info("engine.endpoint %s does not serve %s: starting a local engine", engine_cfg.endpoint, model_dir)
    plan = parallel.plan(model_dir, engine_cfg)
    if plan.replicas > 1:
        return ReplicatedEngine(model_dir, model_cfg, engine_cfg, seed, plan)
    return local_engine(model_dir, model_cfg, engine_cfg, seed, plan.tensor_parallel_size)
