"""Where the Hydra configs live and how every entry point turns them into a validated `Config`.

    from pipeline.compose import compose
    cfg = compose(["model=tiny:qwen3", "experiment=smoke"])      # tests, scripts, notebooks

    @hydra.main(config_path=config_path(), config_name="config", version_base=None)   # CLIs
    def main(dcfg): cfg = load_config(dcfg)

`pipeline.locate.conf_dir()` is the one place that locates `conf/` (so an installed package composes the same files
as a checkout). `load_config` imports the modules named in `plugins` (they register benchmarks, probe
suites or training methods), runs every schema's own `validate()` (pipeline.config), then the checks
that need the registries: eval tasks against the benchmark registry, drift suites and gate budgets
against the probe-suite registry (never on a metric that read a test split: pipeline.metricspec),
`train.method` against the method registry.
"""

from __future__ import annotations

import importlib

from omegaconf import DictConfig

from pipeline.config import Config, ConfigError, register, to_config
from pipeline.locate import conf_dir


def config_path() -> str:
    """`conf_dir()` as the string `hydra.main(config_path=...)` wants."""
    return str(conf_dir())


def import_plugins(names: list[str]) -> None:
    """Import each named module; importing registers its benchmarks, suites or methods."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(f"invalid config value for 'plugins': cannot import {name!r} ({e})") from None


def registry_checks(cfg: Config) -> None:
    """The validation that needs the registries (ConfigError naming the key)."""
    from pipeline import evals, metricspec, probes
    from pipeline.train import methods

    evals.check_config(cfg)
    metricspec.check_config(cfg)  # a budget on a test-split metric, named as such before "unknown"
    probes.check_config(cfg)
    methods.check_config(cfg)


def load_config(dcfg: DictConfig | Config) -> Config:
    """A composed DictConfig (or a Config) -> a validated Config, plugins imported first."""
    if isinstance(dcfg, DictConfig) and "plugins" in dcfg:
        import_plugins(list(dcfg.plugins or []))
    cfg = to_config(dcfg)
    import_plugins(list(cfg.plugins))
    registry_checks(cfg)
    return cfg


def compose(overrides: list[str] | None = None, name: str = "config") -> Config:
    """The real config from `conf_dir()` with Hydra overrides, validated."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register()
    with initialize_config_dir(str(conf_dir()), version_base=None):
        return load_config(hydra_compose(name, overrides or []))
