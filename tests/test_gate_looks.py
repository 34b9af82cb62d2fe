"""The capability check's nested looks on a real lineage layout (scripted engines stand in for the
models), decision.json v2, and the gate's operating characteristics pinned by simulation."""

from __future__ import annotations

import json

import pytest

from pipeline.engine import Output
from pipeline.evals.loaders import subset
from pipeline.evals.stage import evaluate_model, load_split
from pipeline.gate import stage as gate
from pipeline.gate.__main__ import main as gate_cli
from pipeline.gate.simulate import Scenario, simulate
from pipeline.infra.io import atomic_write_json, read_json, read_jsonl
from pipeline.lineage import Lineage
from pipeline.lineage.runner import Engines, Manifest, StageContext, write_manifest
from pipeline.stats import pass_probability
from tests.support import ScriptedEngine, compose, gsm8k_answers


class Right(ScriptedEngine):
    """Answers every GSM8K question right (both models alike: identical outcomes); logs its calls."""

    def __init__(self, seen: list, model_dir, fail: bool = False) -> None:
        super().__init__(eot=151645)
        self.seen, self.fail = seen, fail
        self.name = "gen_000" if model_dir.name == "base" else model_dir.parent.name  # gen 0's model: tmp/base

    def generate(self, prompts, params):
        if self.fail:
            raise RuntimeError("killed while scoring")
        self.seen.append((self.name, len(prompts)))
        return super().generate(prompts, params)

    def reply(self, messages, i, params):
        return Output([f"#### {gsm8k_answers()[messages[-1]['content'].split(chr(10) * 2, 1)[0]]}"], [3], ["stop"])


def _lineage(smoke_cfg, tmp_path, *extra):
    cfg = smoke_cfg("gate.looks=[4,8,16]", "gate.epsilon=0.3", "gate.on_inconclusive=keep_teacher", *extra)
    cfg.eval.tasks = {"gsm8k_val": cfg.eval.tasks["gsm8k_val"]}
    cfg.gate.budgets = {}
    lin = Lineage(cfg.paths.root, "g")
    (tmp_path / "base").mkdir()
    lin.init("tiny:qwen3", tmp_path / "base")
    g0, g1 = lin.gen(0), lin.gen(1)
    for gen in (g0, g1):
        res = evaluate_model(cfg, gen.model_dir, gen.stage_dir("eval"), Engines(lambda d: Right([], d)).use)
        write_manifest(gen, Manifest("eval", res))
    atomic_write_json(g1.stage_dir("synth") / "stats.json", {"red_flags": []})
    return cfg, lin, g0, g1


def test_an_inconclusive_capability_check_looks_further_on_nested_items(smoke_cfg, tmp_path):
    cfg, lin, g0, g1 = _lineage(smoke_cfg, tmp_path)
    seen: list = []
    ctx = StageContext(cfg=cfg, lineage=lin, gen=g1, teacher=g0, stage="gate",
                       engines=Engines(lambda d: Right(seen, d), keep=True))
    info = gate.run(ctx).info
    # identical answers: 4 and 8 items cannot show a loss under 0.3 at alpha 0.05/3; 16 can
    decision = read_json(g1.path / "gate" / "decision.json")
    cap = decision["checks"]["capability"]
    assert [(lk["n"], lk["verdict"]) for lk in cap["looks"]] == [(4, "inconclusive"), (8, "inconclusive"), (16, "pass")]
    assert all(lk["alpha"] == pytest.approx(0.05 / 3) for lk in cap["looks"]) and cap["margin"] == 0.3
    assert cap["items"] == 16 and cap["method"] == "newcombe-paired-wilson" and cap["stopped"] == "pass"
    assert cap["slice"]["slice"] == "validation" and cap["slice"]["n"] == 16 and cap["slice"]["version"] == 2
    assert decision["version"] == 2 and info["status"] == decision["status"] == "promoted"
    assert decision["deciding"]["rule"] == "all rules passed" and "intersection-union" in decision["family"]
    assert "look 3 of 3 planned (4/8/16)" in info["reasons"][0]
    # nested: the looks are prefixes of one permutation; each side scored only the items it lacked
    order = [it["id"] for it in subset(load_split(cfg.eval.tasks["gsm8k_val"]), 16, 0)]
    assert [r["id"] for r in read_jsonl(g1.path / "eval" / "gsm8k_val.jsonl")] == order[:4]
    for gen in (g0, g1):
        kept = read_jsonl(g1.path / "gate" / "reference" / gen.name / "gsm8k_val" / "records.jsonl")
        assert sorted(r["id"] for r in kept) == sorted(order[4:])  # never the eval's 4 again
    assert seen == [("gen_001", 4), ("gen_000", 4), ("gen_001", 8), ("gen_000", 8)]
    # a second run re-scores nothing and decides the same
    assert gate.run(ctx).info["checks"]["capability"]["looks"] == cap["looks"] and len(seen) == 4


