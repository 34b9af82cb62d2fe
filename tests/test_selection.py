"""Selection apart from gating: several candidates are ranked on the selection slice, the gate reads
the validation slice, and the two share no item (pipeline.evals.selection, pipeline.loop.promote)."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline import evals
from pipeline.config import ConfigError
from pipeline.evals import selection
from pipeline.evals.gsm8k import SLICES as GSM8K_SLICES, train_slice as gsm8k_slice
from pipeline.evals.stage import load_items
from pipeline.infra.io import read_json, write_jsonl
from pipeline.loop import generation, promote
from pipeline.lineage import Lineage, LineageError
from pipeline.lineage.runner import Manifest, StageResult, write_manifest
from tests.support import compose

VAL, SEL = "gsm8k_val.accuracy_flexible", "gsm8k_sel.accuracy_flexible"


def test_selection_slice_is_its_own_part_of_train(cfg):
    ids = {name: {r["id"] for r in gsm8k_slice(name)} for name in GSM8K_SLICES}
    assert len(ids["selection"]) == selection.SELECTION_SIZE
    for other in ("validation", "verifier", "exemplars", "pool"):  # never the gate's, a prompt's or training's
        assert not ids["selection"] & ids[other], other
    assert ids["selection"] <= evals.protected_ids()  # never trained on, decontaminated against
    sel, val = (load_items(cfg.eval.tasks[t]) for t in ("gsm8k_sel", "gsm8k_val"))
    assert len(sel) == len(val) == 50 and not {r["id"] for r in sel} & {r["id"] for r in val}


@pytest.fixture(scope="module")
def cfg():
    return compose(["propose.candidates=3"])


def test_select_metric_must_read_another_split_than_the_gate(cfg):
    evals.check_config(cfg)  # the default: gsm8k_sel, apart from gsm8k_val

    def check(metric, candidates=3):
        evals.check_config(dataclasses.replace(cfg, candidate=dataclasses.replace(cfg.candidate, select_metric=metric),
                                               propose=dataclasses.replace(cfg.propose, candidates=candidates)))

    with pytest.raises(ConfigError, match=r"'candidate.select_metric'.*the split the gate reads"):
        check(VAL)
    with pytest.raises(ConfigError, match=r"'candidate.select_metric'.*test split"):
        check("gsm8k_test.accuracy_flexible", candidates=1)
    with pytest.raises(ConfigError, match=r"'candidate.select_metric'.*not in eval.tasks"):
        check("nosuch.accuracy")
    check("nosuch.accuracy", candidates=1)  # nothing to rank: no selection task needed


def test_only_candidates_among_several_score_the_selection_slice(cfg):
    assert "gsm8k_sel" not in selection.tasks_for(cfg, "gen_000", 0).eval.tasks
    assert "gsm8k_sel" not in selection.tasks_for(cfg, "gen_002", 2).eval.tasks
    assert "gsm8k_sel" in selection.tasks_for(cfg, "gen_002-c1", 2).eval.tasks
    assert selection.tasks_for(cfg, "gen_002", 2).eval.tasks.keys() == cfg.eval.tasks.keys() - {"gsm8k_sel"}


def _candidate(lin, gen, name, status, val, sel, items):
    """A finished candidate: per-item eval records on both slices (the first `val`/`sel` share of
    the items right), its eval manifest declaring the splits, and its gate verdict."""
    c = lin.gen_by_name(f"{gen.name}-{name}")
    tasks = {}
    for task, split, share in (("gsm8k_val", "validation", val), ("gsm8k_sel", "selection", sel)):
        rows = items[task]
        write_jsonl(c.stage_dir("eval") / f"{task}.jsonl",
                    [{"id": r["id"], "metrics": {"accuracy_flexible": float(i < share * len(rows))}}
                     for i, r in enumerate(rows)])
        tasks[task] = {"benchmark": "gsm8k", "split": split, "directions": {"accuracy_flexible": "higher"}}
    write_manifest(c, Manifest("eval", StageResult(metrics={VAL: val, SEL: sel}, info={"tasks": tasks})))
    write_manifest(c, Manifest("gate", StageResult(info={"status": status, "reasons": [f"{name} checked"]})))
    lin.record(c, status="candidate", parent="gen_000", metrics={VAL: val, SEL: sel})
    return c


def test_several_candidates_are_ranked_on_the_selection_slice_apart_from_the_gate(tmp_path, cfg):
    items = {t: load_items(cfg.eval.tasks[t])[:20] for t in ("gsm8k_val", "gsm8k_sel")}
    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    gen = lin.gen(1)
    lin.record(gen, status="candidate", parent="gen_000", teacher="gen_000")
    cands = [_candidate(lin, gen, "c0", "promoted", 0.6, 0.3, items),  # best on the gate's items
             _candidate(lin, gen, "c1", "promoted", 0.4, 0.5, items),  # best on the selection slice
             _candidate(lin, gen, "c2", "rejected", 0.9, 0.9, items)]
    # ranking on the gate's own metric is refused: the winner's inflated score would feed the gate
    with pytest.raises(LineageError, match=r"read the gate's split gsm8k/validation"):
        promote.apply(lin, gen, cands, VAL, VAL)
    assert promote.apply(lin, gen, cands, cfg.candidate.select_metric, cfg.gate.metric) == "gen_001-c1"
    assert lin.teacher().name == "gen_001-c1"
    assert any(f"not selected: {SEL}=0.3" in r for r in lin.row(cands[0])["gate_reasons"])
    slices = read_json(gen.path / "selection.json")["slices"]
    sel, gate = slices["selection"], slices["gate"]
    assert (sel["metric"], sel["splits"], sel["version"]) == (SEL, ["gsm8k/selection"], selection.SELECTION_VERSION)
    assert (gate["metric"], gate["splits"], gate["n"]) == (VAL, ["gsm8k/validation"], 20)
    assert set(sel["ids"]) == {r["id"] for r in items["gsm8k_sel"]} and not set(sel["ids"]) & set(gate["ids"])
    # what a sweeper (Optuna) maximises: the selected candidate's selection score, not its gate score
    assert generation.objective(cfg, lin) == 0.5


def test_a_lone_candidate_is_the_gates_verdict(tmp_path):
    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    gen = lin.gen(1)
    lin.record(gen, status="candidate", parent="gen_000", teacher="gen_000")
    write_manifest(gen, Manifest("eval", StageResult(metrics={VAL: 0.4})))  # no selection slice scored
    write_manifest(gen, Manifest("gate", StageResult(info={"status": "promoted", "reasons": []})))
    assert promote.apply(lin, gen, [gen], SEL, VAL) == "gen_001"
    assert not (gen.path / "selection.json").exists()
