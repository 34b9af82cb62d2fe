"""The synth stage with a scripted teacher: every filter, outputs, accumulation, resume, fallback.

The fake engine answers by prompt kind (problem writing, solving, program-of-thought, task writing,
code solving) from scripts below, so each candidate's fate is known in advance.
"""

from __future__ import annotations

import json
import re

import pytest

from pipeline.propose import accepted as proposal
from pipeline.lineage.runner import Manifest, StageContext, StageResult, write_manifest
from pipeline.engine import Output
from pipeline.infra.io import atomic_write_json, read_json, read_jsonl
from pipeline.lineage import Lineage
from pipeline.synth import mathgen, stage
from tests.support.synth import DUP, EARLIER, GOOD, TASK_GOOD, SynthTeacher

def reasons(ctx) -> dict:
    return {r["id"].split("-", 1)[1]: r["reason"] for r in read_jsonl(ctx.out / "rejected.jsonl")}


def test_every_filter_with_scripted_teacher(synth_setup):
    make, holder = synth_setup
    cfg, ctx = make(1)
    res = stage.run(ctx)
    assert holder["engine"].kinds == ["problems", "solve", "tasks", "code"]  # one batched call per step
    rej = reasons(ctx)
    assert rej == {
        "math-00001": "low_agreement", "math-00002": "benchmark_match", "math-00003": "dup_within_gen",
        "math-00004": "malformed", "math-00005": "truncated", "math-00006": "non_utf8", "math-00007": "huge",
        "math-00008": "copies_exemplar",
        "code-00001": "trivial_tests", "code-00002": "trivial_tests", "code-00003": "non_discriminating",
        "code-00004": "timeout", "code-00005": "solution_fails", "code-00006": "syntax_error",
        "code-00007": "benchmark_match", "code-00008": "truncated",
    }
    new = read_jsonl(ctx.out / "new.jsonl")
    math_rows = [r for r in new if r["meta"]["kind"] == "math"]
    assert [r["messages"][1]["content"] for r in math_rows] == ["4*12=48 cookies. 48-30=18.\n#### 18", "48 - 30 = 18\n#### 18"]
    assert all(r["messages"][0]["content"] == GOOD and r["meta"]["agreement"] == 0.75 for r in math_rows)
    code_rows = [r for r in new if r["meta"]["kind"] == "code"]
    assert len(code_rows) == 2 and all(r["messages"][1]["content"].startswith("```python\n") for r in code_rows)
    assert '"""Return the sum of the squares' in code_rows[0]["messages"][0]["content"]
    pairs = read_jsonl(ctx.out / "pairs.jsonl")
    assert {p["meta"]["kind"] for p in pairs} == {"math", "code"}
    mp = next(p for p in pairs if p["meta"]["kind"] == "math")
    assert mp["prompt"] == [{"role": "user", "content": GOOD}] and "#### 20" in mp["rejected"][0]["content"]
    assert mp["chosen"][0]["role"] == "assistant" and "#### 18" in mp["chosen"][0]["content"]
    st = read_json(ctx.out / "stats.json")
    assert st["decontamination"]["hits"] == 2 and st["decontamination"]["final_hits"] == 0
    assert st["math"]["rejected"]["agreement"] == {"low_agreement": 1}
    assert st["code"]["rejected"]["discrimination"] == {"non_discriminating": 1}
    assert st["math"]["agreement_histogram"] == {"0.25": 1, "0.75": 1, "1.00": 1}
    assert st["red_flags"] == [] and st["mixture"]["fallback_anchor"] is False
    train = read_jsonl(ctx.out / "train.jsonl")
    assert len(train) == 4 and len({r["meta"]["id"] for r in train}) == 4
    assert res.metrics["synth.kept"] == 4 and res.metrics["synth.candidates"] == 18
    assert res.metrics["synth.decontam_hits"] == 2 and res.tokens > 0
    assert st["hparams"]["synth_temperature"] == 0.7


def test_program_of_thought_check(synth_setup):
    make, holder = synth_setup
    holder["engine"].problems = [(GOOD, "stop"), (DUP, "stop")]
    cfg, ctx = make(1, "synth.math.pot_check=true", "synth.math.n_problems=2", math_fraction=1.0)
    stage.run(ctx)
    assert holder["engine"].kinds == ["problems", "solve", "pot"]  # math_fraction 1: no code synthesized
    assert reasons(ctx) == {"math-00001": "pot_disagrees"}  # its program prints 1, the majority says 30
    assert {r["meta"]["problem_id"] for r in read_jsonl(ctx.out / "new.jsonl")} == {"g001-math-00000"}


