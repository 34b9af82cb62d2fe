"""A small named registry: the one mechanism behind benchmarks, probe suites and training methods.

    BENCHMARKS = Registry("benchmark")        # pipeline/evals/__init__.py
    BENCHMARKS.register(gsm8k.BENCHMARK)      # one line per built-in entry
    register_benchmark(my_benchmark)          # a plugin or a test: the same public call

Entries are objects with a `name`. Looking up an unknown name raises RegistryError listing the known
ones, so a typo in a config fails with the choices in the message. Code that needs the entries
iterates the registry; nothing tests a name.
"""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown name, or a name registered twice."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

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
