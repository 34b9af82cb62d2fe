"""What the teacher is shown: the search space, the lineage history as a compact table, the data.

The prompt must fit small models' contexts (2k tokens, minus the answer), so the history is a
pipe-separated table of the last few generations with short number formats, and data stats are
cut to a few numbers. `render()` is pure; `history()` reads the ledger and the generation dirs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.infra import metricspec
from pipeline.config import EvalConfig, Range, SearchSpace
from pipeline.lineage import GenerationDir, Lineage
from pipeline.propose.validate import FIELDS, INT_FIELDS, MAX_RATIONALE_CHARS
from pipeline.stats.ledger import points

# One-line meanings for the names that do not explain themselves.
MEANING = {
    "epochs": "passes over the training data",
    "lora_r": "LoRA rank, 0 = full fine-tuning",
    "batch_size": "effective batch size",
    "max_seq_length": "tokens per training example",
    "num_examples": "training examples drawn from the data pool",
    "math_fraction": "share of math examples, the rest is code",
    "synth_temperature": "sampling temperature when writing this generation's training data",
}
# Steer K candidates apart even under greedy decoding (candidate 0 is always the best guess).
HINTS = [
    "Propose the setting you expect to score best.",
    "Propose a more conservative setting (lower learning rate or fewer epochs) than your best.",
    "Propose a more exploratory setting (higher learning rate or more examples) than your best.",
    "Propose a setting with a different LoRA capacity (lora_r, lora_alpha) than your best.",
    "Propose a setting with a different data mix (num_examples, math_fraction) than your best.",
]
MAX_DATA_ITEMS = 4
MAX_REASON_CHARS = 64
# Data stats most worth the teacher's attention come first (by substring of the key).
DATA_PREFERRED = ("train", "val", "kept", "verified", "accept", "rate", "total", "math", "code")


@dataclass
class HistoryRow:
    name: str
    status: str
    metrics: dict[str, float]  # validation metrics only, the gate metric first
    hparams: dict[str, Any] | None  # accepted hparams (None for gen 0, the base model)
    source: str  # how they were chosen (pipeline.propose.validate.SOURCES), "" for gen 0
    data: dict[str, float]  # a few numbers from <gen>/synth/stats.json
    reasons: list[str] = field(default_factory=list)


def fmt(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if math.isfinite(v) and v.is_integer() and abs(v) < 1e6:
        return str(int(v))  # 20000.0 reads better than 2e+04
    return f"{v:.3g}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent or corrupt: the history simply has a gap there
        return None


def data_stats(path: Path) -> dict[str, float]:
    """A few numeric leaves of a synth stats.json (nested keys dotted), preferred keys first."""
    obj = _read_json(path)
    flat: dict[str, float] = {}

    def walk(prefix: str, o: Any, depth: int) -> None:
        if isinstance(o, dict) and depth < 3:
            for k, v in o.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v, depth + 1)
        elif isinstance(o, (int, float)) and not isinstance(o, bool) and math.isfinite(o):
            flat[prefix] = o

    walk("", obj, 0)
    rank = lambda k: next((i for i, p in enumerate(DATA_PREFERRED) if p in k.lower()), len(DATA_PREFERRED))
    keys = sorted(flat, key=lambda k: (rank(k), k))[:MAX_DATA_ITEMS]
    return {k: flat[k] for k in keys}


def val_metrics(metrics: dict, gate_metric: str, limit: int = 3, eval_cfg: EvalConfig | None = None
                ) -> dict[str, float]:
    """The gate metric, then other validation metrics (never test-split numbers: they must not steer
    training), as point values: the teacher sees no `_lo/_hi/_n` interval keys. With `eval_cfg`
    (the stage's), a metric is shown only when its splits are known and none is a test split
    (pipeline.infra.metricspec), whatever its name; without, by the task name's `val`."""
    metrics = points(metrics)
    if eval_cfg is not None:
        allowed = metricspec.decision_metrics(metrics, eval_cfg)
        metrics = {k: v for k, v in allowed.items() if not k.startswith("drift.")}
        named = sorted(k for k in metrics if k != gate_metric)
    else:
        named = sorted(k for k in metrics if k != gate_metric and "val" in k.split(".")[0])
    keys = ([gate_metric] if gate_metric in metrics else []) + named
    out = {}
    for k in keys[:limit]:
        v = metrics[k]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = v
    return out


def history(lineage: Lineage, current: GenerationDir, gate_metric: str, eval_cfg: EvalConfig | None = None
            ) -> list[HistoryRow]:
    """Every earlier generation in the ledger (oldest first), with its accepted hparams and data stats
    (`eval_cfg`: which metrics may be shown, `val_metrics`)."""
    rows = []
    for r in lineage.rows():
        if not isinstance(r.get("gen"), int) or r["gen"] >= current.index or r.get("name") == current.name:
            continue
        g = lineage.gen(r["gen"], r["name"])
        acc = _read_json(g.path / "propose" / "accepted.json")
        hp = acc.get("hparams") if isinstance(acc, dict) and isinstance(acc.get("hparams"), dict) else None
        rows.append(HistoryRow(
            name=r["name"], status=str(r.get("status", "?")),
            metrics=val_metrics(r.get("metrics") or {}, gate_metric, eval_cfg=eval_cfg), hparams=hp,
            source=str(acc.get("source", "")) if isinstance(acc, dict) else "",
            data=data_stats(g.path / "synth" / "stats.json"),
            reasons=[str(x) for x in (r.get("gate_reasons") or [])],
        ))
    return rows


def best_setting(rows: list[HistoryRow], gate_metric: str) -> tuple[dict, str] | None:
    """The accepted hparams of the promoted generation with the highest validation metric (ties: earliest)."""
    best = None
    for r in rows:
        v = r.metrics.get(gate_metric)
        if r.status != "promoted" or r.hparams is None or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        if best is None or v > best[0]:
            best = (v, r.hparams, r.name)
    return (best[1], best[2]) if best else None


def space_lines(space: SearchSpace) -> list[str]:
    lines = []
    for n in FIELDS:
        s = getattr(space, n)
        rng = f"{fmt(s.low)} to {fmt(s.high)}" if isinstance(s, Range) else "one of " + ", ".join(map(fmt, s))
        kind = "integer, " if n in INT_FIELDS and isinstance(s, Range) else ""
        lines.append(f"- {n}: {kind}{rng}" + (f" ({MEANING[n]})" if n in MEANING else ""))
    return lines


def history_table(rows: list[HistoryRow], gate_metric: str) -> list[str]:
    """Header plus one line per generation; the gate metric's name is said once, in the header."""
    out = [f"gen|status|{gate_metric}|" + "|".join(FIELDS) + "|source|data|gate reasons"]
    for r in rows:
        val = " ".join(fmt(v) if k == gate_metric else f"{k}={fmt(v)}" for k, v in r.metrics.items()) or "-"
        hp = "|".join(fmt(r.hparams.get(n, "-")) for n in FIELDS) if r.hparams else "|".join(["-"] * len(FIELDS))
        data = " ".join(f"{k}={fmt(v)}" for k, v in r.data.items()) or "-"
        why = "; ".join(r.reasons)
        why = (why[: MAX_REASON_CHARS - 3] + "...") if len(why) > MAX_REASON_CHARS else (why or "-")
        out.append(f"{r.name}|{r.status}|{val}|{hp}|{r.source or 'base'}|{data}|{why}")
    return out


def render(space: SearchSpace, rows: list[HistoryRow], data_now: dict[str, float], best: tuple[dict, str] | None,
           gate_metric: str, candidate: int, n_candidates: int) -> str:
    """The full prompt for one candidate. `rows` is already cut to the generations to show.

    No ready-made setting is offered to copy: the teacher sees the space, the history (each row's
    setting and outcome) and the data, and must choose; an answer identical to a setting shown, the
    defaults included, is recorded as `echo` (pipeline.propose.validate.mark_echo)."""
    parts = [
        "You choose how your successor model is fine-tuned on verified math and code solutions you wrote. "
        f"Goal: a higher {gate_metric}; a successor scoring below its teacher is rejected.",
        "",
        "Search space (values outside are clamped):",
        *space_lines(space),
        "synth_temperature is used by this generation's shared data synthesis (all candidates train on that data; "
        "the first candidate's value is used); the other fields apply to your candidate's own training.",
        "",
    ]
    if rows:
        parts += [f"History of the last {len(rows)} generation(s), oldest first:", *history_table(rows, gate_metric), ""]
    else:
        parts += ["History: none yet (this is the first trained generation).", ""]
    data = " ".join(f"{k}={fmt(v)}" for k, v in data_now.items())
    parts += [f"Training data so far: {data or 'no statistics yet'}."]
    if best:
        parts.append(f"Best so far: {best[1]} (its setting and outcome are in the history).")
    parts += ["Repeating a setting from the history unchanged is recorded as an echo, not as a proposal.", ""]
    if n_candidates > 1:
        parts.append(f"Candidate {candidate + 1} of {n_candidates}. {HINTS[candidate % len(HINTS)]}")
    else:
        parts.append(HINTS[0])
    parts.append('Reply with one JSON object only: every field of the search space plus "rationale" '
                 '(one short sentence).')
    return "\n".join(parts)


def json_schema(space: SearchSpace) -> dict:
    """The answer's shape for constrained decoding: every field required, numbers bounded, rationale last."""
    props: dict[str, Any] = {}
    for n in FIELDS:
        s = getattr(space, n)
        if isinstance(s, Range):
            props[n] = {"type": "integer" if n in INT_FIELDS else "number", "minimum": s.low, "maximum": s.high}
            if n in INT_FIELDS:
                props[n].update(minimum=math.ceil(s.low), maximum=math.floor(s.high))
        else:
            props[n] = {"enum": sorted(s)}
    props["rationale"] = {"type": "string", "maxLength": min(MAX_RATIONALE_CHARS, 160)}
    return {"type": "object", "properties": props, "required": [*FIELDS, "rationale"], "additionalProperties": False}
