"""The training-method registry: what `train.method` names.

    python -m pipeline.loop train.method=sft        # the default (methods/sft.py)
    python -m pipeline.loop train.method=sft+dpo    # a chain: SFT, then DPO on the SFT result
    python -m pipeline.loop train.method=sft+grpo   # SFT, then label-free GRPO (methods/grpo.py)
    register_method(MyMethod())                           # a plugin module (named in `plugins:`) or a test

A method is declared once, in its own module, by the contract in `pipeline.train.methods.base`
(its knobs dataclass, dataset, data check, trainer, rewards, reference, generation backend, schedule,
ledger metrics, model-card text, report columns). Its knobs (`Method.config`) join the config schema
under `train.<name>` from this registry (`pipeline.config.schema`), their values in conf/train/default.yaml
for a built-in method, the dataclass's defaults for a plugin's. A chain `a+b` trains each phase from the previous phase's result,
into `gen_NNN/train/<method>/`, so a method appears in a chain at most once. The train stage, its
worker, the export and the report iterate the chain or the registry; none of them names a method.
"""

from __future__ import annotations

import dataclasses

from pipeline.config import Config, ConfigError, TrainConfig
from pipeline.infra.registry import METHODS, RegistryError, register_check
from pipeline.train.methods import dpo, grpo, sft
from pipeline.train.methods.base import Method

# the registry lives at the bottom layer (pipeline.infra.registry), so the config schema reads the knobs
METHODS.register(sft.METHOD)
METHODS.register(dpo.METHOD)
METHODS.register(grpo.METHOD)

CHAIN = "+"


def register_method(method: Method, replace: bool = False) -> Method:
    """Add a training method (a plugin's or a test's); `train.method` can then name it, and its knobs
    (`method.config`, a dataclass with defaults) are `train.<name>.*` in the next composed config."""
    config = getattr(method, "config", None)
    if config is not None and not dataclasses.is_dataclass(config):
        raise RegistryError(f"training method {method.name!r}: `config` must be a dataclass, got {config!r}")
    if config is not None and method.name in {f.name for f in dataclasses.fields(TrainConfig)}:
        raise RegistryError(f"training method {method.name!r}: its knobs would sit under train.{method.name}, "
                            f"which is a train key already")
    return METHODS.register(method, replace=replace)


def parse_chain(spec: str) -> list[Method]:
    """`"sft+dpo"` -> [sft, dpo]; ValueError for an empty or repeated part, RegistryError for an unknown one."""
    names = [n.strip() for n in str(spec).split(CHAIN)]
    if not all(names):
        raise ValueError(f"{spec!r} is not a method name or a chain like 'sft+dpo'")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{spec!r} names {twice} more than once (each phase trains into its own "
                         f"train/<method>/ directory)")
    return [METHODS.get(n) for n in names]


def chain(cfg: Config) -> list[Method]:
    """The methods `cfg.train.method` trains, in order."""
    return parse_chain(cfg.train.method)


def check_config(cfg: Config) -> None:
    """`train.method` against the method registry, then each method's own needs."""
    try:
        methods = chain(cfg)
    except (ValueError, RegistryError) as e:
        raise ConfigError(f"invalid config value for 'train.method': {e}") from None
    for m in methods:
        m.check_config(cfg)
    for m in METHODS:
        if m not in methods:
            m.check_unused(cfg)


register_check(METHODS.kind, check_config)


def _union(parts) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for part in parts for x in part))


# The train stage's own ledger metrics, whatever the chain: optimizer steps of every phase together
# (pipeline.train.budget plans them), and the steps behind the exported weights (each phase hands on
# its best-validation checkpoint, which may be earlier than its last step; pipeline.train.export).
STEPS_METRIC = "train.steps"
EXPORTED_METRIC = "train.exported_step"
STAGE_COLUMNS = (STEPS_METRIC, EXPORTED_METRIC)


def report_columns() -> tuple[str, ...]:
    """The ledger metrics the train stage and the registered methods show in the report's summary table."""
    return _union([STAGE_COLUMNS, *(m.report_columns for m in METHODS)])


def hparam_keys() -> tuple[str, ...]:
    """The proposal's hyperparameters the registered methods train with (the report's hp.* columns)."""
    return _union(m.hparam_keys for m in METHODS)
