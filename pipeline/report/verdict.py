"""One line per generation that says what happened, first: status, the reason that decided it, the gate
metric's change with its interval, the alignment metrics that moved significantly, wall time.

    from pipeline.report import verdict
    verdict.of(row, lineage_path, rows).line()
    # gen_001 rejected by synthesis: 1 red flag(s): 76 of 78 kept problems have the answer 2 | gsm8k_val.accuracy_flexible -0.020 [-0.090, +0.050] vs teacher | moved: drift.honesty -0.30 [-0.50, -0.10] | wall 19.6 min

The loop logs it at the end of each generation, `python -m pipeline.report` prints it above the table
and the HTML page at its top, each reading the same structured fields of `gate/decision.json` (its
`deciding` {rule, metric, reason}, and the checks' intervals), never parsed reason strings.
`deciding(decision)` is the one place that reads the deciding rule: a record without the field (the
gate before decision.json v2) has it derived from its checks there. The gate's other reason lines
fold under the verdict (`other_reasons`), inconclusive ones last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import probes
from pipeline.infra.io import read_json
from pipeline.infra.numbers import interval, plain, signed

SEP = " | "


def _change(check: dict) -> tuple[float | None, float | None, float | None]:
    """(change, lo, hi) of one check, signed so positive is better: the paired interval, or the point
    estimates' difference (no interval) for a reference without per-item records."""
    if check.get("better_diff") is not None or check.get("better_lo") is not None:
        return check.get("better_diff"), check.get("better_lo"), check.get("better_hi")
    if check.get("loss") is not None:
        return -float(check["loss"]), None, None
    return None, None, None


def change_text(check: dict) -> str:
    """`-0.020 [-0.090, +0.050]`, or `-0.050 (point estimate)` without per-item records."""
    d, lo, hi = _change(check)
    if lo is None or hi is None:
        return f"{signed(d)} (point estimate)" if d is not None else "no change measured"
    return f"{signed(d, (hi - lo) / 2)} {interval(lo, hi)}"


def _check_reason(label: str, check: dict, against: str) -> str:
    margin = check.get("margin")
    tail = f", margin {plain(margin)}" if margin is not None else ""
    return f"{label}: {check.get('verdict')}, change {change_text(check)} vs {against}{tail} (+ is better)"


def _rules(checks: dict) -> list[tuple[str, str | None, str, str]]:
    """(rule, metric, verdict, reason) of every check of a decision record, in the fixed order a
    rejection is explained in: the data first (it explains the rest), then capability, then budgets."""
    out = []
    flags = checks.get("red_flags")
    if isinstance(flags, dict):
        listed = flags.get("flags")
        if flags.get("passed") is False:
            why = (f"{len(listed)} red flag(s): {listed[0]}" + (f" (+{len(listed) - 1} more)" if len(listed) > 1 else "")
                   if listed else "no red-flag record (synth/stats.json)")
            out.append(("synthesis", None, "fail", why))
        else:
            out.append(("synthesis", None, "pass", "no red flags"))
    for rule, c in checks.items():  # a rule the gate decided before training (label_precision)
        if isinstance(c, dict) and rule not in ("capability", "budgets", "red_flags") and c.get("passed") is False:
            out.append((rule, None, "fail", f"{rule}: failed"))
    cap = checks.get("capability")
    if isinstance(cap, dict) and cap.get("verdict"):
        out.append(("capability", cap.get("metric"), cap["verdict"], _check_reason(cap.get("metric") or "capability",
                                                                                  cap, "teacher")))
    for name, b in (checks.get("budgets") or {}).items():
        if not isinstance(b, dict):
            continue
        if b.get("verdict") == "fail" and "total" not in b and "step" not in b:
            out.append(("budget", name, "fail", f"{name}: the candidate has no value but its references do"))
        for kind in ("total", "step"):
            c = b.get(kind)
            if isinstance(c, dict) and c.get("verdict"):
                against = c.get("against") or c.get("reference_generation") or ("gen 0" if kind == "total" else "parent")
                out.append(("budget", name, c["verdict"], _check_reason(f"{name} {kind} budget", c, against)))
    return out


def deciding(decision: dict) -> dict:
    """{rule, metric, reason} that decided a decision record: its own `deciding` field (decision.json
    v2), else derived from its checks: for a rejection the first failing rule (data, capability,
    budgets), for a status resting on inconclusive evidence the first inconclusive one, for a
    promotion "every rule passed". The only place the deciding rule is read."""
    if isinstance(decision.get("deciding"), dict):
        return decision["deciding"]
    if not decision.get("checks"):  # a record without structured checks (hand-made, or older): its first line
        return {"rule": None, "metric": None, "reason": (decision.get("reasons") or ["no reason recorded"])[0]}
    rules = _rules(decision["checks"])
    for wanted in ("fail", "inconclusive"):
        hit = next((r for r in rules if r[2] == wanted), None)
        if hit is not None and (wanted == "fail" or decision.get("evidence") == "inconclusive"
                                or decision.get("status") == "rejected"):
            return {"rule": hit[0], "metric": hit[1], "reason": hit[3]}
    if decision.get("status") == "promoted":
        cap = (decision.get("checks") or {}).get("capability") or {}
        return {"rule": "all", "metric": cap.get("metric"), "reason": "every rule passed"}
    return {"rule": None, "metric": None, "reason": (decision.get("reasons") or ["no reason recorded"])[0]}


_INCONCLUSIVE = re.compile(r"^[^,]*\binconclusive\b")


