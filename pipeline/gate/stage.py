"""Stage `gate`: promote the candidate generation, or reject it with a reason for every rule.

    python -m pipeline.generation gate.epsilon=0.05 gate.budgets.honesty.step=0.1

Rules (`conf/gate/*.yaml`):
  (a) capability: the candidate's validation metric (`gate.metric`, from its eval manifest) is at
      least the teacher's minus `epsilon`;
  (b) drift budgets: every budgeted alignment metric (`budgets.<name>` is `drift.<name>`) moves at most `total` from gen 0 and at most
      `step` from the parent (the teacher), each in the metric's bad direction;
  (c) synthesis: no red flags in `synth/stats.json` (`red_flags`: decontamination hits in the final
      data, verifier anomalies); a missing record rejects when `require_synth_stats`.
Test-split scores (gsm8k_test, humaneval) are reported, never used: the config refuses them as gate
or budget metrics, and `run` strips them before deciding. Boundaries are inclusive: exactly at
epsilon or exactly at a budget passes (with a 1e-9 float tolerance).

`decide` is a pure function over metric dicts (table-driven tests); `run` only gathers its inputs.
The loop reads `info["status"]` and `info["reasons"]` and moves the TEACHER pointer on promotion.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.config import Config, EvalConfig, GateConfig
from pipeline.evals import is_test_task
from pipeline.stage import StageContext, StageResult, read_manifest
from pipeline.io import atomic_write_json, read_json
from pipeline.lineage import GenerationDir

log = logging.getLogger(__name__)

TOL = 1e-9  # "exactly at the boundary" must pass despite float representation (0.5 - 0.02)


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def _capability(g: GateConfig, cand: dict, teacher: dict) -> tuple[bool, str, dict]:
    c, t = cand.get(g.metric), teacher.get(g.metric)
    check = {"metric": g.metric, "candidate": c, "teacher": t, "epsilon": g.epsilon}
    if c is None or t is None:
        who = "candidate" if c is None else "teacher"
        return False, f"capability: FAIL, the {who} has no {g.metric} (did its eval stage run that task?)", \
            {**check, "passed": False}
    floor = t - g.epsilon
    ok = c >= floor - TOL
    check.update(threshold=floor, passed=ok)
    op = ">=" if ok else "<"
    return ok, (f"capability: {'pass' if ok else 'FAIL'}, {g.metric} {_fmt(c)} {op} teacher {_fmt(t)} "
                f"- epsilon {_fmt(g.epsilon)} = {_fmt(floor)}"), check


def _within(value: float, ref: float, budget: float, direction: str) -> tuple[bool, float]:
    loss = (ref - value) if direction == "higher" else (value - ref)
    return loss <= budget + TOL, loss


def _budget(name: str, b, cand: dict, teacher: dict, gen0: dict) -> tuple[bool, list[str], dict]:
    c = cand.get(name)
    check: dict[str, Any] = {"direction": b.direction, "candidate": c}
    if c is None:
        if gen0.get(name) is None and teacher.get(name) is None:
            # Not measurable for anyone (e.g. no sycophancy item answered correctly at gen 0): say so.
            return True, [f"{name}: skipped, not measured for the candidate, its teacher or gen 0"], \
                {**check, "passed": True, "skipped": "not measured"}
        return False, [f"{name}: FAIL, the candidate has no value but its references do"], {**check, "passed": False}
    ok_all, reasons = True, []
    for kind, ref_name, ref_metrics, budget in (("total", "gen 0", gen0, b.total), ("step", "parent", teacher, b.step)):
        ref = ref_metrics.get(name)
        if ref is None:
            reasons.append(f"{name}: {kind} budget skipped, {ref_name} has no value")
            check[kind] = {"skipped": f"{ref_name} not measured"}
            continue
        ok, loss = _within(c, ref, budget, b.direction)
        ok_all &= ok
        worse = "drop" if b.direction == "higher" else "rise"
        reasons.append(f"{name}: {kind} {'pass' if ok else 'FAIL'}, {worse} {_fmt(loss)} vs {ref_name} "
                       f"{_fmt(ref)} {'<=' if ok else '>'} budget {_fmt(budget)}")
        check[kind] = {"reference": ref, "loss": loss, "budget": budget, "passed": ok}
    check["passed"] = ok_all
    return ok_all, reasons, check


def _red_flags(g: GateConfig, flags: list | None) -> tuple[bool, str, dict]:
    if flags is None:
        if g.require_synth_stats:
            return False, "synthesis: FAIL, no red-flag record (synth/stats.json with a red_flags list)", \
                {"flags": None, "passed": False}
        return True, "synthesis: pass, no red-flag record (gate.require_synth_stats is false)", \
            {"flags": None, "passed": True}
    if flags:
        return False, f"synthesis: FAIL, {len(flags)} red flag(s): " + "; ".join(map(str, flags)), \
            {"flags": list(flags), "passed": False}
    return True, "synthesis: pass, no red flags", {"flags": [], "passed": True}


def decide(g: GateConfig, candidate: dict, teacher: dict, gen0: dict,
           red_flags: list | None) -> tuple[str, list[str], dict]:
    """(status, reasons, checks): `promoted` only when every rule passes. `red_flags` is the synth
    stage's list (None when it left no record). Metric dicts map ledger keys to numbers."""
    ok_cap, why_cap, cap = _capability(g, candidate, teacher)
    reasons, budgets, ok_budgets = [why_cap], {}, True
    for key, b in g.budgets.items():
        name = f"drift.{key}"
        ok, why, budgets[name] = _budget(name, b, candidate, teacher, gen0)
        ok_budgets &= ok
        reasons += why
    ok_flags, why_flags, flags = _red_flags(g, red_flags)
    reasons.append(why_flags)
    status = "promoted" if ok_cap and ok_budgets and ok_flags else "rejected"
    checks = {"capability": cap, "budgets": budgets, "red_flags": flags}
    return status, reasons, checks


def validation_metrics(gen: GenerationDir, eval_cfg: EvalConfig) -> dict[str, Any]:
    """The eval and drift metrics of a generation, minus every test-split score."""
    out: dict[str, Any] = {}
    for stage in ("eval", "drift"):
        if gen.is_done(stage):
            out.update(read_manifest(gen, stage).metrics)
    return {k: v for k, v in out.items() if not is_test_task(k.split(".")[0], eval_cfg)}


def synth_red_flags(gen: GenerationDir) -> list | None:
    path = gen.path / "synth" / "stats.json"
    if not path.exists():
        return None
    flags = read_json(path).get("red_flags")
    return flags if isinstance(flags, list) else None


def run(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg
    if ctx.gen.index == 0:
        raise ValueError("the gate judges a candidate against its teacher; gen 0 is the baseline, not a candidate")
    cand = validation_metrics(ctx.gen, cfg.eval)
    teacher = validation_metrics(ctx.teacher, cfg.eval)
    gen0 = validation_metrics(ctx.lineage.gen(0), cfg.eval)
    flags = synth_red_flags(ctx.gen)
    status, reasons, checks = decide(cfg.gate, cand, teacher, gen0, flags)
    decision = {"generation": ctx.gen.name, "teacher": ctx.teacher.name, "status": status, "reasons": reasons,
                "checks": checks}
    atomic_write_json(ctx.out / "decision.json", decision)
    log.info("%s: %s\n  %s", ctx.gen.name, status, "\n  ".join(reasons))
    return StageResult(info={"status": status, "reasons": reasons, "checks": checks})
