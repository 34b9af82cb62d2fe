"""What reaches training across generations: every row names the generation that wrote it; only the
teacher's promoted line is accumulated; the red flags run on the mixture actually trained; labels
shown to be mostly wrong (gate.min_verifier_precision) are dropped, and a generation left with no
trustworthy row is rejected before training. Hand-written lineages, no engine, no training."""

from __future__ import annotations

import pytest

from pipeline.loop import candidates, promote
from pipeline.gate import stage as gate
from pipeline.infra.io import atomic_write_json, read_json, read_jsonl, write_jsonl
from pipeline.lineage import Lineage
from pipeline.report.html import generations as html_generations
from pipeline.report.html.disk import read_gen
from pipeline.lineage.runner import Manifest, StageContext, StageResult, write_manifest
from pipeline.stats import wilson
from pipeline.synth import mixture
from pipeline.synth.decontaminate import default_index
from pipeline.train import mixture as train_mixture

HPARAMS = {
    "learning_rate": 1e-3, "epochs": 1, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "batch_size": 2,
    "max_seq_length": 128, "warmup_ratio": 0.0, "num_examples": 40, "math_fraction": 1.0, "synth_temperature": 0.8,
}


def math_row(gen: int, i: int, answer: int) -> dict:
    pid = f"g{gen:03d}-math-{i:05d}"
    q = f"Generation {gen} asks: Tom has {i} boxes of {answer} pens and {gen} more crates. How many pens?"
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"So.\n#### {answer}"}],
            "meta": {"kind": "math", "gen": gen, "id": f"{pid}-0", "problem_id": pid, "answer": str(answer),
                     "source": "teacher", "split": "train"}}


def code_row(gen: int, i: int) -> dict:
    pid = f"g{gen:03d}-code-{i:05d}"
    return {"messages": [{"role": "user", "content": f"Write g{gen}_{i}(x) returning x * {i}."},
                         {"role": "assistant", "content": f"```python\ndef g{gen}_{i}(x):\n    return x * {i}\n```"}],
            "meta": {"kind": "code", "gen": gen, "id": f"{pid}-0", "problem_id": pid, "source": "teacher", "split": "train"}}


def lineage(cfg) -> Lineage:
    from pipeline.engine import models

    lin = Lineage(cfg.paths.root, cfg.paths.lineage)
    lin.init(cfg.model.spec, models.resolve(cfg.model.spec, cfg.paths.models))
    lin.record(lin.gen(0), status="promoted")
    return lin


def synthesized(cfg, lin: Lineage, i: int, teacher: str, status: str, new: list[dict],
                precision: tuple[int, int] | None = None, hparams: dict | None = None):
    """gen_<i> as its propose and synth stages leave it (the synth stage's own mixture rules: the
    teacher's promoted line, the label guard), with ledger status `status`."""
    gen = lin.gen(i)
    lin.record(gen, status=status, parent=teacher, teacher=teacher)
    hp = {**HPARAMS, **(hparams or {})}
    sc = cfg.synth
    origin = mixture.gen_name(i)
    new = [{**r, "meta": {**r["meta"], "origin": origin}} for r in new]
    acc = mixture.earlier(lin, i, teacher, sc.accumulate)
    iv = wilson(*precision).as_dict() if precision else None
    trust = mixture.label_trust(cfg.gate.min_verifier_precision, dict(zip(acc.line, acc.dirs)), (origin, iv))
    train, info = mixture.build(new, acc.rows, hp["num_examples"], hp["math_fraction"], sc.anchor_fraction,
                                sc.min_anchor_examples, mixture.seed_for(cfg.seed, i), i,
                                default_index(sc.decontam_ngram, sc.decontam_ngram_masked, sc.decontam_near_dup), trust)
    d = gen.path / "synth"
    write_jsonl(d / "new.jsonl", new)
    write_jsonl(d / "train.jsonl", train)
    write_jsonl(d / "val.jsonl", [])
    atomic_write_json(d / "stats.json", {"red_flags": [], "mixture": {**info, "accumulated": acc.record()},
                                         "verifier": {"math": {"precision": iv}}})
    write_manifest(gen, Manifest("synth", StageResult()))
    atomic_write_json(gen.path / "propose" / "accepted.json",
                      {"hparams": hp, "source": "teacher", "candidates": [{"hparams": hp, "source": "teacher"}]})
    return gen


