"""Typed schemas for the Hydra config under `conf/`.

Every value lives in YAML (`conf/`); these dataclasses only say what keys exist, their types, and
which values are valid (each schema's `validate()`, run by `to_config` after it turns the composed
DictConfig into objects). Library code receives these objects, never raw dicts. A typo in an override fails at
compose time naming the key; an invalid value fails in `to_config` naming the key.

Fields marked `MISSING` must come from YAML, so no default is repeated in Python.

The schemas live in this package's modules (base, hparams, runtime, data, measure), one per
kind of thing; this module assembles the root `Config` and turns a composed DictConfig into it.
A training method's knobs live beside the method (pipeline/train/methods/<method>.py, `Method.config`):
`schema()` merges each registered method's dataclass under `train.<method>`, read from the method
registry at the bottom layer (pipeline.infra.registry.METHODS), so this package never imports
pipeline.train and a plugin's method brings its own knobs. The compose step
(pipeline.config.compose) imports the built-in methods before it builds the schema.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, List

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

from pipeline.config.base import ConfigError, check  # noqa: F401
from pipeline.config.hparams import (  # noqa: F401  (the package's public names)
    Range, RANGE, CHOICES, hparam, HParams, search_space_for, override_for, SearchSpace, HParamsOverride,
    PROPOSE_MODES, ProposeConfig, CandidateConfig,
)
from pipeline.config.runtime import ModelConfig, EngineConfig, PathsConfig, SandboxConfig, LogConfig  # noqa: F401
from pipeline.config.data import (  # noqa: F401  (the package's public names)
    MATH_SOURCES, MathSynthConfig, CodeSynthConfig, VerifierSynthConfig, PromptsSynthConfig, SynthConfig,
    TrainConfig,
)
from pipeline.config.measure import EvalTask, EvalConfig, JudgeConfig, DriftConfig, Budget, GateConfig  # noqa: F401
from pipeline.infra.registry import METHODS


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
    log: LogConfig = field(default_factory=LogConfig)
    seed: int = MISSING
    generations: int = MISSING  # target generation count of the lineage; -1 = the next one
    profile: str = MISSING  # name of the experiment profile, recorded in the ledger
    plugins: List[str] = field(default_factory=list)  # modules imported first: they register benchmarks, suites, methods


# train's own keys: a method's knobs sit beside them under its name, so its name must not be one of them
_TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def method_configs() -> dict[str, type]:
    """`train.<name>` -> the knobs dataclass of each registered training method that has one."""
    out = {}
    for m in METHODS:
        cls = getattr(m, "config", None)
        if cls is None:
            continue
        if not dataclasses.is_dataclass(cls) or m.name in _TRAIN_FIELDS:
            raise ConfigError(f"training method {m.name!r}: its `config` must be a dataclass and its name not a "
                              f"train key, got {cls!r} under train.{m.name}")
        out[m.name] = cls
    return out


def method_knobs(train: TrainConfig) -> dict[str, Any]:
    """The methods' knobs objects a converted `cfg.train` carries (`train.<method>`), by method name."""
    return {k: v for k, v in vars(train).items() if k not in _TRAIN_FIELDS}


def schema() -> DictConfig:
    """The root schema node: `Config`, with each registered method's knobs dataclass under `train.<method>`.
    Hydra merges `conf/` onto it (so `train.kto.beta=0.2` is typed and checked like any key) and
    `to_config` turns the `train.<method>` nodes into those dataclasses, attributes of `cfg.train`."""
    node = OmegaConf.structured(Config)
    with open_dict(node.train):
        for name, cls in method_configs().items():
            node.train[name] = OmegaConf.structured(cls)
    return node


def register() -> None:
    """Register the schema (with the methods registered so far) so `conf/config.yaml` can list it first
    in its defaults; `pipeline.config.compose` registers the built-in methods and the plugins first."""
    ConfigStore.instance().store(name="schema", node=schema())


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
    """Call `validate()` on every nested schema object (dicts and lists of them, and the methods' knobs
    beside `cfg.train`'s fields, included)."""
    if dataclasses.is_dataclass(obj):
        if hasattr(obj, "validate"):
            obj.validate()
        for v in vars(obj).values():
            _validate(v)
    elif isinstance(obj, dict):
        for v in obj.values():
            _validate(v)
    elif isinstance(obj, list):
        for v in obj:
            _validate(v)


def resolved_dict(cfg: Config) -> dict:
    """Plain dict of a Config (for hashing and manifests), the methods' knobs under `train.<method>`."""
    node = OmegaConf.structured(cfg)
    with open_dict(node.train):
        for name, knobs in method_knobs(cfg.train).items():
            node.train[name] = OmegaConf.structured(knobs)
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
