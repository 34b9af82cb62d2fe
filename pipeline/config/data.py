"""How data is made and trained on: the synth group and the train group (its methods' knobs are theirs:
pipeline/train/methods/<method>.py, merged under `train.<method>` by `pipeline.config.schema`)."""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from omegaconf import MISSING

from pipeline.config.base import ConfigError, check


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
        check(self.source in MATH_SOURCES, "synth.math.source", f"{self.source!r} is not {'|'.join(MATH_SOURCES)}")
        check(self.n_problems >= 0, "synth.math.n_problems", "must be >= 0")
        check(self.few_shot >= 0 and self.few_shot_solve >= 0, "synth.math.few_shot", "must be >= 0")
        check(self.k_solutions >= 1, "synth.math.k_solutions", "must be >= 1")
        check(0 < self.agreement_threshold <= 1, "synth.math.agreement_threshold", "must be in (0, 1]")
        check(self.max_solutions_per_problem >= 1, "synth.math.max_solutions_per_problem", "must be >= 1")


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
        check(self.n_tasks >= 0, "synth.code.n_tasks", "must be >= 0")
        check(self.k_solutions >= 0, "synth.code.k_solutions", "must be >= 0")
        check(self.max_solutions_per_task >= 1, "synth.code.max_solutions_per_task", "must be >= 1")
        check(self.min_asserts >= 1, "synth.code.min_asserts", "must be >= 1")


@dataclass
class VerifierSynthConfig:
    """How often the synthesis verifiers' labels are right (pipeline.synth.verifier)."""

    n_questions: int = MISSING  # held-out GSM8K-train `verifier` slice questions voted on (0 = off)
    max_mutants_per_task: int = MISSING  # AST mutants of each kept task's reference solution (0 = off)

    def validate(self) -> None:
        check(self.n_questions >= 0, "synth.verifier.n_questions", "must be >= 0 (0 = off)")
        check(self.max_mutants_per_task >= 0, "synth.verifier.max_mutants_per_task", "must be >= 0 (0 = off)")


@dataclass
class PromptsSynthConfig:
    """The RL prompt file `synth/prompts.jsonl` (pipeline.synth.prompts), what a method with `PROMPTS` data samples."""

    pool_questions: int = MISSING  # GSM8K-train `pool` questions added beside the verified problems (gold kept for statistics only)

    def validate(self) -> None:
        check(self.pool_questions >= 0, "synth.prompts.pool_questions", "must be >= 0")


@dataclass
class SynthConfig:
    math: MathSynthConfig = field(default_factory=MathSynthConfig)
    code: CodeSynthConfig = field(default_factory=CodeSynthConfig)
    verifier: VerifierSynthConfig = field(default_factory=VerifierSynthConfig)
    prompts: PromptsSynthConfig = field(default_factory=PromptsSynthConfig)
    accumulate: bool = MISSING  # keep earlier generations' verified data (Gerstgrasser et al. 2024)
    val_fraction: float = MISSING  # share of verified data held out as synthetic validation
    decontam_ngram: int = MISSING  # word n-gram overlap with benchmarks, digits kept
    decontam_ngram_masked: int = MISSING  # word n-gram overlap with numbers masked (number changes)
    decontam_near_dup: float = MISSING  # share of a benchmark item's 3-gram shingles that marks a copy
    decontam_paraphrase: float = MISSING  # IDF-weighted share of its content words a same-quantities rewording keeps (0 = off)
    decontam_paraphrase_answer: float = MISSING  # the same share when the row's answer is the item's answer too
    decontam_behaviour: int = MISSING  # code: benchmark problems whose tests each synthetic solution runs (0 = off)
    dedup_threshold: float = MISSING  # Jaccard of number-masked 3-gram shingles marking a near-duplicate
    anchor_fraction: float = MISSING  # share of the training mixture drawn from real GSM8K train
    min_anchor_examples: int = MISSING  # anchor rows used when nothing at all was verified
    max_output_chars: int = MISSING  # teacher outputs longer than this are rejected as huge

    def validate(self) -> None:
        check(0 <= self.val_fraction < 1, "synth.val_fraction", "must be in [0, 1)")
        check(self.decontam_ngram >= 3, "synth.decontam_ngram", "must be >= 3")
        check(self.decontam_ngram_masked >= 3, "synth.decontam_ngram_masked", "must be >= 3")
        check(0 < self.decontam_near_dup <= 1, "synth.decontam_near_dup", "must be in (0, 1]")
        check(0 <= self.decontam_paraphrase <= 1, "synth.decontam_paraphrase", "must be in [0, 1] (0 = off)")
        check(0 < self.decontam_paraphrase_answer <= 1 if self.decontam_paraphrase > 0
              else self.decontam_paraphrase_answer == 0, "synth.decontam_paraphrase_answer",
              "must be in (0, 1] when synth.decontam_paraphrase is on, else 0")
        check(self.decontam_behaviour >= 0, "synth.decontam_behaviour", "must be >= 0 (0 = off)")
        check(0 < self.dedup_threshold <= 1, "synth.dedup_threshold", "must be in (0, 1]")
        check(0 <= self.anchor_fraction <= 1, "synth.anchor_fraction", "must be in [0, 1]")
        check(self.min_anchor_examples >= 1, "synth.min_anchor_examples", "must be >= 1")
        check(self.max_output_chars > 0, "synth.max_output_chars", "must be > 0")


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
    report_to: str = MISSING  # training curves per step, through transformers: tensorboard | wandb | mlflow | none (log.trackers: lineage metrics)
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
    # Each registered training method's own knobs sit under `train.<method>` (`train.dpo.beta`): their
    # dataclass is `Method.config`, beside the method (pipeline/train/methods/<method>.py). They are not
    # fields here: `pipeline.config.schema()` adds them from the method registry, and they arrive as
    # attributes of this object (`cfg.train.dpo`), so a plugin method brings its knobs too.

    def __eq__(self, other: object) -> bool:  # the methods' knobs count, though they are not fields
        return type(other) is type(self) and vars(self) == vars(other)

    def validate(self) -> None:
        check(self.init_from in ("base", "teacher"), "train.init_from", f"{self.init_from!r} is not base|teacher")
        check(self.per_device_batch_size >= 1, "train.per_device_batch_size", "must be >= 1")
        check(self.save_steps >= 1, "train.save_steps", "must be >= 1")
        check(self.save_total_limit >= 2, "train.save_total_limit", "must be >= 2 (a complete checkpoint must survive the next save)")
        check(self.max_steps == -1 or self.max_steps > 0, "train.max_steps", "must be -1 or > 0")
        check(self.min_steps >= 0, "train.min_steps", "must be >= 0 (0: the proposal's epochs alone)")
        check(self.logging_steps >= 1, "train.logging_steps", "must be >= 1")
        check(self.report_to in ("tensorboard", "wandb", "mlflow", "none"), "train.report_to",
               f"{self.report_to!r} is not tensorboard|wandb|mlflow|none")
        check(self.precision in ("auto", "bf16", "fp32"), "train.precision", f"{self.precision!r} is not auto|bf16|fp32")
        check(self.min_examples >= 1, "train.min_examples", "must be >= 1")
        check(self.num_gpus >= 1, "train.num_gpus", "must be >= 1")
        check(self.launcher in ("accelerate", "torchrun"), "train.launcher", f"{self.launcher!r} is not accelerate|torchrun")
        check(self.num_gpus == 1 or self.isolate, "train.isolate", "num_gpus > 1 launches worker processes, so isolate must be true")