def test_accumulates_and_dedups_against_earlier_generation(synth_setup):
    make, holder = synth_setup
    cfg1, ctx1 = make(1, math_fraction=1.0)
    holder["engine"].problems = [(EARLIER, "stop")]
    r1 = stage.run(ctx1)
    write_manifest(ctx1.gen, Manifest("synth", StageResult(metrics=r1.metrics)))
    holder["engine"] = SynthTeacher()
    holder["engine"].problems = [(EARLIER.replace("7", "9"), "stop"), (GOOD, "stop")]
    cfg2, ctx2 = make(2, math_fraction=1.0)
    # gen 1 is gen 2's promoted teacher: only the teacher's promoted line is accumulated
    ctx2.lineage.record(ctx2.lineage.gen(0), status="promoted")
    ctx2.lineage.record(ctx1.gen, status="promoted", teacher="gen_000")
    ctx2.teacher = ctx1.gen
    stage.run(ctx2)
    assert reasons(ctx2)["math-00000"] == "dup_earlier_gen"
    train = read_jsonl(ctx2.out / "train.jsonl")
    assert {r["meta"]["gen"] for r in train} == {1, 2}
    assert sum(r["messages"][0]["content"] == EARLIER for r in train) == 1  # gen 1's (one distinct) row carried over
    assert read_json(ctx2.out / "stats.json")["mixture"]["earlier_generations"] == 1


def test_kill_mid_stage_resumes_without_duplicates(synth_setup):
    make, holder = synth_setup
    cfg, ctx = make(1)
    holder["engine"] = SynthTeacher(fail_on="code")
    with pytest.raises(KeyboardInterrupt):
        stage.run(ctx)
    assert (ctx.out / "work" / "math_samples.jsonl").exists() and not (ctx.out / "train.jsonl").exists()
    holder["engine"] = SynthTeacher()
    stage.run(ctx)
    assert holder["engine"].kinds == ["code"]  # finished steps are loaded, not regenerated
    first = (ctx.out / "train.jsonl").read_text()
    stage.run(ctx)  # a second complete re-run rewrites the same files
    assert (ctx.out / "train.jsonl").read_text() == first
    ids = [r["meta"]["id"] for r in read_jsonl(ctx.out / "new.jsonl")]
    assert len(ids) == len(set(ids)) == 4


def test_nothing_verified_falls_back_to_anchor_rows(synth_setup):
    make, holder = synth_setup
    holder["engine"].problems = [("junk", "stop")]
    cfg, ctx = make(1, math_fraction=1.0)
    res = stage.run(ctx)
    train = read_jsonl(ctx.out / "train.jsonl")
    assert len(train) == 3 and all(r["meta"]["source"] == "anchor" for r in train)
    assert all(re.search(r"#### -?\d+$", r["messages"][1]["content"]) for r in train)
    st = read_json(ctx.out / "stats.json")
    assert st["mixture"]["fallback_anchor"] is True and any("anchor" in f for f in st["red_flags"])
    assert res.metrics["synth.anchor_examples"] == 3 and res.metrics["synth.kept"] == 0


def test_hparams_come_from_the_accepted_proposal_else_the_config(smoke_cfg, tiny_qwen3):
    cfg = smoke_cfg()
    lin = Lineage(cfg.paths.root, cfg.paths.lineage)
    lin.init("tiny:qwen3", tiny_qwen3)
    g = lin.gen(1)
    ctx = StageContext(cfg=cfg, lineage=lin, gen=g, teacher=lin.gen(0), stage="synth")
    fallback = {"synth_temperature": cfg.propose.hparams.synth_temperature, "num_examples": cfg.propose.hparams.num_examples,
                "math_fraction": cfg.propose.hparams.math_fraction, "source": "config:propose.hparams"}
    assert stage.hparams(ctx) == fallback  # no proposal
    proposal.write(g, {"hparams": {"synth_temperature": 0.5}, "source": "teacher"})
    assert stage.hparams(ctx) == fallback  # incomplete proposal
    proposal.write(g, {"hparams": {"synth_temperature": 0.5, "num_examples": 7, "math_fraction": 0.25}, "source": "teacher"})
    assert stage.hparams(ctx) == {"synth_temperature": 0.5, "num_examples": 7, "math_fraction": 0.25,
                                       "source": str(proposal.path_of(g))}


