"""How a model's engines use a node: tensor-parallel size, replicas, and each replica's device set.

vLLM shards attention by KV head, so `tensor_parallel_size` must divide the model's KV-head count
(`num_key_value_heads` in config.json: 8 for Qwen3-1.7B, so 3, 5, 6 or 7 GPUs cannot all be one
engine). `auto` picks the smallest divisor whose weight shard leaves room for a KV cache on one GPU
(a 1.7B model: 1 on any current GPU); smaller tensor parallelism means less all-reduce traffic, and
the GPUs left over serve replicas, which scale throughput linearly because prompts are independent.
vLLM's offline `LLM` refuses data_parallel_size > 1, so replicas are separate engine processes
(pipeline/engine/replicas.py), one per device set.

    python -c "from pipeline.engine import parallel; print(parallel.choose_tp(8, 3.4e9, 80e9, 0.85, 6, 0))"
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import ConfigError, EngineConfig
from pipeline.infra import devices

log = logging.getLogger(__name__)

# The weights may take at most this share of a device's usable memory (gpu_memory_utilization x
# total); the rest is KV cache and activations. Half keeps a cache large enough for vLLM's batch of
# hundreds of sequences, which is where its throughput comes from; less makes a slow engine.
WEIGHT_SHARE = 0.5
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


@dataclass(frozen=True)
class Plan:
    """What open_engine starts for one model."""

    tensor_parallel_size: int
    replicas: int
    device_sets: tuple[str, ...]  # CUDA_VISIBLE_DEVICES of each replica; () when there is one engine
    on_cuda: bool


def kv_heads(model_dir: Path) -> int:
    """`num_key_value_heads` from the model's config.json (a multimodal config's `text_config` too);
    models without grouped-query attention have as many KV heads as attention heads."""
    path = Path(model_dir) / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {path} to size engine.tensor_parallel_size: {e}") from None
    for c in (cfg, cfg.get("text_config") or {}):
        heads = c.get("num_key_value_heads") or c.get("num_attention_heads")
        if heads:
            return int(heads)
    raise ConfigError(f"{path} has neither num_key_value_heads nor num_attention_heads; set engine.tensor_parallel_size")


def weight_bytes(model_dir: Path) -> int:
    """Bytes of the weight files (as stored; close enough to their size in memory for sizing)."""
    return sum(p.stat().st_size for p in Path(model_dir).iterdir() if p.name.endswith(WEIGHT_SUFFIXES))


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def choose_tp(heads: int, weights: float, device_bytes: float, utilization: float, n_devices: int,
              requested: int) -> int:
    """The tensor-parallel size for a model with `heads` KV heads and `weights` bytes of weights on
    `n_devices` GPUs of `device_bytes` each (0 devices or 0 bytes: CPU, where one engine per fake
    device set is the point). `requested` 0 is auto."""
    if requested:
        if heads % requested:
            raise ConfigError(
                f"invalid config value for 'engine.tensor_parallel_size': {requested} does not divide the model's "
                f"{heads} KV heads (valid: {divisors(heads)}; auto picks one)")
        if n_devices and requested > n_devices:
            raise ConfigError(
                f"invalid config value for 'engine.tensor_parallel_size': {requested} but only {n_devices} device(s)")
        return requested
    if n_devices <= 1 or not device_bytes:
        return 1
    fitting = [d for d in divisors(heads) if d <= n_devices]
    budget = WEIGHT_SHARE * device_bytes * utilization
    for d in fitting:
        if weights / d <= budget:
            return d
    log.warning("model weights (%.1f GB) leave little KV cache even at tensor_parallel_size=%d on %d device(s)",
                weights / 1e9, fitting[-1], n_devices)
    return fitting[-1]


def choose_replicas(n_devices: int, tp: int, requested: int) -> int:
    """Engine processes for `n_devices` device sets at `tp` devices each; `requested` 0 is auto."""
    most = max(1, n_devices // tp)
    if requested > most:
        raise ConfigError(f"invalid config value for 'engine.replicas': {requested} replicas of "
                          f"tensor_parallel_size={tp} need {requested * tp} devices, {n_devices} available")
    return requested or most


def device_sets(replicas: int, tp: int) -> tuple[str, ...]:
    """CUDA_VISIBLE_DEVICES per replica: replica i gets devices i*tp .. i*tp+tp-1 (the device slots of
    pipeline.infra.devices, mapped through the visible devices when each replica starts)."""
    return tuple(devices.slot_devices(i, tp) for i in range(replicas))


def visible_devices(cfg: EngineConfig) -> tuple[int, int]:
    """(device count, bytes per device): `engine.devices` fake sets on CPU (0 bytes), else CUDA's."""
    import torch

    if cfg.devices >= 0 and not torch.cuda.is_available():
        return cfg.devices, 0
    if not torch.cuda.is_available():
        return 0, 0
    n = torch.cuda.device_count() if cfg.devices < 0 else min(cfg.devices, torch.cuda.device_count())
    return n, torch.cuda.get_device_properties(0).total_memory if n > 1 else 0


def plan(model_dir: Path, cfg: EngineConfig) -> Plan:
    """Size the engines for `model_dir` under `cfg`; a tensor_parallel_size the model cannot take is a
    ConfigError naming the key (the loop calls this where it resolves the model, before any write)."""
    import torch

    n, mem = visible_devices(cfg)
    tp = choose_tp(kv_heads(model_dir), weight_bytes(model_dir), mem, cfg.gpu_memory_utilization, n,
                   cfg.requested_tp())
    replicas = choose_replicas(n, tp, cfg.requested_replicas())
    return Plan(tp, replicas, device_sets(replicas, tp) if replicas > 1 else (), torch.cuda.is_available())
