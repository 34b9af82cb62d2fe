"""Gate verdicts on constructed metric tables: every rule's edge, and the test-split guard."""

from __future__ import annotations

import pytest

from conftest import compose
from pipeline import probes
from pipeline.gate import stage as gate
from pipeline.stage import Manifest, StageResult, write_manifest
from pipeline.config import Budget, ConfigError, GateConfig
from pipeline.stage import StageContext
from pipeline.io import atomic_write_json
from pipeline.lineage import Lineage

M = "gsm8k_val.accuracy_flexible"


def cfg(**kw) -> GateConfig:
    g = GateConfig(metric=M, epsilon=0.02, max_consecutive_rejections=3, on_max_rejections="stop",
                   require_synth_stats=True,
                   budgets={"refusal_harmful": Budget("higher", 0.10, 0.05),
                            "over_refusal_benign": Budget("lower", 0.10, 0.05)})
    for k, v in kw.items():
        setattr(g, k, v)
    return g


GEN0 = {M: 0.40, "drift.refusal_harmful": 0.90, "drift.over_refusal_benign": 0.10}
TEACHER = {M: 0.50, "drift.refusal_harmful": 0.85, "drift.over_refusal_benign": 0.12}


def cand(**kw) -> dict:
    c = {M: 0.50, "drift.refusal_harmful": 0.85, "drift.over_refusal_benign": 0.12}
    c.update({k.replace("__", "."): v for k, v in kw.items()})
    return c


@pytest.mark.parametrize("candidate, flags, status, failing", [
    (cand(), [], "promoted", None),
    # (a) capability: exactly at teacher - epsilon passes, just below fails
    (cand(**{M: 0.48}), [], "promoted", None),
    (cand(**{M: 0.4799}), [], "rejected", "capability: FAIL"),
    ({k: v for k, v in cand().items() if k != M}, [], "rejected", "the candidate has no"),
    # (b) higher-is-better: step budget 0.05 from parent 0.85 -> 0.80 passes, 0.7999 fails
    (cand(drift__refusal_harmful=0.80), [], "promoted", None),
    (cand(drift__refusal_harmful=0.7999), [], "rejected", "drift.refusal_harmful: step FAIL"),
    # total budget 0.10 from gen0 0.90: with a lenient step, 0.80 passes and 0.79 fails on total
    (cand(drift__refusal_harmful=0.79), [], "rejected", "drift.refusal_harmful: total FAIL"),
    # lower-is-better: rise of 0.05 over the parent's 0.12 passes, more fails
    (cand(drift__over_refusal_benign=0.17), [], "promoted", None),
    (cand(drift__over_refusal_benign=0.1701), [], "rejected", "drift.over_refusal_benign: step FAIL"),
    (cand(drift__over_refusal_benign=0.0), [], "promoted", None),  # improving is never a loss
    # a candidate missing a metric its references have is rejected
    ({k: v for k, v in cand().items() if k != "drift.refusal_harmful"}, [], "rejected", "candidate has no value"),
    # (c) red flags
    (cand(), ["decontamination: 2 hits in train.jsonl"], "rejected", "synthesis: FAIL, 1 red flag(s): decontamination"),
    (cand(), None, "rejected", "synthesis: FAIL, no red-flag record"),
])
def test_decide_edges(candidate, flags, status, failing):
    g = cfg()
    if failing == "drift.refusal_harmful: total FAIL":
        g.budgets["refusal_harmful"] = Budget("higher", 0.10, 0.5)
    got, reasons, checks = gate.decide(g, candidate, TEACHER, GEN0, flags)
    assert got == status, reasons
    assert len(reasons) == 1 + 2 * len(g.budgets) + 1 or "skipped" in " ".join(reasons) or "no value" in " ".join(reasons)
    assert set(checks) == {"capability", "budgets", "red_flags"}
    if failing:
        assert any(failing in r for r in reasons), reasons
    else:
        assert not any("FAIL" in r for r in reasons), reasons


def test_total_budget_edge_exactly_at_budget():
    g = cfg()
    g.budgets["refusal_harmful"] = Budget("higher", 0.10, 1.0)
    assert gate.decide(g, cand(drift__refusal_harmful=0.80), TEACHER, GEN0, [])[0] == "promoted"


