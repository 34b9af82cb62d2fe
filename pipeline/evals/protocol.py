"""A task's protocol: how its items are asked and judged, independent of the model and the subset.

    from pipeline.evals.protocol import protocol_key
    protocol_key(cfg.eval.tasks["gsm8k_val"], cfg)     # "3f9c..." (the same for every generation)

`protocol_key` hashes the task spec minus what only picks items or the model (`n`, the subset
`seed`), plus what changes an item's outcome besides the model: the chat template kwargs, the stop
strings (the task's and its protocol's), whether generation stops at the end of turn, and, for a
sandboxed benchmark, the sandbox limits. Every eval record carries it (`protocol`), and records of
two generations are paired on (item id, protocol): the gate re-scores a reference whose records were
made under another protocol (pipeline.evals.reference) rather than compare unlike with unlike;
the drift stage leaves such a task out of its agreement. A record's `key` (pipeline.evals.stage
`task_key`) adds the model and the subset, so it says when records can be reused, not what they mean.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.evals import BENCHMARKS
from pipeline.evals.base import Protocol
from pipeline.infra.io import JsonlError, hash_obj, iter_jsonl

if TYPE_CHECKING:
    from pipeline.config import Config, EvalTask

NOT_PROTOCOL = ("n", "seed")  # the subset size and the subset seed choose items, not how they are asked


def protocol(spec: "EvalTask") -> Protocol:
    return BENCHMARKS.get(spec.benchmark).protocols[spec.prompt]


def stop_strings(spec: "EvalTask") -> list[str]:
    """The task's own `stop`, then its protocol's (each once)."""
    return list(dict.fromkeys([*spec.stop, *protocol(spec).stop]))


def protocol_fields(spec: "EvalTask", cfg: "Config") -> dict:
    """What `protocol_key` hashes (kept readable in the reference step's manifest)."""
    fields = {k: v for k, v in dataclasses.asdict(spec).items() if k not in NOT_PROTOCOL}
    out = {"spec": fields, "chat": dict(cfg.model.chat_template_kwargs), "stop": stop_strings(spec),
           "stop_at_end_of_turn": protocol(spec).chat}
    if BENCHMARKS.get(spec.benchmark).sandboxed:  # verdicts depend on the sandbox's limits
        out["sandbox"] = {k: v for k, v in dataclasses.asdict(cfg.sandbox).items() if k != "workers"}
    return out


def protocol_key(spec: "EvalTask", cfg: "Config") -> str:
    """The task's protocol identity (module docstring): equal keys mean outcomes are comparable."""
    return hash_obj(protocol_fields(spec, cfg))


def records_protocols(path: Path) -> set[str | None] | None:
    """The `protocol` values of an eval records file (None for records from before it was kept),
    or None when the file is absent or unreadable."""
    if not Path(path).exists():
        return None
    try:
        return {r.get("protocol") for r in iter_jsonl(path)}
    except (JsonlError, ValueError, OSError):
        return None
