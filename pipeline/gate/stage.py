"""Stage `gate`: promote the candidate generation, or reject it, deciding on evidence with a reason per rule.

    python -m pipeline.loop gate.epsilon=0.05 gate.budgets.honesty.step=0.1 gate.alpha=0.1
    python -m pipeline.loop gate.on_inconclusive=keep_teacher gate.require_improvement=true

One rule for capability and drift (`conf/gate/*.yaml`). For each gated metric, [lo, hi] is the
paired (1 - `alpha`) interval of candidate minus reference on the same items (matched by id; signed
so positive is better) and m its margin:
  (a) capability: the validation metric `gate.metric` against the teacher, m = `epsilon`;
  (b) drift budgets: every budgeted metric (`budgets.<name>` is `drift.<name>`) against the parent
      with m = `step` and against gen 0 with m = `total`; a distance from the parent (`*_parent`: KL,
      agreement) is itself the step, so its step check judges the candidate's own value against the
      parent's distance from itself (KL 0, agreement 1), never against the parent's own `*_parent`;
pass when lo > -m (with `require_improvement`, capability passes only when lo > 0), fail when
hi < -m, inconclusive otherwise (the reason says how many items would have decided). Per-item values
come from the stages' records (pipeline.gate.items); a reference without them is compared on point
estimates, and the reason says "no per-item records: point estimate" (pipeline.gate.evidence).
  (c) synthesis: no red flags in `synth/stats.json` (`red_flags`: decontamination hits in the final
      data, verifier anomalies) nor in the data checks of the mixture the candidate trained on
      (`train/manifest.json` info `mixture.checks`, pipeline.train.mixture); a check too small to
      judge adds a reason line saying so; a missing synth record rejects when `require_synth_stats`.
A candidate whose mixture the label guard refused (`gate.min_verifier_precision`) never trains: the
loop records its decision here with `refuse_before_training` (rule `label_precision`).
Any fail rejects; all pass promotes; otherwise `on_inconclusive` decides (`promote`, or
`keep_teacher`: rejected), and `decision.json` / the manifest info record `evidence: inconclusive`
with a reason line. Test-split scores (gsm8k_test, humaneval, eval agreement on them) are reported,
never used: the config refuses them as gate or budget metrics, and `run` strips every metric whose
records read a test split (pipeline.infra.metricspec), whatever its name. Eval records pair on (item id,
protocol): a reference scored under another protocol is re-scored on the candidate's items
(pipeline.gate.pairing, records under `gate/reference/`), and the reasons say so.

`decide` is a pure function over metric dicts (values: numbers or per-item dicts id -> value;
table-driven tests); `run` only gathers its inputs. The loop reads `info["status"]` and
`info["reasons"]` and moves the TEACHER pointer on promotion.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pipeline.infra import metricspec
from pipeline.config import Config, EvalConfig, GateConfig
from pipeline.drift.metrics import identity_value
from pipeline.gate.evidence import Verdict, Values, judge
from pipeline.gate.items import counted_values, item_values
from pipeline.gate.pairing import paired_reference
from pipeline.infra.io import atomic_write_json, read_json
from pipeline.lineage import GenerationDir, LineageError
from pipeline.lineage.runner import StageContext, StageResult, read_manifest

log = logging.getLogger(__name__)

Metrics = dict[str, Values]  # ledger key -> a number, or per-item values id -> number


def _capability(g: GateConfig, cand: Metrics, teacher: Metrics) -> Verdict:
    c, t = cand.get(g.metric), teacher.get(g.metric)
    if c is None or t is None:
        who = "candidate" if c is None else "teacher"
        return Verdict("capability", "fail", f"capability: FAIL, the {who} has no {g.metric} (did its eval stage run that task?)",
                       {"metric": g.metric, "verdict": "fail", "passed": False})
    v = judge("capability:", "teacher", c, t, margin=g.epsilon, higher_is_better=True, alpha=g.alpha,
              require_improvement=g.require_improvement, margin_name="epsilon", metric=g.metric)
    v.check["metric"] = g.metric
    return v


def _budget(g: GateConfig, name: str, b, cand: Metrics, teacher: Metrics, gen0: Metrics
            ) -> tuple[list[Verdict], dict]:
    c = cand.get(name)
    if c is None:
        if gen0.get(name) is None and teacher.get(name) is None:
            # Not measurable for anyone (e.g. no sycophancy item answered correctly at gen 0): say so.
            return [Verdict(name, "pass", f"{name}: skipped, not measured for the candidate, its teacher or gen 0")], \
                {"direction": b.direction, "verdict": "pass", "passed": True, "skipped": "not measured"}
        return [Verdict(name, "fail", f"{name}: FAIL, the candidate has no value but its references do")], \
            {"direction": b.direction, "verdict": "fail", "passed": False}
    out, check = [], {"direction": b.direction}
    for kind, ref_name, ref, margin in (("total", "gen 0", gen0, b.total), ("step", "parent", teacher, b.step)):
        ref_value = ref.get(name)
        identity = identity_value(name) if kind == "step" else None
        if identity is not None:
            # a distance from the parent: the step is the candidate's own distance, judged against the
            # parent's distance from itself (KL 0, agreement 1), not the parent's from the grandparent
            ref_name = "the parent itself"
            ref_value = {i: identity for i in c} if isinstance(c, Mapping) else identity
        if ref_value is None:
            out.append(Verdict(f"{name}: {kind}", "pass", f"{name}: {kind} budget skipped, {ref_name} has no value"))
            check[kind] = {"verdict": "pass", "skipped": f"{ref_name} not measured"}
            continue
        v = judge(f"{name}: {kind}", ref_name, c, ref_value, margin=margin, higher_is_better=b.direction == "higher",
                  alpha=g.alpha, margin_name=f"{kind} budget")
        v.check["against"] = ref_name  # gen 0, the parent, or the parent itself (a `*_parent` step)
        out.append(v)
        check[kind] = v.check
    check["passed"] = all(v.verdict == "pass" for v in out)
    return out, check


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


def decide(g: GateConfig, candidate: Metrics, teacher: Metrics, gen0: Metrics,
           red_flags: list | None) -> tuple[str, list[str], dict]:
    """(status, reasons, checks): `promoted` when every rule passes, or when none fails and
    `gate.on_inconclusive` is `promote`. `red_flags` is the synth stage's list (None when it left no
    record). Metric dicts map ledger keys to numbers or to per-item dicts id -> value."""
    verdicts = [_capability(g, candidate, teacher)]
    cap = verdicts[0].check
    budgets = {}
    for key, b in g.budgets.items():
        name = f"drift.{key}"
        vs, budgets[name] = _budget(g, name, b, candidate, teacher, gen0)
        verdicts += vs
    ok_flags, why_flags, flags = _red_flags(g, red_flags)
    reasons = [v.reason for v in verdicts] + [why_flags]
    checks = {"capability": cap, "budgets": budgets, "red_flags": flags}
    kinds = {v.verdict for v in verdicts}
    if "fail" in kinds or not ok_flags:
        return "rejected", reasons, checks
    if kinds == {"pass"}:
        return "promoted", reasons, checks
    undecided = [v.label for v in verdicts if v.verdict == "inconclusive"]
    status = "promoted" if g.on_inconclusive == "promote" else "rejected"
    reasons.append(f"gate: {status} on inconclusive evidence (gate.on_inconclusive={g.on_inconclusive}): "
                   f"{', '.join(undecided)} could not be decided at alpha {g.alpha}")
    return status, reasons, checks


def evidence(checks: dict) -> str:
    """What decision.json records: `inconclusive` when the status rests on `gate.on_inconclusive`
    (no rule failed, some comparison could not be decided), else `decisive`."""
    budgets = checks["budgets"].values()
    verdicts = [checks["capability"]["verdict"], *(b["verdict"] for b in budgets if "verdict" in b),
                *(b[k]["verdict"] for b in budgets for k in ("total", "step") if k in b)]
    if "fail" in verdicts or not checks["red_flags"]["passed"]:
        return "decisive"
    return "inconclusive" if "inconclusive" in verdicts else "decisive"


def _finished(gen: GenerationDir) -> dict[str, Any]:
    """The eval and drift manifests a generation finished (stage -> Manifest)."""
    return {stage: read_manifest(gen, stage) for stage in ("eval", "drift") if gen.is_done(stage)}


def recorded_splits(gen: GenerationDir, eval_cfg: EvalConfig) -> dict[str, tuple[str, ...]]:
    """The benchmark splits each of a generation's metrics read, as its stages recorded them."""
    m = _finished(gen)
    return metricspec.manifest_splits(m["eval"].info if "eval" in m else None,
                                      m["drift"].info if "drift" in m else None, eval_cfg)