def test_rejected_generation_never_reenters_and_the_origins_say_so(smoke_cfg):
    """Gen 1 rejected (the README run: 68 of 70 labelled 2): gen 2, taught again by gen 0, holds none
    of its rows; gen 3, taught by the promoted gen 2, holds gen 2's and its own."""
    cfg = smoke_cfg("gate.min_verifier_precision=0")
    lin = lineage(cfg)
    synthesized(cfg, lin, 1, "gen_000", "rejected", [math_row(1, i, 2) for i in range(12)])
    g2 = synthesized(cfg, lin, 2, "gen_000", "candidate", [math_row(2, i, 10 + i) for i in range(4)])
    path, mix = train_mixture.chat_data(cfg, lin, g2, lin.gen(0), _hp(g2), g2.path / "train" / "data")
    # `mix` is the train manifest's `mixture` (pipeline.train.stage.prepare_job: tests/test_candidate_data.py)
    assert path == g2.path / "synth" / "train.jsonl"
    assert mix["origins"] == {"gen_002": 4}
    assert mix["accumulated"] == {"line": [], "excluded": {"gen_001": "status 'rejected'"}, "rows": 0}
    assert {mixture.origin_of(r) for r in read_jsonl(g2.path / "synth" / "train.jsonl")} == {"gen_002"}

    lin.record(g2, status="promoted")
    g3 = synthesized(cfg, lin, 3, "gen_002", "candidate", [math_row(3, i, 30 + i) for i in range(3)])
    drawn = train_mixture.draw(cfg, lin, g3, lin.gen(2), _hp(g3))
    assert drawn.info["origins"] == {"gen_002": 4, "gen_003": 3}
    assert drawn.info["accumulated"]["line"] == ["gen_002"]
    assert drawn.info["accumulated"]["excluded"] == {"gen_001": "status 'rejected'"}


def test_promoted_line_follows_the_selected_candidate(tmp_path):
    """A K-candidate generation counts through its selected candidate; its unselected sibling and a
    rejected generation do not; a broken link ends the line."""
    lin = Lineage(tmp_path, "l")
    for name, status, teacher in (("gen_000", "promoted", None), ("gen_001", "promoted", "gen_000"),
                                  ("gen_001-c0", "rejected", "gen_000"), ("gen_001-c1", "promoted", "gen_000"),
                                  ("gen_002", "rejected", "gen_001-c1"), ("gen_003", "candidate", "gen_001-c1")):
        lin.record(lin.gen_by_name(name), status=status, teacher=teacher)
    for i in (1, 2):
        write_jsonl(lin.gen(i).path / "synth" / "new.jsonl", [math_row(i, 0, 5)])
        write_manifest(lin.gen(i), Manifest("synth", StageResult()))
    assert [r["name"] for r in lin.teacher_line("gen_001-c1")] == ["gen_001-c1", "gen_000"]
    acc = mixture.earlier(lin, 3, "gen_001-c1", accumulate=True)
    assert acc.line == ["gen_001"] and acc.excluded == {"gen_002": "status 'rejected'"}
    assert [mixture.origin_of(r) for r in acc.rows] == ["gen_001"]
    assert mixture.earlier(lin, 3, "gen_009", accumulate=True).line == []  # no such teacher: nothing borrowed


def _hp(gen):
    from pipeline.propose import accepted as proposal

    return proposal.read(gen).typed_hparams()


def test_accumulated_rows_that_collapse_are_flagged_and_reject_at_the_gate(smoke_cfg):
    """Gen 1 (promoted) labelled 12 problems `2`; gen 2 adds 3 varied ones, too few for the synth
    stage's own check. On the mixture trained, 12/15 share one answer: flagged with its interval."""
    cfg = smoke_cfg("gate.min_verifier_precision=0")
    lin = lineage(cfg)
    synthesized(cfg, lin, 1, "gen_000", "promoted", [math_row(1, i, 2) for i in range(12)])
    g2 = synthesized(cfg, lin, 2, "gen_001", "candidate", [math_row(2, i, 40 + i) for i in range(3)])
    drawn = train_mixture.draw(cfg, lin, g2, lin.gen(1), _hp(g2))
    collapse = drawn.info["checks"]["checks"][0]
    assert (collapse["verdict"], collapse["n"], collapse["count"], collapse["answer"]) == ("flagged", 15, 12, "2")
    iv = wilson(12, 15)
    assert collapse["rate"]["lo"] == pytest.approx(iv.lo) and collapse["rate"]["hi"] == pytest.approx(iv.hi)
    assert drawn.info["checks"]["red_flags"] == [collapse["text"]] and "12/15" in collapse["text"]
    assert drawn.info["origins"] == {"gen_001": 12, "gen_002": 3}
    # the gate reads the train manifest's checks: the candidate is rejected for them
    ctx = _gate_ready(cfg, lin, g2, lin.gen(1), drawn.info)
    res = gate.run(ctx)
    assert res.info["status"] == "rejected"
    assert any("training mixture: answer collapse: 12/15" in r for r in res.info["reasons"])


def _gate_ready(cfg, lin, gen, teacher, mix) -> StageContext:
    """Eval, drift and train manifests on which every other gate rule passes."""
    metric = cfg.gate.metric
    for g, value in ((lin.gen(0), 0.40), (teacher, 0.40), (gen, 0.41)):
        write_manifest(g, Manifest("eval", StageResult(metrics={metric: value})))
        write_manifest(g, Manifest("drift", StageResult()))
    write_manifest(gen, Manifest("train", StageResult(info={"mixture": mix})))
    return StageContext(cfg=cfg, lineage=lin, gen=gen, teacher=teacher, stage="gate")


