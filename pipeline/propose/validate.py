"""Turn whatever the teacher wrote into hyperparameters that are safe to train with.

`validate(raw, space, defaults, history_best)` never raises and never returns a value outside
`conf/propose/*.yaml: space`. Per field: coerce (a numeric string such as "1e-4" is accepted, "fast"
is not), clamp into the range (choices: the nearest allowed value), or replace with the default;
at most ONE warning per field. A choice field's value outside the choices' domain (below the
smallest or above the largest choice, negative, or, where 0 is a choice, a positive value below the
smallest positive one) is not snapped but replaced by the default: lora_r 0 means FULL fine-tuning,
the most expensive mode, and must never be what "-3" or "2" turns into. The usual HF names
(`num_train_epochs`, `lr`, `lora_rank`, ... see ALIASES) are read as their field when the field's
own key is absent. Unknown keys are ignored with one warning. Output without a JSON object falls
back, deterministically, to the best setting in the history or the config default.

    python -m pipeline.propose validate RAW.txt      # the same function from the command line
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import HParams, Range, SearchSpace
from pipeline.engine import parse_json_object

FIELDS = [f.name for f in dataclasses.fields(HParams)]
_HINTS = typing.get_type_hints(HParams)
INT_FIELDS = {n for n in FIELDS if _HINTS[n] is int}
# Only this much of a raw answer is searched for JSON: a teacher answer is at most max_tokens long,
# and the search is quadratic in the worst case (junk full of '{').
MAX_PARSE_CHARS = 65536
MAX_RATIONALE_CHARS = 500
# teacher: as proposed | echo: identical to a setting the prompt showed (defaults, best so far, a history
# row) | clamped: repaired into the space (a clamped echo too) | fallback: unusable answer | random:
# sampled from the space (propose.mode=random, a control arm) | config: propose.mode=config | sweep:
# a sweep job's overrides laid on top (pipeline.loop.candidates)
SOURCES = ("teacher", "echo", "clamped", "fallback", "random", "config", "sweep")
# Names a teacher trained on HF/trl code tends to write -> the field they mean (first alias present wins).
ALIASES = {
    "num_train_epochs": "epochs", "per_device_train_batch_size": "batch_size", "train_batch_size": "batch_size",
    "lora_rank": "lora_r", "r": "lora_r", "lr": "learning_rate", "max_length": "max_seq_length",
    "max_seq_len": "max_seq_length", "warmup": "warmup_ratio", "temperature": "synth_temperature",
}


@dataclass
class Validated:
    hparams: dict[str, Any]  # every HParams field, each inside the search space
    warnings: list[str] = field(default_factory=list)
    fallback: bool = False  # True when nothing usable was parsed
    source: str = "teacher"  # one of SOURCES
    rationale: str = ""
    parsed: dict | None = None  # the JSON object found in the raw text, if any

    def record(self) -> dict:
        """The JSON-able form written to accepted.json (one candidate)."""
        return {"hparams": self.hparams, "source": self.source, "warnings": self.warnings,
                "fallback": self.fallback, "rationale": self.rationale}


def _short(v: Any, n: int = 40) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def bounds(space: SearchSpace, name: str) -> tuple[float, float]:
    s = getattr(space, name)
    if isinstance(s, Range):
        return float(s.low), float(s.high)
    return float(min(s)), float(max(s))


def _fit(name: str, x: float, space: SearchSpace) -> float | int:
    """Clamp a finite number into the field's range or snap it to the nearest allowed choice."""
    s = getattr(space, name)
    if isinstance(s, Range):
        if name in INT_FIELDS:
            # Integer bounds (ProposeConfig.validate ensures one integer lies inside the range).
            return int(min(max(round(x), math.ceil(s.low)), math.floor(s.high)))
        return min(max(x, float(s.low)), float(s.high))
    # Nearest allowed value; ties go to the smaller one (sorted first) for determinism.
    return min(sorted(s), key=lambda c: abs(float(c) - x))


def _out_of_domain(x: float, s: Range | list) -> bool:
    """Whether a choice field's value is too far off to snap to a choice (see the module doc)."""
    if isinstance(s, Range):
        return False
    positive = [c for c in s if c > 0]
    zero_is_a_mode = 0 in s and bool(positive) and 0 < x < min(positive)  # e.g. lora_r: 0 = full fine-tuning
    return x < 0 or x < min(s) or x > max(s) or zero_is_a_mode


def read_aliases(hp: dict) -> tuple[dict, dict[str, str]]:
    """`hp` with each HF-style key (ALIASES) moved to its field where the field's own key is absent,
    and {field: the alias read}. An alias whose field is already given stays (an ignored key)."""
    out, used = dict(hp), {}
    for alias, name in ALIASES.items():
        if alias in hp and name not in hp and name not in used:
            out[name] = out.pop(alias)
            used[name] = alias
    return out, used


