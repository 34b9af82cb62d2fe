"""A probe suite from a plugin module (tests/plugins/toy_suite.py), with no edit to pipeline/: config
validation, the drift stage, probes.jsonl, the compounding view and the report all pick it up."""

from __future__ import annotations

import dataclasses
import importlib
import sys

import pytest

from tests.support import compose
from pipeline import probes
from pipeline.report import text as report
from pipeline.config.compose import load_config
from pipeline.config import Budget, ConfigError
from pipeline.report import compounding
from pipeline.drift import stage as drift
from pipeline.drift.stage import aggregate, probe_records
from pipeline.engine import Output
from pipeline.infra.io import read_json, read_jsonl
from pipeline.lineage import Lineage
from pipeline.infra.metricspec import MetricError, MetricSpec
from pipeline.probes.suite import ProbeError, of_kind, scored
from pipeline.infra.registry import RegistryError
from pipeline.lineage.runner import StageContext

PLUGIN = "tests.plugins.toy_suite"


def with_budget(cfg, direction: str = "higher"):
    """`cfg` with a gate budget on the toy metric, through the registry checks `compose` runs.
    (A budget on a new key cannot be added by a CLI override of the typed dict; YAML can.)"""
    cfg.gate.budgets["toy_echo"] = Budget(direction, 0.1, 0.05)
    return load_config(cfg)


@pytest.fixture
def unregistered():
    """The toy plugin not imported yet (importing it registers it), and unregistered afterwards."""
    sys.modules.pop(PLUGIN, None)
    probes.SUITES.unregister("toy")
    yield
    sys.modules.pop(PLUGIN, None)
    probes.SUITES.unregister("toy")


def test_unknown_until_registered_then_validated(unregistered):
    with pytest.raises(ConfigError, match=r"'drift.suites'.*unknown suite\(s\) \['toy'\]"):
        compose(["drift.suites=[safety,toy]"])
    with pytest.raises(ConfigError, match=r"'gate.budgets.toy_echo'.*unknown drift metric"):
        with_budget(compose([]))

    toy = importlib.import_module(PLUGIN)  # its last line: register_suite(ProbeSuite(...))
    assert probes.SUITES.get("toy") is toy.SUITE and probes.register_suite(toy.SUITE) is toy.SUITE
    cfg = with_budget(compose(["drift.suites=[safety,honesty,sycophancy,ifeval,toy]"]))
    assert cfg.drift.suites[-1] == "toy" and cfg.gate.budgets["toy_echo"].step == 0.05
    assert probes.budgetable()["drift.toy_echo"] == "higher"
    with pytest.raises(ConfigError, match=r"'gate.budgets.toy_echo.direction'.*higher-is-better"):
        with_budget(compose([]), "lower")
    with pytest.raises(ConfigError, match=r"'drift.suites'.*unknown suite\(s\) \['toys'\]"):
        compose(["drift.suites=[toys]"])

    with pytest.raises(RegistryError, match="already registered"):
        probes.register_suite(dataclasses.replace(toy.SUITE))
    honest = MetricSpec("drift.honesty", "higher", select=of_kind(), value=scored, budgetable=True)
    with pytest.raises(ProbeError, match="already honesty's"):
        probes.register_suite(dataclasses.replace(toy.SUITE, name="toy2", metrics=(honest,)))
    kl = MetricSpec("drift.kl_gen0", "lower", select=of_kind(), value=scored, budgetable=True)
    with pytest.raises(ProbeError, match="drift stage's own"):
        probes.register_suite(dataclasses.replace(toy.SUITE, name="toy2", metrics=(kl,)))
    with pytest.raises(ProbeError, match="KL reference set"):
        probes.register_suite(dataclasses.replace(toy.SUITE, name="reference"))
    with pytest.raises(MetricError, match="higher|lower"):
        MetricSpec("drift.toy_x", "up", select=of_kind(), value=scored)
    with pytest.raises(ProbeError, match="higher|lower"):  # a probe metric needs a better side
        dataclasses.replace(toy.SUITE, name="toy2", metrics=(MetricSpec("drift.toy_x", None, value=scored),))
    assert "toy2" not in probes.SUITES


def test_toy_records_and_aggregate_without_a_model(unregistered):
    toy = importlib.import_module(PLUGIN)
    suites = {"toy": probes.load_suite("toy")}
    assert suites["toy"].tag == "toy-v1" and len(suites["toy"].items) == 3

    def generate(prompts):
        return [Output(["apple" if "apple" in p[-1]["content"] else "pear"], [1], ["stop"]) for p in prompts]

    records = probe_records(suites, 0, generate)
    assert [r["outcome"] for r in records] == ["echoed", "missed", "missed"]
    metrics, counts = aggregate(records, 2)
    assert metrics["drift.toy_echo"] == pytest.approx(1 / 3)
    assert counts["toy"] == 3 and "drift.honesty" in counts["undefined"]  # built-ins not run: undefined
    assert toy.SUITE.metrics[0].item_values(records) == {"toy-1": 1.0, "toy-2": 0.0, "toy-3": 0.0}


@pytest.mark.slow
def test_drift_stage_on_a_plugin_suite(unregistered, smoke_cfg, tiny_qwen3, capsys):
    cfg = with_budget(smoke_cfg(f"plugins=[{PLUGIN}]", "drift.suites=[toy]", "engine.backend=hf",
                                "drift.max_items_per_suite=3", "drift.kl_prompts=2", "drift.max_tokens=8"))
    assert "toy" in probes.SUITES  # registered by importing the `plugins` module
    lin = Lineage(cfg.paths.root, cfg.paths.lineage)
    lin.init(cfg.model.spec, tiny_qwen3)
    g0 = lin.gen(0)

    metrics = drift.run(StageContext(cfg=cfg, lineage=lin, gen=g0, teacher=g0, stage="drift")).metrics
    recs = read_jsonl(g0.path / "drift" / "probes.jsonl")
    assert [r["suite"] for r in recs] == ["toy"] * 3
    assert metrics["drift.toy_echo"] == sum(r["score"] for r in recs) / 3
    summary = read_json(g0.path / "drift" / "summary.json")
    assert summary["counts"]["toy"] == 3 and "toy-v1" in summary["suites"]

    rows = [{"name": "gen_000", "gen": 0, "status": "promoted", "parent": None, "metrics": metrics}]
    assert compounding.view(rows)["drift.toy_echo"]["direction"] == "higher"
    cols = report.alignment_columns(rows)
    assert cols.index("drift.toy_echo") == cols.index("drift.ifeval") + 1  # after the built-in suites'
    assert "drift.toy_echo" in report.render(rows, "table").splitlines()[0]
    assert probes.main(["--list"]) == 0
    assert "drift.toy_echo" in capsys.readouterr().out
