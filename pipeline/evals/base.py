"""What a benchmark declares (`Benchmark`, `Protocol`, and its metrics as
`pipeline.infra.metricspec.MetricSpec`: a `{k}` in a name expands to one metric per k of the task's
`k`, HumanEval's `pass@{k}`); the eval stage, config validation,
decontamination and the report read these declarations and never test a benchmark's name.

A benchmark module (pipeline/evals/gsm8k.py, humaneval.py, or a plugin outside pipeline/) builds one
`Benchmark` and registers it (`pipeline.evals.register_benchmark`). Its scorer returns one record per
item holding that item's value of every metric in `record["metrics"]`; a task's metric is the mean
over its records, so paired statistics can test exactly the reported number.

    python -m pipeline.evals --list        # every registered benchmark with its splits, protocols, metrics
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Optional, Sequence

from pipeline.infra.metricspec import MetricSpec

if TYPE_CHECKING:
    from pipeline.config import Config, EvalTask
    from pipeline.engine import Output, Prompt

DIRECTIONS = ("higher", "lower")


@dataclass(frozen=True)
class Protocol:
    """How a task's items become prompts. `check` returns (field, message) for a task spec this
    protocol cannot run, else None; `stop` is merged with the task's own `stop`.

    A `chat` protocol builds chat messages (rendered with the model's chat template) and every
    generation stops at the template's end-of-turn token, also a base model's whose eos is another
    token; a plain one (`chat=False`) builds raw strings, completed as text (few-shot `Question:` /
    `Answer:` blocks, a bare HumanEval prompt) and stopped by its stop strings, as lm-eval does."""

    name: str  # the value of eval.tasks.<name>.prompt: chat | few_shot | fewshot | raw
    build: Callable[["EvalTask", list[dict]], list["Prompt"]]
    stop: tuple[str, ...] = ()
    check: Optional[Callable[["EvalTask"], Optional[tuple[str, str]]]] = None
    description: str = ""
    chat: bool = True  # prompts are chat messages; False: raw strings, no chat template


# score(task, items, prompts, outputs, cfg) -> one record per item, each with `correct` and `metrics`
Scorer = Callable[["EvalTask", list[dict], list["Prompt"], Sequence["Output"], "Config"], list[dict]]


@dataclass(frozen=True)
class Benchmark:
    """A benchmark, declared once. Items are dicts with a unique `id`."""

    name: str  # the value of eval.tasks.<name>.benchmark
    title: str  # for messages: "GSM8K"
    splits: Mapping[str, Callable[[], list[dict]]]  # split -> loader of its items
    test_splits: frozenset[str]  # reported only, never used to select or promote
    protected_splits: frozenset[str]  # never trained on (test splits included)
    protocols: Mapping[str, Protocol]
    metrics: tuple[MetricSpec, ...]
    score: Scorer
    # (label, item id, text[, checks[, answer]]) for every item that training data must not contain
    # (checks: all, ngram or near_dup; answer: the item's final answer, for the numbers+answer signal;
    # see pipeline.synth.decontaminate)
    decontamination: Callable[[], Iterable[tuple]]
    headline: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # split -> report columns
    sandboxed: bool = False  # verdicts depend on cfg.sandbox (it goes into the task key)
    dataset: str = ""  # the Hub dataset id, for model cards' model-index ("openai/gsm8k")
    dataset_config: str = ""  # its config name ("main")
    # Code problems whose own tests judge a synthetic solution (behaviour decontamination,
    # pipeline.synth.behaviour): dicts with `id`, `prompt` (signature + docstring) and `entry_point`;
    # `build_program(problem, completion)` makes the program that runs the problem's tests on its
    # prompt + completion (a pipeline.sandbox program). Both or neither.
    behaviour: Optional[Callable[[], list[dict]]] = None
    build_program: Optional[Callable[[Mapping, str], object]] = None
    card_metrics: tuple[str, ...] = ()  # the model card's `metrics` (Hub evaluate ids: "exact_match")
    # The synthesis domain modelled on this benchmark (`math`, `code`: pipeline.synth's domains find it
    # with pipeline.evals.modelled_on), the pure checker that domain and the RL rewards reuse (the
    # benchmark's module: one checker for eval and data), and the slices of its train split synthesis
    # may read (exemplars, question pool, held-out verifier questions; never a protected split).
    domain: str = ""
    checker: object = None
    train_slices: Mapping[str, Callable[[], list[dict]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"benchmark {self.name!r}"
        if not self.splits or not self.protocols or not self.metrics:
            raise ValueError(f"{where}: needs at least one split, protocol and metric")
        if not self.test_splits <= self.protected_splits <= set(self.splits):
            raise ValueError(f"{where}: test splits must be protected, and protected splits must be splits")
        if (self.behaviour is None) != (self.build_program is None):
            raise ValueError(f"{where}: behaviour problems and build_program come together")
        bad = [p for name, p in self.protocols.items() if p.name != name]
        if bad:
            raise ValueError(f"{where}: protocols must be keyed by their own name, got {bad[0].name!r}")
        for m in self.metrics:
            if m.direction not in DIRECTIONS:
                raise ValueError(f"{where}: metric {m.key!r} direction {m.direction!r} is not higher|lower")
        if self.domain and self.checker is None:
            raise ValueError(f"{where}: a benchmark that models synthesis domain {self.domain!r} needs its checker")
        if set(self.train_slices) & set(self.splits):
            raise ValueError(f"{where}: train slices {sorted(set(self.train_slices) & set(self.splits))} are eval splits")
        for split, names in self.headline.items():
            unknown = [n for n in names if not any(m.matches(n) for m in self.metrics)]
            if split not in self.splits or unknown:
                raise ValueError(f"{where}: headline {split!r}: {unknown or 'unknown split'}")

    def task_metrics(self, task: "EvalTask") -> dict[str, str]:
        """{metric name: direction} of one task (templates expanded)."""
        return {n: m.direction for m in self.metrics for n in m.names(task)}

    def split_for(self, suffix: str) -> str | None:
        """The split a task name suffix names: `gsm8k_val` -> validation; a bare name -> the first
        test split. Used only where no config is at hand (the report reading a ledger)."""
        if not suffix:
            return next((s for s in self.splits if s in self.test_splits), None)
        return next((s for s in self.splits if s.startswith(suffix)), None)
