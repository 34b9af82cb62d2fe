"""How a generation is measured and judged: eval tasks, drift probes, the judge and the gate."""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from omegaconf import MISSING

from pipeline.config.base import ConfigError, check


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
        check(self.n >= 0, f"{key}.n", "must be >= 0 (0 = all)")
        check(self.few_shot >= 0, f"{key}.few_shot", "must be >= 0")
        check(self.max_tokens > 0, f"{key}.max_tokens", "must be > 0")
        check(self.n_samples >= 1, f"{key}.n_samples", "must be >= 1")
        check(self.n_samples == 1 or self.temperature > 0, f"{key}.temperature", "n_samples > 1 needs temperature > 0")
        check(all(1 <= k <= self.n_samples for k in self.k), f"{key}.k", "every k must be in [1, n_samples]")


@dataclass
class EvalConfig:
    tasks: Dict[str, EvalTask] = field(default_factory=dict)  # name -> spec, e.g. gsm8k_test

    def validate(self) -> None:
        for name, task in self.tasks.items():
            # the name becomes <name>.jsonl and the metric prefix <name>.<metric>
            check(re.fullmatch(r"[A-Za-z0-9_-]+", name) is not None, f"eval.tasks.{name}",
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
        check(bool(self.model), "drift.judge.model", "must name a frozen model (gen0 or a model spec)")
        check(self.model.lower() not in ("self", "candidate", "current", "gen", "teacher", "parent"),
               "drift.judge.model", f"{self.model!r} is not frozen: the judge must be gen0 or a named model, "
               "never the model being judged (nor its teacher, which changes every generation)")
        check(self.max_tokens >= 1, "drift.judge.max_tokens", "must be >= 1")


@dataclass
class DriftConfig:
    """Alignment and distribution drift (pipeline.drift), run on every generation including gen 0."""

    enabled: bool = MISSING
    max_tokens: int = MISSING  # greedy free generation per probe
    suites: List[str] = field(default_factory=list)  # scored probe suites (pipeline.probes.SUITES)
    max_items_per_suite: int = MISSING  # 0 = all; safety takes this many of EACH kind (smoke runs)
    # suite -> items per run (0 or absent = all): the CPU profile's time budget (conf/drift/default.yaml)
    subset: Dict[str, int] = field(default_factory=dict)
    subset_seed: int = 0  # which seeded sample; fixed, so every generation probes the same items
    kl_prompts: int = MISSING  # reference prompts for teacher-forced KL (0 = all)
    kl_batch_size: int = MISSING  # sequences per forward pass
    distinct_n: int = MISSING  # n of the distinct-n diversity metric (drift.distinct_<n>)
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def validate(self) -> None:
        """Values only; which suites exist is the registry's check (pipeline.probes.check_config)."""
        check(self.max_tokens >= 1, "drift.max_tokens", "must be >= 1")
        check(len(set(self.suites)) == len(self.suites), "drift.suites", "lists a suite twice")
        check(self.max_items_per_suite >= 0, "drift.max_items_per_suite", "must be >= 0 (0 = all)")
        for name, n in self.subset.items():
            check(n >= 0, f"drift.subset.{name}", "must be >= 0 (0 = all)")
        check(self.kl_prompts >= 0, "drift.kl_prompts", "must be >= 0 (0 = all)")
        check(self.kl_batch_size >= 1, "drift.kl_batch_size", "must be >= 1")
        check(self.distinct_n >= 1, "drift.distinct_n", "must be >= 1")


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
    # floor on a generation's math label precision (synth verifier), judged on the interval's upper
    # bound: rows of labels shown to be mostly wrong leave every mixture; none left -> rejected
    # before training (pipeline.synth.mixture.LabelTrust); 0 = off
    min_verifier_precision: float = MISSING
    alpha: float = 0.05  # the gate's intervals are (1 - alpha)
    require_improvement: bool = False  # capability passes only when shown better (lo > 0), not merely within epsilon
    on_inconclusive: str = "keep_teacher"  # promote | keep_teacher: when no rule fails but capability is undecided
    # pre-registered sizes of the capability check's nested looks (the first: the gated task's eval n;
    # the last: the cap); alpha is split over them (Bonferroni). Empty: one look at the eval's items.
    looks: List[int] = field(default_factory=list)

    def validate(self) -> None:
        """Values only; which drift metrics a budget may name, and their directions, are the probe-suite
        registry's check (pipeline.probes.check_config)."""
        check(self.epsilon >= 0, "gate.epsilon", "must be >= 0")
        # that the task is a validation eval task is checked against the benchmark registry
        # (pipeline.evals.check_config)
        check("." in self.metric, "gate.metric", f"{self.metric!r} is not '<task>.<metric>'")
        check(self.max_consecutive_rejections >= 1, "gate.max_consecutive_rejections", "must be >= 1")
        check(self.on_max_rejections in ("stop", "repropose"), "gate.on_max_rejections",
               f"{self.on_max_rejections!r} is not stop|repropose")
        check(0 < self.alpha < 1, "gate.alpha", f"{self.alpha!r} must lie in (0, 1)")
        check(0 <= self.min_verifier_precision <= 1, "gate.min_verifier_precision",
              f"{self.min_verifier_precision!r} must lie in [0, 1] (0 = off)")
        check(self.on_inconclusive in ("promote", "keep_teacher"), "gate.on_inconclusive",
               f"{self.on_inconclusive!r} is not promote|keep_teacher")
        looks = list(self.looks)
        check(all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in looks)
              and looks == sorted(set(looks)), "gate.looks", f"{looks!r} must be increasing positive item counts")
        for name, b in self.budgets.items():
            key = f"gate.budgets.{name}"
            # keys are `drift.<name>` metrics, so no test score can gate; plain names keep CLI overrides
            # simple (gate.budgets.honesty.step=0.1)
            check(re.fullmatch(r"[A-Za-z0-9_]+", name) is not None, key,
                   "must be a drift metric name without the 'drift.' prefix, e.g. refusal_harmful")
            check(b.direction in ("higher", "lower"), f"{key}.direction", f"{b.direction!r} is not higher|lower")
            check(b.total >= 0 and b.step >= 0, key, "total and step must be >= 0")