def test_a_tiny_mixture_is_recorded_too_small_to_judge(smoke_cfg):
    cfg = smoke_cfg("gate.min_verifier_precision=0")
    lin = lineage(cfg)
    synthesized(cfg, lin, 1, "gen_000", "promoted", [math_row(1, 0, 2), math_row(1, 1, 2), code_row(1, 0)],
                hparams={"math_fraction": 0.5})
    g = lin.gen(1)
    drawn = train_mixture.draw(cfg, lin, g, lin.gen(0), _hp(g))
    collapse, share = drawn.info["checks"]["checks"]
    assert (collapse["verdict"], collapse["n"], collapse["count"]) == ("too small to judge", 2, 2)
    assert collapse["rate"]["n"] == 2 and collapse["rate"]["lo"] is not None  # stated, not judged
    assert share["verdict"] == "clear" and drawn.info["checks"]["red_flags"] == []
    assert drawn.info["checks"]["not_judged"] == ["answer collapse: too small to judge (2 math problems of the "
                                                  "training mixture, fewer than 10)"]
    res = gate.run(_gate_ready(cfg, lin, g, lin.gen(0), drawn.info))
    assert res.info["status"] == "promoted", res.info["reasons"]  # recorded, not a red flag
    assert "data: answer collapse: too small to judge (2 math problems" in " ".join(res.info["reasons"])


def test_label_trust_refuses_only_labels_known_to_be_mostly_wrong():
    rows = [math_row(1, 0, 2), code_row(1, 0), math_row(2, 0, 3),
            {**math_row(1, 1, 4), "meta": {"kind": "math", "source": "anchor", "origin": "anchor", "id": "a"}}]
    trust = mixture.LabelTrust(0.5, {"gen_001": wilson(0, 28).as_dict(), "gen_002": wilson(5, 10).as_dict()})
    kept, rec = trust.split(rows)
    assert [mixture.origin_of(r) + ":" + r["meta"]["kind"] for r in kept] == ["gen_001:code", "gen_002:math", "anchor:math"]
    assert rec["dropped"] == {"gen_001": 1} and rec["origins"]["gen_002"]["trusted"] is True
    assert mixture.LabelTrust(0.5, {"gen_001": wilson(0, 0).as_dict()}).trusted("gen_001")  # unmeasured: kept
    assert mixture.LabelTrust(0.0, {"gen_001": wilson(0, 28).as_dict()}).trusted("gen_001")  # 0 = off


def test_precision_below_the_floor_rejects_before_training(smoke_cfg):
    """Gen 1's math labels are 0/28 right (upper bound 0.12 < 0.5): every row is dropped, nothing
    trustworthy remains, so gen 1 ends rejected with no train directory, the reason in its gate
    decision, the ledger and the report."""
    cfg = smoke_cfg()
    assert cfg.gate.min_verifier_precision == 0.5
    lin = lineage(cfg)
    gen = synthesized(cfg, lin, 1, "gen_000", "candidate", [math_row(1, i, i) for i in range(12)], precision=(0, 28))
    assert read_json(gen.path / "synth" / "stats.json")["mixture"]["guard"]["dropped"] == {"gen_001": 12}
    assert candidates.train_candidates(cfg, lin, gen, lin.gen(0)) == [gen]
    assert not (gen.path / "train").exists() and not (gen.path / "model").exists()
    assert not (gen.path / "eval").exists()
    decision = read_json(gen.path / "gate" / "decision.json")
    assert decision["status"] == "rejected" and decision["before_training"] is True
    assert decision["deciding"]["rule"] == "label_precision"
    reason = decision["reasons"][0]
    assert reason.startswith("rejected before training") and "gen_001" in reason and "12 rows dropped" in reason
    assert "[0.00, 0.12]" in reason and "gate.min_verifier_precision=0.5" in reason
    promote.apply(lin, gen, [gen], cfg.gate.metric)
    row = lin.row(gen)
    assert row["status"] == "rejected" and row["gate_reasons"] == [reason]
    assert lin.teacher().name == "gen_000"
    assert "rejected before training: no trustworthy synthetic row remains" in str(
        html_generations.gate(row, read_gen(gen.path)))
    # a resumed run finds the decision and trains nothing
    assert candidates.rejected_before_training(cfg, lin, gen, lin.gen(0)) is True
    assert not (gen.path / "train").exists()


def test_synth_collapse_flag_only_for_rows_that_are_trained():
    """The synth stage's own collapse flag (68 of 70 kept problems labelled 2) stands while those rows
    can be trained; once the label guard dropped them it is no reason to reject the candidate."""
    from pipeline.synth.stats import red_flags

    def stats(dropped: dict) -> dict:
        return {"gen": 1, "decontamination": {"final_hits": 0}, "mixture": {"guard": {"dropped": dropped}},
                "math": {"candidates": 80, "problems_kept": 70, "majority_answers": {"2": 68, "5": 2}},
                "code": {"candidates": 0, "tasks_kept": 0}}

    assert red_flags(stats({})) == ["answer collapse: 68/70 kept problems have the answer 2 "
                                    "(rate 0.97, 95% interval [0.90, 0.99])"]
    assert red_flags(stats({"gen_001": 136})) == []
