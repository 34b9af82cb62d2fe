"""Stage `gate`: promote the candidate generation, or reject it, deciding on evidence with a reason per rule.

    python -m pipeline.loop gate.epsilon=0.05 gate.budgets.honesty.step=0.1 gate.alpha=0.1
    python -m pipeline.loop gate.looks=[50,100,200] gate.on_inconclusive=promote
    python -m pipeline.gate simulate --delta -0.1 experiment=cpu       # the rules' operating characteristics

The rules (`conf/gate/*.yaml`; what each must show, and why no family correction: pipeline.gate.rules):
  (a) capability: non-inferiority of the validation metric `gate.metric` to the teacher within the
      margin `epsilon` (set per profile), with nested looks while inconclusive (pipeline.gate.looks):
      further items of the validation slice's one permutation are scored by the reference-scoring
      step (pipeline.evals.reference) for the candidate and the teacher alike, records under
      `gate/reference/<gen>/<task>/` (resumable: a killed gate re-scores nothing it kept);
  (b) drift budgets: every budgeted metric (`budgets.<name>` is `drift.<name>`) against the parent
      with m = `step` and against gen 0 with m = `total`, failing only on harm shown past the budget;
      a distance from the parent (`*_parent`: KL, agreement) is itself the step, so its step check
      judges the candidate's own value against the parent's distance from itself (KL 0, agreement 1);
  (c) synthesis: no red flags in `synth/stats.json` (`red_flags`) nor in the data checks of the
      mixture the candidate trained on (`train/manifest.json` info `mixture.checks`).
Per-item values come from the stages' records (pipeline.gate.items); a reference without them is
compared on point estimates, and the reason says "no per-item records: point estimate". A candidate
whose mixture the label guard refused never trains: the loop records its decision here with
`refuse_before_training` (rule `label_precision`). Test-split scores are reported, never used: the
config refuses them as gate or budget metrics, and `run` strips every metric whose records read a test
split (pipeline.infra.metricspec). Eval records pair on (item id, protocol): a reference scored under
another protocol is re-scored on the candidate's items (pipeline.gate.pairing).

`gate/decision.json` (version 2): status, evidence, `deciding` {rule, metric, reason}, `family` (the
intersection-union statement), reasons, and per check its margin, looks (n, nominal alpha, interval),
items, method and `power` (the probability of passing at the observed discordance). The loop reads
`info["status"]` and `info["reasons"]` and moves the TEACHER pointer on promotion.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pipeline.infra import faults, metricspec
from pipeline.config import Config, EvalConfig, GateConfig
from pipeline.gate.items import counted_values, item_values
from pipeline.evals.loaders import subset
from pipeline.evals.reference import score_reference
from pipeline.infra.slices import slice_record
from pipeline.evals.stage import load_split
from pipeline.gate.looks import More
from pipeline.gate.pairing import paired_reference
from pipeline.gate.rules import FAMILY, Metrics, decide, decision, evidence  # noqa: F401 (decide: public here too)
from pipeline.infra.io import atomic_write_json, read_json
from pipeline.lineage import GenerationDir, LineageError
from pipeline.lineage.runner import StageContext, StageResult, read_manifest

log = logging.getLogger(__name__)

DECISION_VERSION = 2


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
    decision = {"version": DECISION_VERSION, "generation": ctx.gen.name, "teacher": ctx.teacher.name,
                "status": "rejected", "evidence": "decisive",
                "before_training": True, "deciding": deciding, "alpha": ctx.cfg.gate.alpha, "reasons": [reason],
                "checks": checks}
    atomic_write_json(ctx.out / "decision.json", decision)
    log.info("%s: rejected before training\n  %s", ctx.gen.name, reason)
    return StageResult(info={"status": "rejected", "evidence": "decisive", "before_training": True,
                             "reasons": [reason], "checks": checks})


def further_looks(ctx: StageContext, cand: dict[str, float], teacher: dict[str, float]) -> More:
    """`more(n)` for the capability looks: both sides' values of `gate.metric` on the first n items
    of the gated task's permutation (pipeline.evals.loaders.subset, nested). Items neither side has
    are scored by the reference-scoring step, the candidate's and the teacher's records under this
    stage's directory (`gate/reference/<gen>/<task>/`); values already held are reused. `cand` and
    `teacher` are updated in place."""
    task, _, name = ctx.cfg.gate.metric.partition(".")
    spec = ctx.cfg.eval.tasks[task]
    split = load_split(spec)

    def more(n: int) -> tuple[dict[str, float], dict[str, float]]:
        ids = [it["id"] for it in subset(split, n, spec.seed)]
        for gen, values in ((ctx.gen, cand), (ctx.teacher, teacher)):
            new = [i for i in ids if i not in values]
            if new:
                log.info("%s: gate look at n=%d: scoring %s on %d new item(s)", ctx.gen.name, n, gen.name, len(new))
                values.update({r["id"]: float(r["metrics"][name]) for r in score_reference(ctx, gen, task, new)})
                faults.point(f"gate:look-scored:{'candidate' if gen is ctx.gen else 'teacher'}")
        return {i: cand[i] for i in ids}, {i: teacher[i] for i in ids}

    return more


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
    c, t = cand.get(cfg.gate.metric), teacher.get(cfg.gate.metric)
    more = (further_looks(ctx, dict(c), dict(t)) if isinstance(c, Mapping) and isinstance(t, Mapping)
            and cfg.gate.looks else None)
    status, reasons, checks, deciding = decision(cfg.gate, cand, teacher, gen0, flags, more=more)
    reasons = [*rescored, *reasons, *(f"data: {t} (not judged)" for t in data.get("not_judged", []))]  # never passed in silence
    checks["red_flags"]["mixture"] = data.get("checks")
    checks["rescored"] = rescored
    looks = checks["capability"].get("looks") or []
    if looks:  # the validation items the capability check used: a prefix of the slice's permutation
        spec = cfg.eval.tasks[cfg.gate.metric.partition(".")[0]]
        used = [it["id"] for it in subset(load_split(spec), looks[-1]["n"], spec.seed)]
        checks["capability"]["slice"] = slice_record(spec.split, used)
    ev = evidence(checks)
    record = {"version": DECISION_VERSION, "generation": ctx.gen.name, "teacher": ctx.teacher.name,
              "status": status, "evidence": ev, "deciding": deciding, "alpha": cfg.gate.alpha,
              "family": FAMILY, "reasons": reasons, "checks": checks}
    atomic_write_json(ctx.out / "decision.json", record)
    log.info("%s: %s (%s evidence)\n  %s", ctx.gen.name, status, ev, "\n  ".join(reasons))
    return StageResult(info={"status": status, "evidence": ev, "deciding": deciding, "reasons": reasons,
                             "checks": checks})