@pytest.mark.slow
def test_smoke_run_on_tiny_qwen3(smoke_cfg, tiny_qwen3, tmp_path):
    """A real engine on a random-weight model: the stage finishes, writes every file, and the
    decontamination report over the final data is clean."""
    cfg = smoke_cfg("engine.backend=hf", "synth.code.max_tokens_task=32", "propose.hparams.math_fraction=0.5")
    lin = Lineage(cfg.paths.root, cfg.paths.lineage)
    lin.init("tiny:qwen3", tiny_qwen3)
    ctx = StageContext(cfg=cfg, lineage=lin, gen=lin.gen(1), teacher=lin.gen(0), stage="synth")
    res = stage.run(ctx)
    for name in ("new", "train", "val", "pairs", "rejected"):
        assert (ctx.out / f"{name}.jsonl").exists()
    st = read_json(ctx.out / "stats.json")
    assert st["decontamination"]["final_hits"] == 0 and len(read_jsonl(ctx.out / "train.jsonl")) > 0
    assert st["math"]["candidates"] == cfg.synth.math.n_problems and st["code"]["candidates"] == cfg.synth.code.n_tasks
    assert res.tokens > 0
    json.dumps(st)  # serializable


class PoolEngine(SynthTeacher):
    """Also solves GSM8K-train pool questions: 3 of 4 samples agree on the reference's final number (the
    teacher may know it); records every prompt, to show no reference answer is ever in one."""

    def __init__(self) -> None:
        super().__init__()
        from pipeline.evals.gsm8k import final_answer as gsm8k_final_answer, train_slice as gsm8k_slice

        self.pool = {r["question"].strip(): r for r in gsm8k_slice("pool")}
        self.final = gsm8k_final_answer
        self.prompts: list[str] = []

    def generate(self, prompts, params):
        self.prompts += [m["content"] for p in prompts for m in p]
        outs = super().generate(prompts, params)
        for i, p in enumerate(prompts):
            q = p[-1]["content"].split("\n\n", 1)[-1]
            if p[-1]["content"].startswith(mathgen.SOLVE_HEADER) and q in self.pool:
                n = self.final(self.pool[q]["answer"])
                texts = [f"Adding it up step by step gives {n}.\n#### {n}"] * 3 + ["#### 0"]
                outs[i] = Output(texts[:params.n], [10] * params.n, ["stop"] * params.n)
        return outs


@pytest.mark.parametrize("source, n_pool, n_teacher", [("pool", 4, 0), ("mixed", 2, 2), ("teacher", 0, 4)])
def test_math_source_pool_teacher_or_mixed(synth_setup, source, n_pool, n_teacher):
    make, holder = synth_setup
    holder["engine"] = eng = PoolEngine()
    cfg, ctx = make(1, f"synth.math.source={source}", "synth.math.n_problems=4", math_fraction=1.0)
    res = stage.run(ctx)
    assert eng.kinds == (["problems"] if n_teacher else []) + ["solve"]  # pool questions need no writing call
    st = read_json(ctx.out / "stats.json")
    assert st["math"]["source"]["mode"] == source and res.info["source"] == source
    assert st["math"]["source"]["pool_candidates"] == n_pool and st["math"]["source"]["teacher_candidates"] == n_teacher
    rows = [r for r in read_jsonl(ctx.out / "new.jsonl") if r["meta"]["kind"] == "math"]
    pool_rows = [r for r in rows if r["meta"]["source"] == "pool"]
    assert st["math"]["source"]["pool_kept"] == len({r["meta"]["problem_id"] for r in pool_rows})
    if n_pool:
        assert pool_rows and all(r["messages"][0]["content"] in eng.pool for r in pool_rows)
        # the label is the vote's majority; the reference solution is never shown to the teacher
        refs = [eng.pool[r["messages"][0]["content"]]["answer"] for r in pool_rows]
        assert all(r["messages"][1]["content"].startswith("Adding it up") for r in pool_rows)
        assert not any(ref.strip() in p for ref in refs for p in eng.prompts)
        assert all(r["meta"]["answer"] == eng.final(ref) for r, ref in zip(pool_rows, refs))
        assert res.metrics["synth.pool_share"] == round(st["math"]["source"]["pool_kept"] / st["math"]["problems_kept"], 4)
    else:
        assert pool_rows == [] and res.metrics["synth.pool_share"] == 0.0
    if n_teacher:  # the written problems are the scripted ones (GOOD kept, SPLIT without a majority)
        assert any(r["messages"][0]["content"] == GOOD and r["meta"]["source"] == "teacher" for r in rows)


