"""Gate verdicts on constructed metric tables: every rule's edge, and the test-split guard."""

from __future__ import annotations

import pytest

from tests.support import GATE_METRIC as M, compose, gate_config as cfg
from pipeline import probes
from pipeline.gate import stage as gate
from pipeline.lineage.runner import Manifest, StageResult, write_manifest
from pipeline.config import Budget, ConfigError
from pipeline.lineage.runner import StageContext
from pipeline.infra.io import atomic_write_json, read_json
from pipeline.lineage import Lineage
from pipeline.evals.protocol import protocol_key



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


# -- decided on evidence: per-item values (id -> value) on the same items --------------------------

def items(values: list[float], prefix: str = "q") -> dict[str, float]:
    return {f"{prefix}{i}": float(v) for i, v in enumerate(values)}


def per_item(cap_teacher, cap_cand, refusal_parent=None, refusal_cand=None, refusal_gen0=None):
    """(candidate, teacher, gen0) metric tables with per-item capability and refusal values."""
    cap_t, cap_c = items(cap_teacher), items(cap_cand)
    ref_p = items(refusal_parent if refusal_parent is not None else [1] * 40, "h")
    ref_c = items(refusal_cand if refusal_cand is not None else [1] * 40, "h")
    ref_0 = items(refusal_gen0 if refusal_gen0 is not None else [1] * 40, "h")
    over = items([0] * 40, "b")
    return ({M: cap_c, "drift.refusal_harmful": ref_c, "drift.over_refusal_benign": over},
            {M: cap_t, "drift.refusal_harmful": ref_p, "drift.over_refusal_benign": over},
            {M: cap_t, "drift.refusal_harmful": ref_0, "drift.over_refusal_benign": over})


def test_clear_regression_past_a_budget_fails_with_the_numbers():
    # parent refuses all 40 harmful items, the candidate 10 of them: far past the 0.05 step budget
    c, t, g0 = per_item([1] * 50 + [0] * 50, [1] * 50 + [0] * 50, refusal_cand=[1] * 10 + [0] * 30)
    status, reasons, checks = gate.decide(cfg(), c, t, g0, [])
    assert status == "rejected"
    step = next(r for r in reasons if r.startswith("drift.refusal_harmful: step"))
    assert step.startswith("drift.refusal_harmful: step FAIL"), step
    for part in ("n=40", "both=10", "only_a=30", "only_b=0", "95% CI [", "newcombe-paired-wilson",
                 "mcnemar-exact", "step budget 0.0500", "change -0.7500"):
        assert part in step, (part, step)
    s = checks["budgets"]["drift.refusal_harmful"]["step"]
    assert s["verdict"] == "fail" and s["better_hi"] < -0.05 and s["paired"]["only_a"] == 30
    assert gate.evidence(checks) == "decisive"


def test_clear_gain_passes_and_require_improvement_needs_one():
    teacher = [1] * 20 + [0] * 80
    gain = [1] * 60 + [0] * 40  # 40 items gained, none lost
    c, t, g0 = per_item(teacher, gain)
    status, reasons, checks = gate.decide(cfg(), c, t, g0, [])
    assert status == "promoted", reasons
    assert reasons[0].startswith("capability: pass") and "n=100, both=20, only_a=0, only_b=40" in reasons[0]
    assert checks["capability"]["better_lo"] > 0
    assert gate.decide(cfg(require_improvement=True), c, t, g0, [])[0] == "promoted"
    # no change at all: within epsilon for sure? No: 100 identical items give an interval around 0
    # that still reaches below -epsilon, and with require_improvement it cannot pass either.
    same_c, same_t, same_0 = per_item(teacher, teacher)
    status, reasons, checks = gate.decide(cfg(require_improvement=True, on_inconclusive="keep_teacher"),
                                          same_c, same_t, same_0, [])
    assert status == "rejected" and checks["capability"]["verdict"] == "inconclusive"
    assert "straddles +0.0000 (gate.require_improvement)" in reasons[0]


@pytest.mark.parametrize("setting, status", [("promote", "promoted"), ("keep_teacher", "rejected")])
def test_one_item_change_is_inconclusive_and_follows_on_inconclusive(setting, status):
    teacher = [1] * 5 + [0] * 5
    cand_ = [1] * 4 + [0] * 6  # lost one item of ten
    c, t, g0 = per_item(teacher, cand_)
    got, reasons, checks = gate.decide(cfg(on_inconclusive=setting), c, t, g0, [])
    assert got == status, reasons
    assert checks["capability"]["verdict"] == "inconclusive"
    assert gate.evidence(checks) == "inconclusive"
    cap = reasons[0]
    assert cap.startswith("capability: inconclusive") and "n=10, both=4, only_a=1, only_b=0" in cap
    assert "epsilon 0.0200" in cap and "items would decide at the observed discordance 0.1000" in cap
    needed = checks["capability"]["items_needed"]
    assert isinstance(needed, int) and needed > 10
    assert reasons[-1].startswith(f"gate: {status} on inconclusive evidence (gate.on_inconclusive={setting})")
    assert "capability" in reasons[-1]
    assert not any("FAIL" in r for r in reasons)


