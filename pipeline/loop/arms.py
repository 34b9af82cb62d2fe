"""Controls that change one thing: a study arm may differ from the main arm only where its overrides say.

    from pipeline.loop.arms import named_keys, differences, check_arm
    named_keys(["ablation=random_reward"])           # {"train.grpo.rewards"}: the group file's own keys
    differences(main_cfg, arm_cfg)                    # {"train.grpo.rewards": [main value, arm value]}

A study's conclusion ("the reward matters") holds only if the arms differ in the one thing studied.
Before a study runs, each arm's resolved configuration is compared with the main arm's (same seed);
every differing key must be named by the arm's overrides or the main arm's: `a.b=v` names `a.b` (and
what is under it); a group override `group=option` names the keys its file sets, following the
file's own defaults list (`- option` of its group, `override /group: option`, `/group: option`): a
file of the `_global_` package names each key it sets, a file of another package names that package
as a whole (a group option replaces its subtree). `paths.*` and `seed` are exempt: every lineage has
its own directory and seed. Anything else that differs (a plugin or code default that moves with the
arm) is an unexpected difference and the study refuses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from pipeline.config import Config, ConfigError, resolved_dict
from pipeline.infra.locate import conf_dir

EXEMPT = ("paths", "seed")
_PACKAGE = re.compile(r"^#\s*@package\s+(\S+)", re.M)


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted leaf keys; lists and scalars are leaves (compared whole)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def resolved(cfg: Config) -> dict[str, Any]:
    """The config's leaves, dotted key -> plain value (paths as strings, so they diff and serialise)."""
    def plain(x: Any) -> Any:
        if isinstance(x, Path):
            return str(x)
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        return x

    return {k: plain(v) for k, v in _flat(resolved_dict(cfg)).items()}  # the methods' knobs included


def _group_file(group: str, option: str) -> Path:
    path = conf_dir() / group / f"{option}.yaml"
    if not path.is_file():
        raise ConfigError(f"invalid config value for '{group}': no conf/{group}/{option}.yaml")
    return path


def _file_keys(group: str, option: str, seen: set[tuple[str, str]]) -> set[str]:
    """The keys `group=option` sets: its body's leaves under its package, and its defaults list's."""
    if (group, option) in seen:
        return set()
    seen.add((group, option))
    path = _group_file(group, option)
    text = path.read_text()
    m = _PACKAGE.search(text)
    package = (m.group(1) if m else group.replace("/", ".")).replace("_group_", group.replace("/", "."))
    body = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
    defaults = body.pop("defaults", []) if isinstance(body, dict) else []
    if package == "_global_":
        keys = set(_flat(body)) if isinstance(body, dict) else set()
    else:
        keys = {package}  # a non-global group option replaces its whole subtree
    for entry in defaults or []:
        if entry == "_self_":
            continue
        # `- option` is of this file's group; `{/g: option}` absolute, `{g: option}` under this group
        name, option = (group, entry) if isinstance(entry, str) else next(iter(entry.items()))
        if option is None:
            continue
        if not isinstance(entry, str):
            name = str(name).removeprefix("override ").strip().split("@")[0]
            name = name[1:] if name.startswith("/") else f"{group}/{name}"
        keys |= _file_keys(name, str(option), seen)
    return keys


def named_keys(overrides: list[str]) -> set[str]:
    """The config keys a list of Hydra overrides names (group overrides expanded to their file's keys)."""
    groups = {p.name for p in conf_dir().iterdir() if p.is_dir()}
    out: set[str] = set()
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        if key in groups and value not in ("", "null"):
            out |= _file_keys(key, value, set())
        else:  # a plain key, or a group removed (`~group`, `group=null`): the key itself
            out.add(key)
    return out


def _allowed(key: str, named: set[str]) -> bool:
    if key.split(".")[0] in EXEMPT:
        return True
    return any(key == n or key.startswith(n + ".") or n.startswith(key + ".") for n in named)


def differences(main: Config, arm: Config) -> dict[str, list[Any]]:
    """Every leaf key whose value differs between the two configs: key -> [main value, arm value]."""
    a, b = resolved(main), resolved(arm)
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def check_arm(arm: str, main: str, diff: dict[str, list[Any]], arm_overrides: list[str],
              main_overrides: list[str]) -> dict[str, list[Any]]:
    """The arm's recorded difference from the main arm (exempt keys left out); ConfigError listing
    the keys that differ although neither arm's overrides name them."""
    named = named_keys(arm_overrides) | named_keys(main_overrides)
    unexpected = [k for k in diff if not _allowed(k, named)]
    if unexpected:
        raise ConfigError(f"invalid config value for 'study.arms.{arm}': differs from the main arm {main!r} in "
                          f"keys its overrides do not name: {unexpected} (a control must change one thing)")
    return {k: v for k, v in diff.items() if k.split(".")[0] not in EXEMPT}