def check_field(name: str, value: Any, space: SearchSpace, default: Any) -> tuple[Any, str | None]:
    """One field -> (a value inside the space, a warning or None)."""
    if value is None:
        return default, f"{name}: missing -> default {default}"
    if isinstance(value, bool):
        return default, f"{name}: bool {value} where a number is expected -> default {default}"
    how = ""
    if isinstance(value, str):
        try:
            x = float(value.strip())
            how = f"string {_short(value)} coerced"
        except (ValueError, OverflowError):
            return default, f"{name}: not a number {_short(value)} -> default {default}"
    elif isinstance(value, int):
        # float() overflows past ~1e308; such an integer is simply huge, so it clamps to the top.
        x = float(value) if abs(value) < 10**300 else (1e300 if value > 0 else -1e300)
    elif isinstance(value, float):
        x = value
    else:
        return default, f"{name}: wrong type {type(value).__name__} -> default {default}"
    if not math.isfinite(x):
        return default, f"{name}: non-finite {_short(value)} -> default {default}"
    if _out_of_domain(x, getattr(space, name)):
        return default, f"{name}: {how + ', ' if how else ''}out of domain {_short(value)} -> default {default}"
    y = _fit(name, x, space)
    if name not in INT_FIELDS:
        y = float(y)
    if float(y) != x:
        low, high = bounds(space, name)
        why = "not an allowed choice" if not isinstance(getattr(space, name), Range) else (
            "below range" if x < low else "above range" if x > high else "not an integer")
        return y, f"{name}: {how + ', ' if how else ''}{why} {_short(value)} -> {y}"
    if how:
        return y, f"{name}: {how} -> {y}"
    return y, None


def _salvage(text: str) -> dict | None:
    """A JSON object cut off by max_tokens: keep the fields before the last complete comma."""
    start = text.find("{")
    if start < 0:
        return None
    body = text[start:]
    cuts = [i for i, c in enumerate(body) if c == ","][-32:]  # the last few cut points suffice
    for i in reversed(cuts):
        try:
            obj = json.loads(body[:i] + "}")
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            return obj
    return None


def parse(text: str) -> tuple[dict | None, list[str]]:
    """The teacher's JSON object (unwrapping {"hparams": {...}}), and parse warnings."""
    warnings: list[str] = []
    if len(text) > MAX_PARSE_CHARS:
        warnings.append(f"input: {len(text)} chars, only the first {MAX_PARSE_CHARS} searched for JSON")
        text = text[:MAX_PARSE_CHARS]
    try:
        obj = parse_json_object(text)
    except (ValueError, RecursionError):  # e.g. nesting deeper than the JSON decoder allows
        obj = None
    if obj is None:
        obj = _salvage(text)
        if obj is not None:
            warnings.append(f"input: truncated JSON, salvaged {len(obj)} complete key(s)")
    return obj, warnings


def _hparams_of(obj: dict) -> tuple[dict, str]:
    """Accept both a flat answer and {"hparams": {...}, "rationale": ...}."""
    rationale = obj.get("rationale")
    inner = obj.get("hparams")
    if isinstance(inner, dict):
        rationale = inner.get("rationale", rationale)
        obj = inner
    return obj, rationale if isinstance(rationale, str) else ""


def validate(raw: Any, space: SearchSpace, defaults: HParams, history_best: dict | None = None) -> Validated:
    """Raw teacher text (str/bytes) or an already parsed object -> a Validated proposal. Never raises."""
    try:
        return _validate(raw, space, defaults, history_best)
    except Exception as e:  # a bug here must not stop a generation: fall back, and say why
        return fallback(space, defaults, None, f"internal validation error {type(e).__name__}: {_short(str(e), 200)}")


def _validate(raw: Any, space: SearchSpace, defaults: HParams, history_best: dict | None) -> Validated:
    warnings: list[str] = []
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", errors="replace")
    if isinstance(raw, str):
        obj, warnings = parse(raw)
    else:
        obj = raw
    if not isinstance(obj, dict):
        why = "no JSON object in the output" if isinstance(raw, str) else f"not a JSON object ({type(raw).__name__})"
        v = fallback(space, defaults, history_best, why)
        v.warnings[:0] = warnings
        return v
    hp, rationale = _hparams_of(obj)
    hp, aliased = read_aliases(hp)
    dd = defaults_dict(space, defaults)
    out: dict[str, Any] = {}
    changed = False
    for name in FIELDS:
        value, warn = check_field(name, hp.get(name), space, dd[name])
        out[name] = value
        if name in aliased:  # still one warning for the field
            read = f"{name}: read {_short(aliased[name], 30)} as {name}"
            warn = read + ("; " + warn[len(name) + 2:] if warn else "")
        if warn:
            warnings.append(warn)
            changed = True
    extra = sorted(str(k) for k in hp if k not in FIELDS and k not in ("rationale", "hparams"))
    if extra:
        shown = ", ".join(_short(k, 30) for k in extra[:8]) + (", ..." if len(extra) > 8 else "")
        warnings.append(f"ignored {len(extra)} unknown key(s): {shown}")
    return Validated(hparams=out, warnings=warnings, fallback=False, source="clamped" if changed else "teacher",
                     rationale=rationale[:MAX_RATIONALE_CHARS], parsed=obj)