def other_reasons(reasons: list[str], decided: dict) -> list[str]:
    """The gate's reason lines except the deciding one, inconclusive ones last (by their label)."""
    rest = [r for r in dict.fromkeys(reasons) if r != decided.get("reason")]
    return sorted(rest, key=lambda r: bool(_INCONCLUSIVE.match(r)))


def wall(seconds: dict | None) -> str:
    total = sum(v for v in (seconds or {}).values() if isinstance(v, (int, float)))
    if not total:
        return ""
    return f"wall {plain(round(total))} s" if total < 120 else f"wall {total / 60:.1f} min"


def moved(checks: dict) -> list[str]:
    """The alignment (probe-suite) metrics whose paired interval against the parent (else gen 0)
    excludes no change, as `drift.honesty -0.30 [-0.50, -0.10]` (+ is better)."""
    out = []
    aligned = probes.alignment_metrics()
    for name, b in (checks.get("budgets") or {}).items():
        if name not in aligned or not isinstance(b, dict):
            continue
        c = b.get("step") if isinstance(b.get("step"), dict) and "better_lo" in b["step"] else b.get("total")
        if not isinstance(c, dict):
            continue
        _, lo, hi = _change(c)
        if lo is not None and hi is not None and (lo > 0 or hi < 0):
            out.append(f"{name} {change_text(c)}")
    return out


@dataclass
class Verdict:
    """One generation's verdict, as parts (the HTML page styles them) and as one line."""

    name: str
    status: str
    rule: str | None = None
    reason: str = ""
    gate_change: str = ""  # "<gate metric> <change> [interval] vs teacher"
    moved: list[str] = field(default_factory=list)
    wall: str = ""
    others: list[str] = field(default_factory=list)  # the gate's other lines, inconclusive last
    gate_status: str | None = None  # the decision record's status, where the ledger's differs
    inconclusive: bool = False  # the status rests on gate.on_inconclusive

    @property
    def head(self) -> str:
        by = f" by {self.rule}" if self.rule and self.rule != "all" and self.status == "rejected" else ""
        said = f" (the gate said {self.gate_status})" if self.gate_status else ""
        how = " on inconclusive evidence" if self.inconclusive else ""
        return f"{self.name} {self.status}{by}{said}{how}"

    def parts(self) -> list[str]:
        out = [f"{self.head}: {self.reason}" if self.reason else self.head]
        if self.gate_change:
            out.append(self.gate_change)
        if self.rule is not None or self.moved:
            out.append("moved: " + (", ".join(self.moved) if self.moved else "none"))
        return out + ([self.wall] if self.wall else [])

    def line(self) -> str:
        return SEP.join(self.parts())


def read_decision(gen_path: Path) -> dict | None:
    path = Path(gen_path) / "gate" / "decision.json"
    return read_json(path) if path.exists() else None


def build(row: dict, decision: dict | None, candidates: dict[str, dict] | None = None) -> Verdict:
    """The verdict of one ledger row from its decision record (for a generation that selected among
    candidates, the selected candidate's; `candidates`: name -> decision of each candidate, used when
    none was selected)."""
    name, status = row["name"], row.get("status") or "-"
    v = Verdict(name, status, wall=wall(row.get("seconds")))
    if row.get("gen") == 0:
        v.reason = "the baseline (gen 0 is not gated)"
        return v
    if decision is None:
        if candidates:
            v.rule = "selection"
            v.reason = "no candidate passed the gate (" + "; ".join(
                f"{k}: {deciding(d)['reason']}" for k, d in candidates.items()) + ")"
            v.others = list(row.get("gate_reasons") or [])
        elif row.get("gate_reasons"):  # a ledger row whose gate left no decision record: the ledger's lines
            v.reason, *v.others = row["gate_reasons"]
        else:
            v.reason = "no gate verdict yet" if status == "candidate" else "no gate record (gate/decision.json)"
        return v
    decided = deciding(decision)
    v.rule, v.reason = decided.get("rule"), decided.get("reason") or ""
    v.inconclusive = decision.get("evidence") == "inconclusive"
    if decision.get("status") and decision.get("status") != status and not row.get("selected"):
        v.gate_status = decision["status"]
    if row.get("selected"):
        v.reason = f"selected {row['selected']}: {v.reason}"
    checks = decision.get("checks") or {}
    cap = checks.get("capability")
    if isinstance(cap, dict) and cap.get("metric") and decided.get("rule") != "capability":
        v.gate_change = f"{cap['metric']} {change_text(cap)} vs teacher"
    v.moved = moved(checks)
    v.others = other_reasons(list(decision.get("reasons") or row.get("gate_reasons") or []), decided)
    return v


def of(row: dict, lineage_path: str | Path, rows: list[dict] | None = None) -> Verdict:
    """`build` with the records read from `<lineage_path>/<name>/gate/decision.json` (the selected
    candidate's for a generation that selected one; each candidate's when none was)."""
    lineage_path = Path(lineage_path)
    decision = read_decision(lineage_path / (row.get("selected") or row["name"]))
    kids = None
    if decision is None and rows:
        found = {r["name"]: read_decision(lineage_path / r["name"]) for r in rows
                 if r["name"].startswith(f"{row['name']}-")}
        kids = {k: d for k, d in found.items() if d is not None}
    return build(row, decision, kids)


def lines(rows: list[dict], lineage_path: str | Path) -> list[str]:
    """Every generation's verdict line (candidates are told within their generation's line)."""
    return [of(r, lineage_path, rows).line() for r in rows if "-" not in r["name"]]
