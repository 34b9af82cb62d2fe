"""Typed schemas for the Hydra config under `conf/`.

Every value lives in YAML (`conf/`); these dataclasses only say what keys exist, their types, and
which values are valid (each schema's `validate()`, run by `to_config` after it turns the composed
DictConfig into objects). Library code receives these objects, never raw dicts. A typo in an override fails at
compose time naming the key; an invalid value fails in `to_config` naming the key.

Fields marked `MISSING` must come from YAML, so no default is repeated in Python.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key."""


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config value for '{key}': {msg}")


@dataclass
class ModelConfig:
    """Which model is gen 0 (the base), and how to load it. `spec` is `auto`, a hub id, a local
    path, `embedded:smollm2-135m-instruct`, `tiny:qwen3` or `tiny:llama` (see pipeline.models)."""

    spec: str = MISSING
    dtype: str = MISSING  # auto | float32 | bfloat16 | float16 (auto: bf16 on GPU, fp32 on CPU)
    max_model_len: int = MISSING
    chat_template_kwargs: Dict[str, Any] = field(default_factory=dict)  # e.g. Qwen3 enable_thinking

    def validate(self) -> None:
        _check(bool(self.spec), "model.spec", "must not be empty")
        _check(self.dtype in ("auto", "float32", "bfloat16", "float16"), "model.dtype", f"unknown dtype {self.dtype!r}")
        _check(self.max_model_len > 0, "model.max_model_len", "must be > 0")


@dataclass
class EngineConfig:
    """Text generation backend (pipeline.engine)."""

    backend: str = MISSING  # auto | vllm | hf  (auto: vllm when importable)
    cpu_kv_cache_gb: float = MISSING  # VLLM_CPU_KVCACHE_SPACE on CPU machines
    gpu_memory_utilization: float = MISSING
    tensor_parallel_size: int = MISSING
    data_parallel_size: int = MISSING
    enforce_eager: bool = MISSING
    max_num_seqs: int = MISSING
    hf_batch_size: int = MISSING  # prompts per HF generate() call

    def validate(self) -> None:
        _check(self.backend in ("auto", "vllm", "hf"), "engine.backend", f"{self.backend!r} is not auto|vllm|hf")
        _check(0 < self.gpu_memory_utilization <= 1, "engine.gpu_memory_utilization", "must be in (0, 1]")
        _check(self.tensor_parallel_size >= 1, "engine.tensor_parallel_size", "must be >= 1")
        _check(self.data_parallel_size >= 1, "engine.data_parallel_size", "must be >= 1")
        _check(self.hf_batch_size >= 1, "engine.hf_batch_size", "must be >= 1")
        _check(self.cpu_kv_cache_gb > 0, "engine.cpu_kv_cache_gb", "must be > 0")


@dataclass
class PathsConfig:
    root: str = MISSING  # where lineages live (default: ./checkpoints)
    lineage: str = MISSING  # lineage name: checkpoints/<lineage>/
    models: str = MISSING  # cache of provisioned models (embedded/tiny/hub copies)

    def validate(self) -> None:
        _check(bool(self.lineage) and "/" not in self.lineage, "paths.lineage", "must be a plain directory name")


@dataclass
class Range:
    low: float = MISSING
    high: float = MISSING


@dataclass
class HParams:
    """What the teacher proposes for its successor's training (pipeline.propose validates it)."""

    learning_rate: float = MISSING
    epochs: float = MISSING
    lora_r: int = MISSING  # 0 means full fine-tuning
    lora_alpha: int = MISSING
    lora_dropout: float = MISSING
    batch_size: int = MISSING  # effective (per device x accumulation x devices)
    max_seq_length: int = MISSING
    warmup_ratio: float = MISSING
    num_examples: int = MISSING  # training examples to draw from the accumulated pool
    math_fraction: float = MISSING  # share of math vs code examples
    synth_temperature: float = MISSING  # sampling temperature for the next synthesis