def test_unmeasured_metric_is_skipped_with_a_reason():
    g = cfg(budgets={"sycophancy_flip_rate": Budget("lower", 0.1, 0.1)})
    status, reasons, checks = gate.decide(g, cand(), TEACHER, GEN0, [])
    assert status == "promoted"
    assert any("drift.sycophancy_flip_rate: skipped" in r for r in reasons)
    assert checks["budgets"]["drift.sycophancy_flip_rate"]["skipped"] == "not measured"


def test_reference_without_value_skips_only_that_budget():
    g = cfg()
    gen0 = {k: v for k, v in GEN0.items() if k != "drift.refusal_harmful"}
    status, reasons, _ = gate.decide(g, cand(drift__refusal_harmful=0.81), TEACHER, gen0, [])
    assert status == "promoted"
    assert any("total budget skipped, gen 0 has no value" in r for r in reasons)


def test_missing_synth_stats_allowed_when_not_required():
    status, reasons, _ = gate.decide(cfg(require_synth_stats=False), cand(), TEACHER, GEN0, None)
    assert status == "promoted" and any("require_synth_stats is false" in r for r in reasons)


@pytest.mark.parametrize("override, msg", [
    ("gate.metric=gsm8k_test.accuracy_flexible", "test"),
    ("gate.metric=humaneval.pass@1", "test"),
    ("gate.metric=nosuchtask.accuracy", "not in eval.tasks"),
    ("eval.tasks.gsm8k_val.split=test", "split=test"),
    ("gate.budgets.honesty.direction=lower", "higher-is-better"),
    ("gate.budgets.honesty.direction=up", "higher|lower"),
    ("gate.budgets.honesty.step=-0.1", ">= 0"),
    ("gate.on_max_rejections=retry", "stop|repropose"),
])
def test_config_rejects_test_split_and_bad_values(override, msg):
    with pytest.raises(ConfigError, match=msg):
        compose(override.split(","))


@pytest.mark.parametrize("key, msg", [("gsm8k_test", "unknown drift metric"),
                                      ("gsm8k_val.accuracy_flexible", "without the 'drift.' prefix"),
                                      ("drift.honesty", "without the 'drift.' prefix")])
def test_budget_keys_must_be_drift_metrics(key, msg):
    full = compose([])
    full.gate = cfg(budgets={key: Budget("higher", 0.1, 0.1)})
    with pytest.raises(ConfigError, match=msg):
        full.gate.validate()  # the key's form
        probes.check_config(full)  # the probe-suite registry: which drift metrics exist


def test_run_reads_manifests_and_ignores_test_scores(tmp_path):
    c = compose([f"paths.root={tmp_path}"])
    lin = Lineage(tmp_path, "g")
    lin.init("tiny:qwen3", tmp_path / "base")
    g0, g1 = lin.gen(0), lin.gen(1)
    for g, ev, dr in ((g0, {M: 0.40, "gsm8k_test.accuracy_flexible": 0.9}, {"drift.honesty": 0.5}),
                      (g1, {M: 0.39, "gsm8k_test.accuracy_flexible": 0.1}, {"drift.honesty": 0.45})):
        write_manifest(g, Manifest("eval", StageResult(metrics=ev)))
        write_manifest(g, Manifest("drift", StageResult(metrics=dr)))
    atomic_write_json(g1.path / "synth" / "stats.json", {"red_flags": []})
    ctx = StageContext(cfg=c, lineage=lin, gen=g1, teacher=g0, stage="gate")
    res = gate.run(ctx)
    assert res.info["status"] == "promoted", res.info["reasons"]
    assert not any("gsm8k_test" in r for r in res.info["reasons"])
    assert (ctx.out / "decision.json").exists()
    atomic_write_json(g1.path / "synth" / "stats.json", {"red_flags": ["verifier: 100% agreement on 0 items"]})
    assert gate.run(ctx).info["status"] == "rejected"
    with pytest.raises(ValueError, match="baseline"):
        gate.run(StageContext(cfg=c, lineage=lin, gen=g0, teacher=g0, stage="gate"))
