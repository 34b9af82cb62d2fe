"""Where the Hydra configs live and how every entry point turns them into a validated `Config`.

    from pipeline.config.compose import compose
    cfg = compose(["model=tiny:qwen3", "experiment=smoke"])      # tests, scripts, notebooks

    def main(cfg: Config) -> float | None: ...                    # a CLI's task, on the validated config
    sys.exit(hydra_entry(lambda: hydra_main(main, job="generation"), __doc__, "pipeline.loop"))  # CLIs

`pipeline.infra.locate.conf_dir()` is the one place that locates `conf/` (so an installed package composes the same files
as a checkout). Before Hydra composes, `prepare(overrides)` imports the built-in training methods and
the plugins a `plugins=[...]` override names, and registers the schema they make (each method's knobs
under `train.<method>`, pipeline.config.schema). `load_config` imports the modules named in `plugins`
(they register benchmarks, probe suites or training methods), runs every schema's own `validate()`
(pipeline.config), then the checks that need the registries: eval tasks against the benchmark registry, drift suites and gate budgets
against the probe-suite registry (never on a metric that read a test split: pipeline.infra.metricspec),
`train.method` against the method registry.

The front door of a Hydra entry point (`hydra_entry`): `-h`/`--help` prints this project's usage (the
module's docstring, the config groups and their options, the top-level keys) instead of Hydra's
generic page (still there as `--hydra-help`); every override's key is checked against the schema
(`pipeline.config.keys`), and a single run's whole config is composed and validated, before Hydra
starts and before anything is written; a refusal is one line, exit 2 (`pipeline.infra.cli`). Hydra's own
flags (`--cfg job`, `--info`, `-m`) pass through.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from pipeline.infra import cli
from pipeline.config import Config, ConfigError, method_configs, register, schema, to_config
from pipeline.config.keys import check_overrides, one_line, unknown_key_error, unknown_keys
from pipeline.infra.locate import conf_dir


def config_path() -> str:
    """`conf_dir()` as the string `hydra.main(config_path=...)` wants."""
    return str(conf_dir())


def import_plugins(names: list[str]) -> None:
    """Import each named module (pipeline.infra.registry); importing registers its benchmarks, suites or methods."""
    from pipeline.infra import registry

    try:
        registry.import_plugins(names)
    except registry.RegistryError as e:
        raise ConfigError(f"invalid config value for 'plugins': {e}") from None


def plugins_named(overrides: list[str]) -> list[str]:
    """The modules a `plugins=[...]` override names (its last one wins, as in Hydra)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException:
        return []  # check_overrides names the unparsable one
    named: list[str] = []
    for o in parsed:
        if o.key_or_group == "plugins" and not o.is_delete():
            value = o.value()
            named = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return named


def prepare(overrides: list[str] | None = None) -> None:
    """Before Hydra composes: the built-in training methods and the plugins the overrides name are
    registered, and the schema, with every registered method's knobs under `train.<method>`, is stored,
    so `train.<plugin>.<knob>=...` is a known key (a plugin named only in a YAML file brings its
    defaults: `load_config` merges them)."""
    from pipeline.infra import registry

    registry.registry("training method")  # imports the built-in methods by name (registry.HOMES), no package edge
    import_plugins(plugins_named(list(overrides or [])))
    register()


def registry_checks(cfg: Config) -> None:
    """The validation that needs the registries (ConfigError naming the key): each registry pushes its
    checks to the bottom layer (pipeline.infra.registry), so this package imports none of them."""
    from pipeline.infra import registry

    registry.check_config(cfg)


def load_config(dcfg: DictConfig | Config) -> Config:
    """A composed DictConfig (or a Config) -> a validated Config, plugins imported first."""
    if isinstance(dcfg, DictConfig):
        extra = unknown_keys(dcfg)  # `+key=value` lifts Hydra's struct check: refuse what nothing reads
        if extra:
            raise unknown_key_error(extra[0])
        if "plugins" in dcfg:
            import_plugins(list(dcfg.plugins or []))
        if set(method_configs()) - set(dcfg.train or {}):  # a method registered after Hydra composed: its defaults
            dcfg = OmegaConf.merge(schema(), dcfg)
    cfg = to_config(dcfg)
    import_plugins(list(cfg.plugins))
    registry_checks(cfg)
    return cfg