@dataclass
class SearchSpace:
    learning_rate: Range = field(default_factory=Range)
    epochs: Range = field(default_factory=Range)
    lora_r: List[int] = field(default_factory=list)  # allowed choices
    lora_alpha: Range = field(default_factory=Range)
    lora_dropout: Range = field(default_factory=Range)
    batch_size: List[int] = field(default_factory=list)
    max_seq_length: List[int] = field(default_factory=list)
    warmup_ratio: Range = field(default_factory=Range)
    num_examples: Range = field(default_factory=Range)
    math_fraction: Range = field(default_factory=Range)
    synth_temperature: Range = field(default_factory=Range)


@dataclass
class ProposeConfig:
    enabled: bool = MISSING  # false: use `hparams` as-is (recorded as source=config)
    candidates: int = MISSING
    max_tokens: int = MISSING
    temperature: float = MISSING
    retries: int = MISSING  # re-asks when the HF backend returns unparseable text
    hparams: HParams = field(default_factory=HParams)  # the fallback, and what is used when disabled
    space: SearchSpace = field(default_factory=SearchSpace)

    def validate(self) -> None:
        _check(self.candidates >= 1, "propose.candidates", "must be >= 1")
        _check(self.retries >= 0, "propose.retries", "must be >= 0")


@dataclass
class MathSynthConfig:
    n_problems: int = MISSING  # candidate problems the teacher writes
    few_shot: int = MISSING  # exemplars from GSM8K train per problem-writing prompt
    k_solutions: int = MISSING  # solutions sampled per problem (self-consistency)
    agreement_threshold: float = MISSING  # majority share needed to keep a problem
    max_solutions_per_problem: int = MISSING  # m distinct correct solutions kept (RFT)
    max_tokens_problem: int = MISSING
    max_tokens_solution: int = MISSING
    problem_temperature: float = MISSING

    def validate(self) -> None:
        _check(self.n_problems >= 0, "synth.math.n_problems", "must be >= 0")
        _check(self.k_solutions >= 1, "synth.math.k_solutions", "must be >= 1")
        _check(0 < self.agreement_threshold <= 1, "synth.math.agreement_threshold", "must be in (0, 1]")


@dataclass
class SynthConfig:
    math: MathSynthConfig = field(default_factory=MathSynthConfig)
    accumulate: bool = MISSING  # keep earlier generations' verified data (Gerstgrasser et al. 2024)
    val_fraction: float = MISSING  # share of verified data held out as synthetic validation
    decontam_ngram: int = MISSING

    def validate(self) -> None:
        _check(0 <= self.val_fraction < 1, "synth.val_fraction", "must be in [0, 1)")
        _check(self.decontam_ngram >= 3, "synth.decontam_ngram", "must be >= 3")


@dataclass
class TrainConfig:
    init_from: str = MISSING  # base | teacher
    per_device_batch_size: int = MISSING
    max_steps: int = MISSING  # -1: from epochs; >0 caps the run (CPU budgets)
    logging_steps: int = MISSING
    save_steps: int = MISSING
    seed: int = MISSING
    report_to: str = MISSING  # tensorboard | wandb | mlflow | none
    lora_target_modules: str = MISSING  # e.g. all-linear
    gradient_checkpointing: bool = MISSING

    def validate(self) -> None:
        _check(self.init_from in ("base", "teacher"), "train.init_from", f"{self.init_from!r} is not base|teacher")
        _check(self.per_device_batch_size >= 1, "train.per_device_batch_size", "must be >= 1")
        _check(self.save_steps >= 1, "train.save_steps", "must be >= 1")


