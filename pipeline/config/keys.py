"""Which dotted keys the schema declares, and the one-line error for a key it does not.

Hydra refuses `train.lerning_rate=1e-4` but accepts `+train.lr=1` (the `+` lifts the struct flag), and
the composed config then carries a key nothing reads. `check_overrides` refuses both before Hydra
composes, and `unknown_keys` finds any extra key in a composed config, so no source of config can
add a key silently. The error names the key, then the likely intended one: a key in `MOVED` (it
lived there once), else the closest declared keys (difflib).

    python -c "from pipeline.config.keys import schema_keys; print(*schema_keys(), sep='\\n')"
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from typing import Any, Iterator

from pipeline.config.base import ConfigError
from pipeline.config.hparams import HParams

# Keys that moved: old dotted key -> where it lives now (a later move adds one line here).
MOVED: dict[str, str] = {
    # the training hyperparameters are proposed by the teacher; `propose.hparams` is the fallback and
    # what `propose.mode=config` trains with, `candidate.hparams.<name>` overrides one candidate
    **{f"train.{f.name}": f"propose.hparams.{f.name}" for f in dataclasses.fields(HParams)},
    "train.lr": "propose.hparams.learning_rate",
    "train.dpo.enabled": "train.method (e.g. train.method=sft+dpo)",
    # the RL prompt file's GSM8K pool questions are synthesis, not the grpo method's training
    "train.grpo.pool_questions": "synth.prompts.pool_questions",
}

ANY = "<name>"  # stands for a free key of a Dict field (eval.tasks.<name>.n)


def _unwrap(tp: Any) -> Any:
    """Optional[X] -> X."""
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else Any
    return tp


@functools.lru_cache(maxsize=None)
def _declared(tp: type) -> dict[str, Any]:
    """A schema dataclass's field names -> their resolved types (cached: every compose walks them)."""
    hints = typing.get_type_hints(tp)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(tp)}


def _fields(tp: type) -> dict[str, Any]:
    """`_declared`, plus under `train` each registered method's knobs (`train.<method>`, read now: a
    plugin may have registered one since the last call)."""
    from pipeline.config import TrainConfig, method_configs

    return {**_declared(tp), **method_configs()} if tp is TrainConfig else _declared(tp)


def _child(tp: Any, part: str) -> tuple[bool, Any]:
    """(is `part` a key under a node of type `tp`, the child's type)."""
    tp = _unwrap(tp)
    if tp is Any:
        return True, Any
    if dataclasses.is_dataclass(tp):
        fields = _fields(tp)
        return (part in fields), fields.get(part, Any)
    origin = typing.get_origin(tp)
    if origin in (dict, typing.Dict):
        return True, (typing.get_args(tp) or (str, Any))[1]
    if origin in (list, typing.List):
        return part.lstrip("-").isdigit(), (typing.get_args(tp) or (Any,))[0]
    return False, None  # a leaf has no keys under it


def is_known(key: str, root: Any = None) -> bool:
    """Does the schema declare the dotted `key` (free keys of Dict fields allowed)?"""
    from pipeline.config import Config

    tp: Any = root or Config
    for part in key.split("."):
        ok, tp = _child(tp, part)
        if not ok:
            return False
    return True


def schema_keys(root: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key the schema declares (a Dict field's keys as `<name>`)."""
    from pipeline.config import Config

    return list(_keys(_unwrap(root or Config), prefix))


def _keys(tp: Any, prefix: str) -> Iterator[str]:
    tp = _unwrap(tp)
    if dataclasses.is_dataclass(tp):
        for name, child in _fields(tp).items():
            key = f"{prefix}{name}"
            yield key
            yield from _keys(child, key + ".")
    elif typing.get_origin(tp) in (dict, typing.Dict):
        yield from _keys((typing.get_args(tp) or (str, Any))[1], f"{prefix}{ANY}.")


def unknown_keys(node: Any, tp: Any = None, prefix: str = "") -> list[str]:
    """Dotted keys of a composed DictConfig (or plain dict) that the schema does not declare."""
    from omegaconf import DictConfig, ListConfig

    from pipeline.config import Config

    tp = _unwrap(tp or Config)
    out: list[str] = []
    if isinstance(node, (DictConfig, dict)):
        for k in node.keys():
            k = str(k)
            ok, child = _child(tp, k)
            if not ok:
                out.append(f"{prefix}{k}")
            elif child is not Any:
                out += unknown_keys(node._get_node(k) if isinstance(node, DictConfig) else node[k], child, f"{prefix}{k}.")
    elif isinstance(node, (ListConfig, list)):
        element = (typing.get_args(tp) or (Any,))[0] if typing.get_origin(tp) in (list, typing.List) else Any
        if element is not Any:
            for i in range(len(node)):
                out += unknown_keys(node._get_node(i) if isinstance(node, ListConfig) else node[i], element,
                                    f"{prefix}{i}.")
    return out


def _fill(known: str, key: str) -> str:
    """`eval.tasks.<name>.n` with `<name>` taken from `key` at the same place (eval.tasks.gsm8k_val.n)."""
    parts, given = known.split("."), key.split(".")
    return ".".join(given[i] if p == ANY and i < len(given) else p for i, p in enumerate(parts))


def suggestion(key: str) -> str:
    """Where `key` probably belongs: its new place if it moved, else the closest declared keys."""
    if key in MOVED:
        return f"it moved to {MOVED[key]}"
    known = [_fill(k, key) for k in schema_keys()]
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    if not close:  # the last part alone: `lr` somewhere else
        leaf = key.rsplit(".", 1)[-1]
        close = [k for k in known if difflib.get_close_matches(leaf, [k.rsplit(".", 1)[-1]], n=1, cutoff=0.8)][:3]
    return (f"did you mean {' or '.join(close)}?" if close
            else "the schema has no such key (python -m pipeline.loop --cfg job lists them)")


def unknown_key_error(key: str) -> ConfigError:
    return ConfigError(f"unknown config key '{key}': {suggestion(key)}")


def check_overrides(overrides: list[str]) -> None:
    """Refuse an override of a key the schema does not declare (`+key=value` included), before Hydra
    composes; config groups (`model=...`, `experiment=...`) and `hydra.*` are Hydra's to check."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    from pipeline.infra.locate import conf_dir

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as e:
        raise ConfigError(f"cannot parse override: {' '.join(str(e).split())}") from None
    for o in parsed:
        key = o.key_or_group
        if o.is_hydra_override() or key.startswith("hydra") or (conf_dir() / key).is_dir() or o.is_delete():
            continue
        if not is_known(key):
            raise unknown_key_error(key)


def one_line(e: BaseException) -> str:
    """Hydra's or OmegaConf's multi-line message (and its cause) as one line naming the key."""
    lines = [ln.strip() for ln in f"{e}\n{e.__cause__ or ''}".splitlines()]
    drop = ("reference_type=", "object_type=", "Config search path", "provider=", "See https://hydra.cc",
            "To append to your config")  # our own check refuses keys the schema lacks; `+` is no fix
    text = "; ".join(ln for ln in lines if ln and not ln.startswith(drop))
    return text.replace(":; ", ": ").replace(".; ", ": ").replace("; full_key:", " (key:") + (")" if "; full_key:" in text else "")
