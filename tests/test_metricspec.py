"""The one metric vocabulary (pipeline.infra.metricspec.MetricSpec) and the bottom layer's registry table
(pipeline.infra.registry), on literal records: no model, no config composition."""

from __future__ import annotations

import pytest

from pipeline.infra import registry
from pipeline.infra.metricspec import MetricError, MetricSpec, budget_keys, declared
from pipeline.infra.registry import Registry, RegistryError


class Task:
    k = (1, 10)


def test_families_expand_match_and_list_their_keys():
    kl = MetricSpec("drift.kl_{ref}", "lower", budgetable=True, identity=0.0)
    assert kl.expand(ref="gen0") == "drift.kl_gen0" and kl.keys() == ["drift.kl_gen0", "drift.kl_parent"]
    assert kl.matches("drift.kl_parent") and not kl.matches("drift.kl_gen1") and not kl.matches("drift.kl_")
    distinct = MetricSpec("drift.distinct_{n}", "higher")
    assert distinct.matches("drift.distinct_2") and distinct.keys() == []
    pass_k = MetricSpec("pass@{k}", "higher", lm_eval="pass@{k},create_test")
    assert pass_k.names(Task()) == ["pass@1", "pass@10"] and pass_k.lm_eval_key("pass@10") == ("pass@10", "create_test")
    assert MetricSpec("accuracy", "higher").lm_eval_key("accuracy") == ("accuracy", "none")
    assert declared([kl, distinct], "drift.distinct_3") is distinct and declared([kl], "drift.honesty") is None
    assert budget_keys([kl, distinct, MetricSpec("drift.x", None, budgetable=True)]) == {
        "drift.kl_gen0": "lower", "drift.kl_parent": "lower"}


def test_the_reported_value_is_the_mean_of_the_tested_item_values():
    records = [{"id": "a", "kind": "harmful", "outcome": "refused"}, {"id": "b", "kind": "harmful", "outcome": "answered"},
               {"id": "c", "kind": "harmful", "outcome": "refused"}, {"id": "d", "kind": "benign", "outcome": "refused"}]
    refusal = MetricSpec("drift.refusal_harmful", "higher", select=lambda r: r["kind"] == "harmful",
                         value=lambda r: float(r["outcome"] == "refused"))
    assert refusal.item_values(records) == {"a": 1.0, "b": 0.0, "c": 1.0}
    assert refusal.mean(records) == pytest.approx(2 / 3) == sum(refusal.item_values(records).values()) / 3
    assert refusal.mean([records[3]]) is None  # counts no record: undefined, not 0
    # an eval metric reads record["metrics"][name]; a family reads the name asked for
    evals = [{"id": "p1", "metrics": {"pass@1": 0.5, "pass@10": 1.0}}, {"id": "p2", "metrics": {"pass@1": 0.0}}]
    pass_k = MetricSpec("pass@{k}", "higher")
    assert pass_k.mean(evals, "pass@1") == 0.25 and pass_k.item_values(evals, "pass@10") == {"p1": 1.0}


@pytest.mark.parametrize("kwargs, msg", [({"key": "", "direction": "higher"}, "non-empty"),
                                         ({"key": "drift.x", "direction": "up"}, "higher|lower"),
                                         ({"key": "drift.x", "direction": "higher", "reads": "val"}, "reads 'val'")])
def test_malformed_declarations_are_refused(kwargs, msg):
    with pytest.raises(MetricError, match=msg):
        MetricSpec(**kwargs)


def test_registries_are_found_by_kind_and_checks_run_in_home_order(monkeypatch):
    assert registry.registry("benchmark").names()[:2] == ["gsm8k", "humaneval"]  # built-ins loaded on first need
    assert "drift.kl_{ref}" in registry.registry("drift metric")
    with pytest.raises(RegistryError, match="no widget registry"):
        registry.registry("widget")
    mine = Registry("widget")
    assert registry.registry("widget") is mine and Registry("widget") is not registry.registry("widget")
    calls = []
    registry.load_builtins()  # their own checks registered before the table is swapped for this test's
    monkeypatch.setattr(registry, "_CHECKS", {})
    registry.register_check("widget", lambda cfg: calls.append(("widget", cfg)))
    registry.register_check("probe suite", lambda cfg: calls.append(("probe suite", cfg)))
    registry.register_check("benchmark", lambda cfg: calls.append(("benchmark", cfg)))
    registry.check_config("cfg")
    assert calls == [("benchmark", "cfg"), ("probe suite", "cfg"), ("widget", "cfg")]
    with pytest.raises(RegistryError, match="cannot import 'no_such_plugin_mod'"):
        registry.import_plugins(["no_such_plugin_mod"])
    monkeypatch.delitem(registry._KINDS, "widget")