@dataclass
class EvalTask:
    """One declarative eval spec (lm-eval style). Its `version` goes into every result."""

    benchmark: str = MISSING  # gsm8k | humaneval
    split: str = MISSING  # test (reported) | validation (used by the gate)
    version: str = MISSING
    n: int = MISSING  # subset size (0 = all); same subset across a lineage
    seed: int = MISSING
    prompt: str = MISSING  # chat (zero-shot) | few_shot
    few_shot: int = MISSING
    max_tokens: int = MISSING
    stop: List[str] = field(default_factory=list)
    n_samples: int = MISSING  # 1 + temperature 0 = greedy pass@1
    temperature: float = MISSING
    k: List[int] = field(default_factory=list)  # pass@k to report (humaneval)

    def validate(self) -> None:
        _check(self.benchmark in ("gsm8k", "humaneval"), "eval.tasks.*.benchmark", f"unknown benchmark {self.benchmark!r}")
        _check(self.split in ("test", "validation"), "eval.tasks.*.split", f"{self.split!r} is not test|validation")
        _check(self.prompt in ("chat", "few_shot"), "eval.tasks.*.prompt", f"{self.prompt!r} is not chat|few_shot")
        _check(self.n_samples >= 1, "eval.tasks.*.n_samples", "must be >= 1")
        _check(self.n_samples == 1 or self.temperature > 0, "eval.tasks.*.temperature", "n_samples > 1 needs temperature > 0")


@dataclass
class SandboxConfig:
    timeout: float = MISSING  # wall-clock seconds per program
    memory_mb: int = MISSING  # address-space limit
    workers: int = MISSING  # 0 = number of cores

    def validate(self) -> None:
        _check(self.timeout > 0, "sandbox.timeout", "must be > 0")
        _check(0 < self.memory_mb <= 4096, "sandbox.memory_mb", "must be in (0, 4096]")
        _check(self.workers >= 0, "sandbox.workers", "must be >= 0")


@dataclass
class EvalConfig:
    tasks: Dict[str, EvalTask] = field(default_factory=dict)  # name -> spec, e.g. gsm8k_test


@dataclass
class DriftConfig:
    enabled: bool = MISSING
    max_tokens: int = MISSING


@dataclass
class GateConfig:
    metric: str = MISSING  # validation metric key from the eval summary, e.g. gsm8k_val.accuracy_flexible
    epsilon: float = MISSING  # allowed drop vs the teacher
    max_consecutive_rejections: int = MISSING

    def validate(self) -> None:
        _check(self.epsilon >= 0, "gate.epsilon", "must be >= 0")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    propose: ProposeConfig = field(default_factory=ProposeConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    seed: int = MISSING
    generations: int = MISSING  # how many generations `pipeline.generation` runs (make generations N=...)
    profile: str = MISSING  # name of the experiment profile, recorded in the ledger


def register() -> None:
    """Register the schema so `conf/config.yaml` can list it first in its defaults."""
    ConfigStore.instance().store(name="schema", node=Config)


def to_config(cfg: DictConfig | Config) -> Config:
    """Resolve interpolations and turn the composed config into dataclasses (running validation)."""
    if isinstance(cfg, Config):
        return cfg
    try:
        obj = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as e:  # OmegaConf's own errors (missing value, bad interpolation) name the key
        raise ConfigError(f"invalid config: {e}") from None
    if not isinstance(obj, Config):
        raise ConfigError("the composed config is not based on the 'schema' node (conf/config.yaml defaults)")
    _validate(obj)
    return obj


def _validate(obj: Any) -> None:
    """Call `validate()` on every nested schema object (dicts and lists of them included)."""
    if dataclasses.is_dataclass(obj):
        if hasattr(obj, "validate"):
            obj.validate()
        for f in dataclasses.fields(obj):
            _validate(getattr(obj, f.name))
    elif isinstance(obj, dict):
        for v in obj.values():
            _validate(v)
    elif isinstance(obj, list):
        for v in obj:
            _validate(v)


def resolved_dict(cfg: Config) -> dict:
    """Plain dict of a Config (for hashing and manifests)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]