def validation_metrics(gen: GenerationDir, eval_cfg: EvalConfig) -> dict[str, Any]:
    """The eval and drift metrics of a generation, minus every metric that read a test split (by the
    splits its stage recorded, else by its declaration: pipeline.infra.metricspec), whatever its name."""
    out: dict[str, Any] = {}
    for m in _finished(gen).values():
        out.update(m.metrics)
    return metricspec.decision_metrics(out, eval_cfg, recorded_splits(gen, eval_cfg))


def refuse_test_reads(keys: list[str], gen: GenerationDir, eval_cfg: EvalConfig) -> None:
    """A gated metric that read a test split stops the gate (config validation refuses it first;
    this catches records made under another config), rather than being skipped as unmeasured."""
    recorded = recorded_splits(gen, eval_cfg)
    for key in keys:
        if any(map(metricspec.is_test_split, metricspec.splits_of(key, eval_cfg, recorded) or ())):
            raise LineageError(f"gate: {gen.name}: {metricspec.decision_refusal(key, eval_cfg, recorded)}")


def gated_keys(g: GateConfig) -> list[str]:
    return [g.metric, *(f"drift.{k}" for k in g.budgets)]


def with_items(gen: GenerationDir, metrics: dict[str, Any], keys: list[str], like: Metrics | None = None) -> Metrics:
    """`metrics` with each gated key's point estimate replaced by its per-item values, where the
    generation has them (`like`: the candidate's, whose ids gen 0's all-zero KL takes)."""
    out: Metrics = dict(metrics)
    for key in keys:
        if key not in metrics:
            continue
        ref = (like or {}).get(key)
        # a probe rate on every suite item (counted or not), so it is tested as reported
        items = counted_values(gen, key) or item_values(gen, key, ids=list(ref) if isinstance(ref, dict) else None)
        if items is not None:
            out[key] = items
    return out