def test_continuous_values_use_the_paired_bootstrap():
    g = cfg(budgets={"kl_gen0": Budget("lower", 0.10, 0.05)})
    kl_parent = {f"r{i}": 0.01 * i for i in range(20)}
    kl_cand = {k: v + 1.0 for k, v in kl_parent.items()}  # a full nat more on every item
    zero = {k: 0.0 for k in kl_parent}
    c = {M: items([1] * 10), "drift.kl_gen0": kl_cand}
    t = {M: items([1] * 10), "drift.kl_gen0": kl_parent}
    g0 = {M: items([1] * 10), "drift.kl_gen0": zero}
    status, reasons, checks = gate.decide(g, c, t, g0, [])
    assert status == "rejected"
    step = next(r for r in reasons if r.startswith("drift.kl_gen0: step"))
    assert "FAIL" in step and "paired-bootstrap-percentile" in step and "sign-flip-permutation" in step
    assert "n=20" in step and "lower is better" in step


def test_a_reference_without_per_item_values_is_compared_on_points():
    c, t, g0 = per_item([1] * 5 + [0] * 5, [1] * 5 + [0] * 5)
    t[M] = 0.5  # the teacher left no per-item records
    status, reasons, _ = gate.decide(cfg(), c, t, g0, [])
    assert status == "promoted" and "no per-item records: point estimate" in reasons[0]


@pytest.mark.parametrize("override, msg", [("gate.alpha=0", "gate.alpha"), ("gate.alpha=1.5", "gate.alpha"),
                                           ("gate.on_inconclusive=maybe", "promote|keep_teacher")])
def test_config_rejects_bad_evidence_settings(override, msg):
    with pytest.raises(ConfigError, match=msg):
        compose([override])


def _write_records(gen, correct: list[int], refused: list[int], kl: list[float] | None, protocol: str | None = None):
    from pipeline.infra.io import write_jsonl

    if protocol is None:  # records pair on (id, protocol): the default config's
        c = compose([])
        protocol = protocol_key(c.eval.tasks["gsm8k_val"], c)
    write_jsonl(gen.path / "eval" / "gsm8k_val.jsonl",
                [{"id": f"q{i}", "protocol": protocol, "metrics": {"accuracy_flexible": float(v)}}
                 for i, v in enumerate(correct)])
    write_jsonl(gen.path / "drift" / "probes.jsonl",
                [{"suite": "safety", "id": f"h{i}", "kind": "harmful", "outcome": "refused" if v else "complied"}
                 for i, v in enumerate(refused)])
    # gen 0 (kl None) is its own reference: the drift stage writes no KL rows and a KL of 0
    write_jsonl(gen.path / "drift" / "kl.jsonl",
                [{"id": f"r{i}", "tokens": 5, "kl_gen0": v, "kl_parent": v} for i, v in enumerate(kl or [])])
    acc, ref = sum(correct) / len(correct), sum(refused) / len(refused)
    metrics = {"drift.refusal_harmful": ref, "drift.kl_gen0": sum(kl) / len(kl) if kl else 0.0}
    write_manifest(gen, Manifest("eval", StageResult(metrics={M: acc})))
    write_manifest(gen, Manifest("drift", StageResult(metrics=metrics)))


def test_run_decides_on_the_records_on_disk(tmp_path):
    c = compose([f"paths.root={tmp_path}"])
    c.gate.budgets = {"refusal_harmful": Budget("higher", 0.1, 0.05), "kl_gen0": Budget("lower", 0.5, 0.5)}
    lin = Lineage(tmp_path, "g")
    lin.init("tiny:qwen3", tmp_path / "base")
    g0, g1 = lin.gen(0), lin.gen(1)
    _write_records(g0, [1] * 30 + [0] * 30, [1] * 30, None)  # gen 0 has no kl.jsonl: KL 0 on every item
    _write_records(g1, [1] * 30 + [0] * 30, [1] * 10 + [0] * 20, [0.01] * 8)
    atomic_write_json(g1.path / "synth" / "stats.json", {"red_flags": []})
    res = gate.run(StageContext(cfg=c, lineage=lin, gen=g1, teacher=g0, stage="gate"))
    info = res.info
    assert info["status"] == "rejected" and info["evidence"] == "decisive", info["reasons"]
    assert any(r.startswith("drift.refusal_harmful: step FAIL") and "n=30" in r for r in info["reasons"])
    kl = info["checks"]["budgets"]["drift.kl_gen0"]["total"]
    assert kl["paired"]["n"] == 8 and kl["reference"] == 0.0 and kl["verdict"] == "pass"
    decision = read_json(g1.path / "gate" / "decision.json")
    assert decision["evidence"] == "decisive" and decision["alpha"] == 0.05
    # a candidate that loses one GSM8K item of 60 and nothing else: inconclusive at most under a 0.02
    # margin without further looks, promoted when on_inconclusive says so
    c.gate.epsilon, c.gate.looks, c.gate.on_inconclusive = 0.02, [], "promote"
    _write_records(g1, [1] * 29 + [0] * 31, [1] * 30, [0.01] * 8)
    info = gate.run(StageContext(cfg=c, lineage=lin, gen=g1, teacher=g0, stage="gate")).info
    assert info["status"] == "promoted" and info["evidence"] == "inconclusive", info["reasons"]
    assert "on inconclusive evidence" in info["reasons"][-1]
