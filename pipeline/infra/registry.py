"""A small named registry: the one mechanism behind benchmarks, probe suites and training methods.

    BENCHMARKS = Registry("benchmark")        # pipeline/evals/__init__.py
    BENCHMARKS.register(gsm8k.BENCHMARK)      # one line per built-in entry
    register_benchmark(my_benchmark)          # a plugin or a test: the same public call

Entries are objects with a `name`. Looking up an unknown name raises RegistryError listing the known
ones, so a typo in a config fails with the choices in the message. Code that needs the entries
iterates the registry; nothing tests a name.

The bottom layer finds the registries without importing the packages that declare them: each
`Registry(kind)` announces itself here, plugins are imported here (`import_plugins`), `registry(kind)` returns it (importing the built-in module
that declares it, `HOMES`, by name on first need, the way plugins are imported), and a registry's
config validation is pushed here with `register_check(kind, fn)`; `check_config(cfg)` runs them all,
in `HOMES` order. So `pipeline.config.compose` and `pipeline.infra.metricspec` read every registry
and import none of the packages above them.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

# kind -> the module whose import declares its built-in entries (and its config check). Order is the
# order of the checks: the benchmarks (eval tasks, the gate metric), then the drift stage's own metrics,
# the probe suites (suites, budgets), the training methods.
HOMES = {"benchmark": "pipeline.evals", "drift metric": "pipeline.drift.metrics",
         "probe suite": "pipeline.probes", "training method": "pipeline.train.methods"}
_KINDS: dict[str, "Registry"] = {}
_CHECKS: dict[str, list[Callable[[Any], None]]] = {}


class RegistryError(KeyError):
    """An unknown name, or a name registered twice."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        _KINDS.setdefault(kind, self)  # the first of a kind is the one `registry(kind)` finds

    def register(self, entry: T, replace: bool = False) -> T:
        name = getattr(entry, "name", None)
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.kind} needs a non-empty string `name`, got {name!r}")
        if name in self._entries and not replace and self._entries[name] is not entry:
            raise RegistryError(f"{self.kind} {name!r} is already registered (pass replace=True to override it)")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(f"unknown {self.kind} {name!r}; registered: {sorted(self._entries)}") from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)


# The training methods (entries: `pipeline.train.methods.base.Method`, registered by pipeline.train.methods
# and by plugins). It lives at the bottom so the config schema (pipeline.config) can merge each method's
# knobs (`Method.config`, a dataclass) under `train.<name>` without importing pipeline.train.
METHODS: Registry = Registry("training method")


def import_plugins(names: list[str]) -> None:
    """Import each named plugin module (importing registers its entries: benchmarks, suites, methods);
    RegistryError naming the module when one cannot be imported."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise RegistryError(f"cannot import {name!r} ({e})") from None


def load_builtins() -> None:
    """Import every built-in registry's module (`HOMES`): their entries and checks are then known."""
    for module in HOMES.values():
        importlib.import_module(module)


def registry(kind: str) -> Registry:
    """The registry of `kind` ("benchmark", "probe suite", ...), its built-ins loaded."""
    if kind in HOMES:  # a registry declared down here (METHODS) still needs its built-ins imported
        importlib.import_module(HOMES[kind])
    if kind not in _KINDS:
        raise RegistryError(f"no {kind} registry; known: {sorted(set(HOMES) | set(_KINDS))}")
    return _KINDS[kind]


def register_check(kind: str, check: Callable[[Any], None]) -> None:
    """Add `check(cfg)` (raises ConfigError naming the key) to the validation of registry `kind`."""
    checks = _CHECKS.setdefault(kind, [])
    if check not in checks:
        checks.append(check)


def check_config(cfg: Any) -> None:
    """Every registry's config checks (built-ins loaded first), in `HOMES` order, then any other kind's."""
    load_builtins()
    for kind in list(HOMES) + sorted(set(_CHECKS) - set(HOMES)):
        for check in _CHECKS.get(kind, ()):
            check(cfg)