def compose(overrides: list[str] | None = None, name: str = "config") -> Config:
    """The real config from `conf_dir()` with Hydra overrides, validated; every refusal (an unknown
    key, a bad value, a missing group option) is a one-line ConfigError naming the key."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    prepare(overrides)
    check_overrides(list(overrides or []))
    with initialize_config_dir(str(conf_dir()), version_base=None):
        try:
            dcfg = hydra_compose(name, overrides or [])
        except HydraException as e:
            raise ConfigError(f"invalid config: {one_line(e)}") from None
        return load_config(dcfg)


# bad input, not a bug: `cli.fail` (ConfigError, DataError, LineageError, ModelError all subclass it)
EXPECTED = (cli.InputError,)
# Hydra flags that take a value (so the value is not read as an override)
_VALUED = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
           "-cd", "--experimental-rerun", "--shell-completion", "-sc"}
_NO_RUN = {"--cfg", "-c", "--info", "-i", "--hydra-help", "--shell-completion", "-sc", "--resolve"}


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra flags with their values, overrides)."""
    flags, overrides, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-"):
            flags.append(a)
            if a in _VALUED and "=" not in a and i + 1 < len(argv):
                flags.append(argv[i + 1])
                i += 1
        else:
            overrides.append(a)
        i += 1
    return flags, overrides


def usage(prog: str, doc: str, flags: str = "[-m] [--cfg job] [--hydra-help]") -> str:
    """`prog`'s docstring, then what can be overridden: each config group's options, the top-level keys."""
    conf = conf_dir()
    groups = sorted(p.name for p in conf.iterdir() if p.is_dir() and p.name != "hydra" and any(p.rglob("*.yaml")))
    lines = [f"usage: python -m {prog} [GROUP=OPTION | KEY=VALUE ...] {flags}".rstrip(), "",
             doc.strip(), "", "config groups (conf/<group>/<option>.yaml):"]
    for g in groups:
        opts = sorted(str(p.relative_to(conf / g).with_suffix("")) for p in (conf / g).rglob("*.yaml"))
        lines.append(f"  {g:12s} {', '.join(opts)}")
    keys = [f.name for f in dataclasses.fields(Config)]
    lines += ["", f"keys: {', '.join(keys)} (e.g. train.max_steps=10, propose.hparams.learning_rate=1e-4)",
              "  python -m pipeline.loop --cfg job [overrides]   prints the composed config, every key"]
    if "--hydra-help" in flags:
        lines.append("  --hydra-help: Hydra's own options (launchers, sweepers, output dirs)")
    return "\n".join(lines)


def front_door(argv: list[str], prog: str, doc: str, inputs: Callable[[Config], None] | None = None) -> int | None:
    """Before Hydra: an exit status (help printed, or a refused config or input), or None to go on.
    `inputs(cfg)` checks what a single run reads (its data) before Hydra makes its run directory."""
    if "-h" in argv or "--help" in argv:
        print(usage(prog, doc))
        return 0
    flags, overrides = split_argv(argv)
    try:
        prepare(overrides)  # the schema Hydra composes with, after this, in this process
        check_overrides(overrides)
        if not {"-m", "--multirun"} & set(flags) and not _NO_RUN & set(flags):
            cfg = compose(overrides)  # the whole config, validated, before Hydra makes its run dir
            if inputs is not None:
                inputs(cfg)
    except EXPECTED as e:  # a refused config or input (DataError) is one line
        return cli.fail(e)
    return None


def hydra_main(task: Callable[[Config], float | None], job: str) -> int:
    """Run `task(cfg)` as a Hydra app on `conf/config.yaml` (the overrides from sys.argv): the config
    composed, validated (`load_config`) and the log configured; an EXPECTED error is one line and exit
    status 2. Returns the exit status; `task`'s return value is what a sweeper optimises.

    Hydra names a job after the module that defines its `@hydra.main` function, and the name is
    the `<job>.log` file in the run directory and submitit's SLURM job name; so `job` is set as
    `hydra.job.name` (unless the command line sets it), keeping each entry point's own name
    ("generation" for the loop) although the function is defined here."""
    import hydra

    from pipeline.infra import logs

    register()
    status = {"code": 0}

    @hydra.main(config_path=config_path(), config_name="config", version_base=None)
    def main(dcfg: DictConfig) -> float | None:
        try:
            cfg = load_config(dcfg)
            logs.configure(cfg.log.level)
            return task(cfg)
        except EXPECTED as e:
            status["code"] = cli.fail(e)
            return None

    argv = sys.argv
    sys.argv = [argv[0], *with_job_name(argv[1:], job)]
    try:
        main()
    finally:
        sys.argv = argv
    return status["code"]


def with_job_name(argv: list[str], job: str) -> list[str]:
    """`argv` with the override `hydra.job.name=<job>` among its overrides (Hydra's parser takes the
    overrides as one run of arguments: before the first, after the leading flags), unless it sets one."""
    if any(a.lstrip("+").startswith("hydra.job.name=") for a in argv):
        return argv
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in _VALUED else 1
    return [*argv[:i], f"hydra.job.name={job}", *argv[i:]]


def hydra_entry(main: Callable[[], int | None], doc: str, prog: str, inputs: Callable[[Config], None] | None = None,
                argv: list[str] | None = None) -> int:
    """Run a Hydra entry point `main` behind the front door; its return value is the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    status = front_door(argv, prog, doc, inputs)
    if status is not None:
        return status
    return main() or 0
