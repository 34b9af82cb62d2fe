"""Typed schemas for the Hydra config under `conf/`.

Every value lives in YAML (`conf/`); these dataclasses only say what keys exist, their types, and
which values are valid (each schema's `validate()`, run by `to_config` after it turns the composed
DictConfig into objects). Library code receives these objects, never raw dicts. A typo in an override fails at
compose time naming the key; an invalid value fails in `to_config` naming the key.

Fields marked `MISSING` must come from YAML, so no default is repeated in Python.

The schemas live in this package's modules (base, hparams, runtime, data, measure), one per
kind of thing; this module assembles the root `Config` and turns a composed DictConfig into it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, List

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from pipeline.config.base import ConfigError, check  # noqa: F401
from pipeline.config.hparams import (  # noqa: F401  (the package's public names)
    Range, RANGE, CHOICES, hparam, HParams, search_space_for, override_for, SearchSpace, HParamsOverride,
    PROPOSE_MODES, ProposeConfig, CandidateConfig,
)
from pipeline.config.runtime import ModelConfig, EngineConfig, PathsConfig, SandboxConfig, LogConfig  # noqa: F401
from pipeline.config.data import (  # noqa: F401  (the package's public names)
    MATH_SOURCES, MathSynthConfig, CodeSynthConfig, VerifierSynthConfig, SynthConfig, DPOConfig, RewardSpec,
    GRPOConfig, TrainConfig,
)
from pipeline.config.measure import EvalTask, EvalConfig, JudgeConfig, DriftConfig, Budget, GateConfig  # noqa: F401


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
