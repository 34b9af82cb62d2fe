"""The config error and the one check helper every schema uses (`check(ok, key, msg)`)."""

from __future__ import annotations

from pipeline.infra.cli import InputError


class ConfigError(InputError, ValueError):
    """An invalid configuration value; the message names the key."""


def check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config value for '{key}': {msg}")