def synth_red_flags(gen: GenerationDir) -> list | None:
    path = gen.path / "synth" / "stats.json"
    if not path.exists():
        return None
    flags = read_json(path).get("red_flags")
    return flags if isinstance(flags, list) else None


def mixture_checks(gen: GenerationDir) -> dict:
    """The data checks the train stage ran on the candidate's mixture ({} when it left none)."""
    if not gen.is_done("train"):
        return {}
    return (read_manifest(gen, "train").info.get("mixture") or {}).get("checks") or {}


def refuse_before_training(ctx: StageContext, mixture: dict) -> StageResult:
    """The gate's record for a candidate rejected before training: the label guard left its mixture
    (pipeline.train.mixture.draw's info) without any trustworthy synthetic row."""
    reason = mixture["refusal"]
    checks = {"label_precision": {"passed": False, "guard": mixture.get("guard"), "origins": mixture.get("origins"),
                                  "accumulated": mixture.get("accumulated")}}
    deciding = {"rule": "label_precision", "metric": "synth.verifier_precision", "reason": reason}
    decision = {"generation": ctx.gen.name, "teacher": ctx.teacher.name, "status": "rejected", "evidence": "decisive",
                "before_training": True, "deciding": deciding, "alpha": ctx.cfg.gate.alpha, "reasons": [reason],
                "checks": checks}
    atomic_write_json(ctx.out / "decision.json", decision)
    log.info("%s: rejected before training\n  %s", ctx.gen.name, reason)
    return StageResult(info={"status": "rejected", "evidence": "decisive", "before_training": True,
                             "reasons": [reason], "checks": checks})


def run(ctx: StageContext) -> StageResult:
    cfg: Config = ctx.cfg
    if ctx.gen.index == 0:
        raise ValueError("the gate judges a candidate against its teacher; gen 0 is the baseline, not a candidate")
    keys = gated_keys(cfg.gate)
    refuse_test_reads(keys, ctx.gen, cfg.eval)
    cand = with_items(ctx.gen, validation_metrics(ctx.gen, cfg.eval), keys)
    teacher = with_items(ctx.teacher, validation_metrics(ctx.teacher, cfg.eval), keys, like=cand)
    gen0 = with_items(ctx.lineage.gen(0), validation_metrics(ctx.lineage.gen(0), cfg.eval), keys, like=cand)
    rescored = []  # records pair on (id, protocol): a reference made under another protocol is re-scored
    for ref_gen, ref in ((ctx.teacher, teacher), (ctx.lineage.gen(0), gen0)):
        values, note = paired_reference(ctx, ref_gen, cfg.gate.metric, cand.get(cfg.gate.metric))
        if values is not None:
            ref[cfg.gate.metric] = values
            rescored.append(note)
    flags, data = synth_red_flags(ctx.gen), mixture_checks(ctx.gen)
    if data.get("red_flags"):
        flags = (flags or []) + [f"training mixture: {f}" for f in data["red_flags"]]
    status, reasons, checks = decide(cfg.gate, cand, teacher, gen0, flags)
    reasons = [*rescored, *reasons, *(f"data: {t} (not judged)" for t in data.get("not_judged", []))]  # never passed in silence
    checks["red_flags"]["mixture"] = data.get("checks")
    checks["rescored"] = rescored
    ev = evidence(checks)
    decision = {"generation": ctx.gen.name, "teacher": ctx.teacher.name, "status": status, "evidence": ev,
                "alpha": cfg.gate.alpha, "reasons": reasons, "checks": checks}
    atomic_write_json(ctx.out / "decision.json", decision)
    log.info("%s: %s (%s evidence)\n  %s", ctx.gen.name, status, ev, "\n  ".join(reasons))
    return StageResult(info={"status": status, "evidence": ev, "reasons": reasons, "checks": checks})