def fallback(space: SearchSpace, defaults: HParams, history_best: dict | None, why: str) -> Validated:
    """The deterministic fallback: the history's best setting (re-checked against today's space) or the default."""
    base = defaults_dict(space, defaults)
    origin = "config default"
    if isinstance(history_best, dict):
        checked = _validate(history_best, space, defaults, None)
        base, origin = checked.hparams, "the best promoted generation's setting"
    return Validated(hparams=base, warnings=[f"fallback to {origin}: {why}"], fallback=True, source="fallback",
                     rationale=f"fallback: {why}")


def defaults_dict(space: SearchSpace, defaults: HParams) -> dict[str, Any]:
    """The config default as a dict, fitted to the space (ProposeConfig.validate already requires it inside)."""
    out = {}
    for n in FIELDS:
        v = getattr(defaults, n)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        y = _fit(n, float(v) if ok else bounds(space, n)[0], space)
        out[n] = y if n in INT_FIELDS else float(y)
    return out


def in_space(hp: dict, space: SearchSpace) -> bool:
    """Whether every field is present, of the right type and inside the space (used by tests and checks)."""
    for n in FIELDS:
        v = hp.get(n)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        if n in INT_FIELDS and not isinstance(v, int):
            return False
        s = getattr(space, n)
        if isinstance(s, Range) and not (s.low <= v <= s.high):
            return False
        if not isinstance(s, Range) and v not in s:
            return False
    return True


def mark_echo(v: Validated, shown: list[tuple[str, dict]]) -> Validated:
    """`v` recorded as `echo` when its (unrepaired) hparams equal a setting the prompt showed:
    `shown` is [(what it was, hparams)], e.g. ("the default", {...}), ("gen_003", {...})."""
    if v.source != "teacher":  # clamped, fallback: already not the teacher's own setting as proposed
        return v
    hit = next((name for name, hp in shown if all(hp.get(n) == v.hparams[n] for n in FIELDS)), None)
    if hit is not None:
        v.source = "echo"
        v.warnings.append(f"echo: identical to {hit}")
    return v


def sample(space: SearchSpace, rng) -> dict[str, Any]:
    """One setting drawn from the space (propose.mode=random): uniform per field, log-uniform for a
    range spanning decades (learning_rate), uniform over a choice list."""
    out: dict[str, Any] = {}
    for n in FIELDS:
        s = getattr(space, n)
        if not isinstance(s, Range):
            out[n] = rng.choice(sorted(s))
            out[n] = out[n] if n in INT_FIELDS else float(out[n])
            continue
        low, high = float(s.low), float(s.high)
        if n in INT_FIELDS:
            out[n] = rng.randint(math.ceil(low), math.floor(high))
        elif low > 0 and high / low >= 100:
            out[n] = _fit(n, 10 ** rng.uniform(math.log10(low), math.log10(high)), space)
        else:
            out[n] = rng.uniform(low, high)
    return out


def perturb(base: dict, space: SearchSpace, taken: list[dict], limit: int = 2000) -> tuple[dict, str] | None:
    """A deterministic neighbour of `base` inside the space that differs from every dict in `taken`.

    Step k changes field k mod n_fields, alternating up/down, with a step that grows every full
    round: a range moves by a quarter of its width per round (log scale for learning_rate and other
    ranges spanning decades), a choice moves to a neighbouring allowed value.
    """
    for k in range(limit):
        name = FIELDS[k % len(FIELDS)]
        rnd = k // len(FIELDS)  # rounds go +1, -1, +2, -2, ... steps
        sign, mag = (1 if rnd % 2 == 0 else -1), rnd // 2 + 1
        s = getattr(space, name)
        cand = dict(base)
        if isinstance(s, Range):
            low, high = float(s.low), float(s.high)
            if low > 0 and high / low >= 100:  # decades: step in log space
                x = math.log10(base[name]) + sign * mag * 0.25 * math.log10(high / low)
                new = _fit(name, 10**x, space)
            else:
                new = _fit(name, base[name] + sign * mag * 0.25 * (high - low), space)
        else:
            opts = sorted(s)
            i = opts.index(base[name]) if base[name] in opts else 0
            new = opts[min(max(i + sign * mag, 0), len(opts) - 1)]
        cand[name] = new if name in INT_FIELDS else float(new)
        if cand != base and all(cand != t for t in taken):
            return cand, f"perturbed {name} {base[name]} -> {cand[name]}"
    return None