def test_looks_resume_after_a_kill_and_stop_inconclusive_at_the_cap(smoke_cfg, tmp_path):
    cfg, lin, g0, g1 = _lineage(smoke_cfg, tmp_path, "gate.epsilon=0.1")
    seen: list = []
    dead = {"gen_000": True}  # the teacher's engine dies at its first look: the candidate's items are kept
    ctx = StageContext(cfg=cfg, lineage=lin, gen=g1, teacher=g0, stage="gate",
                       engines=Engines(lambda d: Right(seen, d, fail=dead.get("gen_000" if d.name == "base" else d.parent.name, False)),
                                       keep=False))
    with pytest.raises(RuntimeError, match="killed while scoring"):
        gate.run(ctx)
    assert seen == [("gen_001", 4)]
    dead.clear()
    info = gate.run(ctx).info
    assert seen == [("gen_001", 4), ("gen_000", 4), ("gen_001", 8), ("gen_000", 8)]  # the candidate's 4 reused
    cap = info["checks"]["capability"]
    # 0.1 is out of reach for 16 identical items: inconclusive at the cap, and the teacher stays
    assert cap["verdict"] == "inconclusive" and cap["stopped"] == "cap" and len(cap["looks"]) == 3
    assert info["status"] == "rejected" and info["evidence"] == "inconclusive"
    assert info["deciding"] == {"rule": "capability", "metric": "gsm8k_val.accuracy_flexible",
                                "reason": info["reasons"][-1]}
    assert "gate.on_inconclusive=keep_teacher" in info["reasons"][-1]
    assert "still inconclusive after 3 look(s) of 3 planned (4/8/16), 16 item(s) (cap)" in info["reasons"][0]
    assert cap["power"]["pass_probability"] is None and cap["power"]["why"] == "no discordant items"


def test_the_eval_reuses_records_by_id_when_n_grows(smoke_cfg, tmp_path):
    cfg = smoke_cfg()
    cfg.eval.tasks = {"gsm8k_val": cfg.eval.tasks["gsm8k_val"]}
    seen: list = []
    out = tmp_path / "gen_001" / "eval"
    evaluate_model(cfg, tmp_path / "gen_001" / "model", out, Engines(lambda d: Right(seen, d)).use)
    first = [r["id"] for r in read_jsonl(out / "gsm8k_val.jsonl")]
    cfg.eval.tasks["gsm8k_val"].n = 10
    res = evaluate_model(cfg, tmp_path / "gen_001" / "model", out, Engines(lambda d: Right(seen, d)).use)
    assert seen == [("gen_001", 4), ("gen_001", 6)]  # only the 6 new items
    assert [r["id"] for r in read_jsonl(out / "gsm8k_val.jsonl")][:4] == first and res.info["tasks"]["gsm8k_val"]["n"] == 10


def test_a_budget_fails_only_on_harm_shown_past_it():
    g = compose([]).gate
    g.budgets = {"honesty": g.budgets["honesty"]}
    ids = [f"q{i}" for i in range(50)]
    cap = {i: 1.0 for i in ids}
    parent = {f"h{i}": 1.0 for i in range(30)}
    slip = {f"h{i}": float(i >= 3) for i in range(30)}  # lost 3 of 30: inside the noise, not shown harm
    status, reasons, checks = gate.decide(g, {"gsm8k_val.accuracy_flexible": cap, "drift.honesty": slip},
                                          {"gsm8k_val.accuracy_flexible": cap, "drift.honesty": parent},
                                          {"gsm8k_val.accuracy_flexible": cap, "drift.honesty": parent}, [])
    step = checks["budgets"]["drift.honesty"]["step"]
    assert step["verdict"] == "pass" and step["rule"] == "harm" and step["better_lo"] < -0.05
    assert "no harm past the budget shown" in next(r for r in reasons if r.startswith("drift.honesty: step"))
    assert 0 < step["power"]["harm_detection"] < 1 and step["looks"][0]["n"] == 30


# -- operating characteristics, pinned ------------------------------------------------------------
# The targets on the CPU profile: rate 0.3, discordance 0.2; a candidate 10 points worse is
# promoted in at most 10% of draws, an unchanged one rejected in at most 5%. Constants live here, not
# in the config, so meeting them means changing the gate, not the scenario.
RATE, DISCORDANCE, WORSE, SIMS, SEED = 0.3, 0.2, -0.10, 300, 20241207


def test_simulated_targets_on_the_cpu_profile():
    g = compose(["experiment=cpu"]).gate
    worse = simulate(g, Scenario(RATE, WORSE, DISCORDANCE), SIMS, SEED)
    same = simulate(g, Scenario(RATE, 0.0, DISCORDANCE), SIMS, SEED)
    assert worse["promoted"] <= 0.10 and same["rejected"] <= 0.05, (worse, same)
    assert same["promoted"] >= 0.85  # and the gate is not a wall
    assert worse["looks"] == [50, 100, 200, 400] and 50 <= worse["mean_items"] <= 400
    # the normal approximation agrees with the simulated share of passes at the cap, roughly
    assert pass_probability(400, DISCORDANCE, g.epsilon, g.alpha / 4) > 0.9


def test_simulate_cli_prints_a_row_per_scenario_and_refuses_impossible_ones(capsys):
    assert gate_cli(["simulate", "--sims", "20", "--delta", "-0.1", "0", "--scope", "capability", "gate",
                     "experiment=cpu"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["scope"], r["delta"]) for r in rows] == [("capability", -0.1), ("capability", 0.0),
                                                      ("gate", -0.1), ("gate", 0.0)]
    assert rows[2]["budgets"]["harmbench_refusal"] == 60 and rows[0]["profile"] == "cpu"
    assert all(abs(r["promoted"] + r["rejected"] + r["inconclusive"] - 1) < 1e-9 for r in rows)
    assert gate_cli(["simulate", "--rate", "0.02", "--discordance", "0.2", "--sims", "5"]) == 2
    assert "is no pair of models" in capsys.readouterr().err


@pytest.mark.parametrize("override, msg", [("gate.looks=[100,50]", "gate.looks.*increasing positive"),
                                           ("gate.looks=[40,80]", "gate.looks.*first look 40 must be .*gsm8k_val.n = 50")])
def test_config_refuses_looks_that_are_not_nested_from_the_eval(override, msg):
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match=msg):
        compose([override])
