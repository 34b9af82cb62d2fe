"""What the teacher proposes: the hyperparameters, their search space and per-candidate overrides
(both derived from `HParams`), the propose group and the candidate group."""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from omegaconf import MISSING

from pipeline.config.base import ConfigError, check


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
        check(self.mode in PROPOSE_MODES, "propose.mode", f"{self.mode!r} is not {'|'.join(PROPOSE_MODES)}")
        check(self.candidates >= 1, "propose.candidates", "must be >= 1")
        check(self.retries >= 0, "propose.retries", "must be >= 0")
        check(self.history >= 0, "propose.history", "must be >= 0")
        check(self.max_tokens >= 1, "propose.max_tokens", "must be >= 1")
        check(self.temperature >= 0, "propose.temperature", "must be >= 0")
        check(self.retry_temperature > 0, "propose.retry_temperature", "must be > 0")
        # The validator clamps into the space and falls back to `hparams`: both must be sane.
        ints = {f.name for f in dataclasses.fields(HParams) if f.type in ("int", int)}
        for f in dataclasses.fields(HParams):
            s, v, key = getattr(self.space, f.name), getattr(self.hparams, f.name), f"propose.space.{f.name}"
            if isinstance(s, Range):
                check(float("-inf") < s.low <= s.high < float("inf"), key, f"needs finite low <= high, got {s.low}..{s.high}")
                check(f.name not in ints or s.high // 1 >= s.low, key, f"holds no integer: {s.low}..{s.high}")
                check(s.low <= v <= s.high, f"propose.hparams.{f.name}", f"{v} is outside {key} {s.low}..{s.high}")
            else:
                check(len(s) > 0, key, "needs at least one allowed value")
                check(v in s, f"propose.hparams.{f.name}", f"{v} is not one of {key} {list(s)}")


@dataclass
class CandidateConfig:
    """One candidate successor. Empty `name`: an ordinary run (the loop makes the candidates itself:
    one, or `propose.candidates` of them, and ranks them on `select_metric`). A name: this process is one
    job of a sweep; it trains only that candidate and leaves selection to `pipeline.loop.promote --sweep`."""

    name: str = MISSING
    # what ranks several candidates (of `propose.candidates` or a sweep) and what Optuna maximises: a
    # validation-side metric on another slice than the gate's (pipeline.evals.selection)
    select_metric: str = MISSING
    hparams: HParamsOverride = field(default_factory=HParamsOverride)
    gpus: int = MISSING  # GPUs per sweep job; each job gets its own device set (pipeline.loop.sweep)
    devices: int = MISSING  # device sets to share among jobs; -1: the visible CUDA GPUs (N fakes N on CPU)

    def validate(self) -> None:
        check(self.name == "" or self.name.replace("_", "").replace("-", "").isalnum(), "candidate.name",
               "letters, digits, '-' and '_' only")
        check(self.gpus >= 0, "candidate.gpus", "must be >= 0")
        check(self.devices >= -1, "candidate.devices", "must be -1 (the visible GPUs) or >= 0")