def test_code_is_synthesized_when_any_candidate_wants_some(synth_setup):
    """The shared synthesis serves every candidate: one with math_fraction < 1 brings code in."""
    make, holder = synth_setup
    cfg, ctx = make(3, math_fraction=1.0)
    stage.run(ctx)
    assert "tasks" not in holder["engine"].kinds  # alone, math_fraction=1 wants no code
    holder["engine"] = SynthTeacher()
    cfg, ctx = make(1, "propose.candidates=2", math_fraction=1.0)
    acc = read_json(ctx.gen.path / "propose" / "accepted.json")
    acc["candidates"] = [{"hparams": acc["hparams"]}, {"hparams": {**acc["hparams"], "math_fraction": 0.5}}]
    atomic_write_json(ctx.gen.path / "propose" / "accepted.json", acc)
    stage.run(ctx)
    assert "tasks" in holder["engine"].kinds
    cfg, ctx = make(2, "candidate.hparams.math_fraction=0.0", math_fraction=1.0)  # a sweep job's override
    holder["engine"] = SynthTeacher()
    stage.run(ctx)
    assert "tasks" in holder["engine"].kinds


REWORDED_HE0 = '''```python
def any_pair_within(values: list, limit: float) -> bool:
    """Tell whether some two entries of the sequence sit less than `limit` apart.
    >>> any_pair_within([1.0, 2.5], 0.1)
    False
    """
    ordered = sorted(values)
    return any(b - a < limit for a, b in zip(ordered, ordered[1:]))
```
```python
assert any_pair_within([1.0, 2.5], 0.1) is False
assert any_pair_within([1.0, 1.05], 0.1) is True
assert any_pair_within([], 1.0) is False
assert any_pair_within([3.0, 9.0, 3.2], 0.5) is True
```'''


def test_reworded_benchmark_task_is_rejected_by_behaviour(synth_setup):
    """A task that rewords HumanEval/0 (renamed, docstring in other words) passes that problem's tests:
    rejected.jsonl names the problem and the signal; the honest task is kept."""
    make, holder = synth_setup
    holder["engine"].tasks = [(TASK_GOOD, "stop"), (REWORDED_HE0, "stop")]
    cfg, ctx = make(1)
    stage.run(ctx)
    rej = {r["id"].split("-", 1)[1]: r for r in read_jsonl(ctx.out / "rejected.jsonl")}
    hit = rej["code-00001"]
    assert hit["filter"] == "decontaminate" and hit["reason"] == "benchmark_behaviour"
    assert hit["matched_benchmark"] == "humaneval" and hit["matched_id"] == "HumanEval/0"
    assert hit["match"]["kind"] == "behaviour" and hit["match"]["entry_point"] == "has_close_elements"
    assert "code-00000" not in rej
    st = read_json(ctx.out / "stats.json")
    assert st["decontamination"]["by_kind"].get("behaviour") == 1


def test_labels_known_to_be_wrong_leave_the_mixture(synth_setup, monkeypatch):
    """The vote keeps 5 held-out GSM8K questions, every label wrong (0/5, upper bound 0.43 < 0.5):
    gen 1's math rows leave its mixture, the guard records them, and nothing trustworthy remains."""
    from pipeline.synth import mixture
    from tests.support import synth as script

    make, holder = synth_setup
    scripted = script.solutions_for
    monkeypatch.setattr(script, "solutions_for", lambda p, k: scripted(p, k) if not scripted(p, k)[0] == "no idea"
                        else ["#### 1234567"] * k)  # the verifier's questions: one confident wrong answer
    cfg, ctx = make(1, "synth.verifier.n_questions=5", math_fraction=1.0)
    stage.run(ctx)
    st = read_json(ctx.out / "stats.json")
    assert st["verifier"]["math"]["kept"] == 5 and st["verifier"]["math"]["correct"] == 0
    guard = st["mixture"]["guard"]
    kept_rows = sum(r["meta"]["split"] == "train" for r in read_jsonl(ctx.out / "new.jsonl"))
    assert guard["dropped"] == {"gen_001": kept_rows} and kept_rows > 0
    assert guard["origins"]["gen_001"]["trusted"] is False
    assert all(r["meta"]["origin"] == "gen_001" for r in read_jsonl(ctx.out / "new.jsonl"))
    assert {r["meta"]["origin"] for r in read_jsonl(ctx.out / "train.jsonl")} == {"anchor"}
    assert any("gate.min_verifier_precision dropped" in f for f in st["red_flags"])
    assert mixture.refusal(st["mixture"]).startswith("rejected before training")
