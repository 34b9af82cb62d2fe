"""The verifiers' own precision (pipeline.synth.verifier, pipeline.synth.mutants) with a scripted teacher.

The teacher answers each held-out verifier question right, wrong or without agreement by its
position in the slice, so precision and yield are known in advance; code tasks come with tests
that do or do not pin down their boundaries.
"""

from __future__ import annotations

import pytest

from pipeline.evals.gsm8k import final_answer as gsm8k_final_answer, train_slice as gsm8k_slice
from tests.support.synth import ByKind
from pipeline.infra.io import atomic_write_json, read_json, read_jsonl
from pipeline.lineage import Lineage
from pipeline.report.text import render
from pipeline.lineage.runner import StageContext
from pipeline.synth import codegen, mathgen, stage, verifier
from pipeline.synth.mutants import KINDS, mutants

N_Q = 6  # verifier questions: i % 3 == 0 right, 1 confidently wrong, 2 no agreement
LITERAL = '''def clip_count(nums: list, limit: int) -> int:
    """Count numbers below the limit; subtract 2 per other number."""
    n = 0
    for x in nums:
        if x < limit:
            n = n + 1
        else:
            n = n - 2
    return n // 2
'''
BOUNDARY = '''```python
def count_below(nums: list, limit: int) -> int:
    """Return how many numbers are strictly below the limit.
    >>> count_below([1, 5], 3)
    1
    """
    total = 0
    for x in nums:
        if x < limit:
            total += 1
    return total
```
```python
assert count_below([1, 5], 3) == 1
assert count_below([3, 3, 2], 3) == 1
assert count_below([], 0) == 0
assert count_below([0, 1, 2], 10) == 3
```'''


def answer_for(i: int, gold: str, k: int) -> list[str]:
    if i % 3 == 0:
        return [f"Step by step.\n#### {gold}"] * k
    if i % 3 == 1:
        return [f"Confidently wrong.\n#### {int(float(gold)) + 1}"] * k
    return [f"#### {j + 1000}" for j in range(k)]  # every sample different: no majority


class Teacher(ByKind):
    """Writes junk problems, answers verifier questions by script, writes `tasks`, records every prompt."""

    def __init__(self, tasks: list[str] = (), fail_on: str | None = None) -> None:
        super().__init__(fail_on)
        self.tasks, self.prompts = list(tasks), []
        self.index = {q["question"]: (i, gsm8k_final_answer(q["answer"])) for i, q in enumerate(gsm8k_slice("verifier"))}

    def tokens(self, text: str) -> int:
        return 5

    def generate(self, prompts, params):
        self.prompts += prompts
        return super().generate(prompts, params)

    def reply(self, messages, i, params):
        if self.kind == "problems":
            return "junk"
        if self.kind == "solve":
            q = messages[-1]["content"].split("\n\n", 1)[1]
            return answer_for(*self.index[q], params.n) if q in self.index else ["no idea"] * params.n
        if self.kind == "tasks":
            return self.tasks[i] if i < len(self.tasks) else "junk"
        return ["    return 0\n"] * params.n


@pytest.fixture
def setup(monkeypatch, smoke_cfg, tiny_qwen3):
    holder = {"engine": Teacher()}
    monkeypatch.setattr(StageContext, "engine", lambda self, model_dir: holder["engine"])

    def make(*overrides: str, math_fraction: float = 1.0):
        cfg = smoke_cfg("synth.math.n_problems=2", "synth.math.k_solutions=4", "synth.code.k_solutions=1",
                        f"synth.verifier.n_questions={N_Q}", "synth.val_fraction=0.0", "synth.min_anchor_examples=40",
                        *overrides)
        lin = Lineage(cfg.paths.root, cfg.paths.lineage)
        lin.init("tiny:qwen3", tiny_qwen3)
        g = lin.gen(1)
        atomic_write_json(g.path / "propose" / "accepted.json",
                          {"hparams": {"synth_temperature": 0.7, "num_examples": 50, "math_fraction": math_fraction}})
        return StageContext(cfg=cfg, lineage=lin, gen=g, teacher=lin.gen(0), stage="synth")

    return make, holder


def test_precision_and_yield_from_a_scripted_teacher(setup):
    make, holder = setup
    ctx = make()
    res = stage.run(ctx)
    assert holder["engine"].kinds == ["problems", "solve"]  # no problem parsed (no call for them), the verifier's
    recs = read_jsonl(ctx.out / "verifier.jsonl")
    qs = gsm8k_slice("verifier")[:N_Q]
    assert [r["id"] for r in recs] == [q["id"] for q in qs]
    assert [r["kept"] for r in recs] == [True, True, False] * 2 and [r["correct"] for r in recs] == [True, False, False] * 2
    assert all(set(r) >= {"id", "majority", "agreement", "kept", "gold", "correct"} for r in recs)
    m = res.metrics
    assert m["synth.verifier_precision"] == 0.5 and m["synth.verifier_precision_n"] == 4
    assert 0 < m["synth.verifier_precision_lo"] < 0.5 < m["synth.verifier_precision_hi"] < 1
    assert m["synth.verifier_yield"] == round(4 / 6, 4) and m["synth.verifier_yield_n"] == 6
    st = read_json(ctx.out / "stats.json")["verifier"]["math"]
    assert (st["asked"], st["kept"], st["correct"]) == (6, 4, 2) and st["precision"]["estimate"] == 0.5
    assert "vote_keep_rate" in st and "synth.keep_rate" in m


def test_gold_answers_never_reach_the_teacher(setup):
    make, holder = setup
    stage.run(make())
    sent = [msg["content"] for p in holder["engine"].prompts for msg in p]
    for q in gsm8k_slice("verifier")[:N_Q]:
        assert not any(q["answer"].strip() in t or mathgen.clean_reference(q["answer"]) in t for t in sent)
    asked = [p[-1]["content"] for p in holder["engine"].prompts if p[-1]["content"].startswith(mathgen.SOLVE_HEADER)]
    assert [a.split("\n\n", 1)[1] for a in asked[-N_Q:]] == [q["question"] for q in gsm8k_slice("verifier")[:N_Q]]


def test_verifier_slice_never_in_training_rows(setup):
    make, _ = setup
    ctx = make()  # nothing synthetic is verified: train.jsonl is 40 anchor rows
    stage.run(ctx)
    ver = gsm8k_slice("verifier")
    ids, questions = {q["id"] for q in ver}, {q["question"].strip() for q in ver}
    rows = read_jsonl(ctx.out / "train.jsonl") + read_jsonl(ctx.out / "new.jsonl")
    assert len(rows) >= 40
    assert not any(r["meta"].get("id") in ids or r["messages"][0]["content"].strip() in questions for r in rows)


def test_resume_reuses_the_verifier_step_and_measures_kept_code(setup):
    make, holder = setup
    holder["engine"] = Teacher([BOUNDARY], fail_on="tasks")
    ctx = make("synth.code.n_tasks=1", math_fraction=0.5)
    with pytest.raises(KeyboardInterrupt):
        stage.run(ctx)
    assert (ctx.out / "work" / "math_verifier.jsonl").exists()
    holder["engine"] = Teacher([BOUNDARY])
    res = stage.run(ctx)
    assert holder["engine"].kinds == ["tasks", "code"]  # the verifier's call is not made again
    assert res.metrics["synth.verifier_precision"] == 0.5
    muts = read_jsonl(ctx.out / "code_mutants.jsonl")
    assert [r["id"] for r in muts] == ["g001-code-00000"] and muts[0]["n"] > 0
    cmp = [x for x in muts[0]["mutants"] if x["kind"] == "compare"]
    assert cmp and all(x["killed"] for x in cmp)  # `<` -> `<=` fails assert count_below([3, 3, 2], 3) == 1
    assert res.metrics["synth.code_kill_rate_n"] == muts[0]["n"]
    assert res.metrics["synth.code_kill_rate"] == round(muts[0]["killed"] / muts[0]["n"], 4)
    assert (ctx.out / "work" / "code_mutants.jsonl").exists()


def test_every_mutation_kind_of_a_literal_solution():
    ms = mutants(LITERAL, "clip_count", 50)
    assert {m.kind for m in ms} == set(KINDS)
    codes = {m.kind: m.code for m in ms if m.kind not in {x.kind for x in ms[:ms.index(m)]}}
    assert "n = 1" in codes["constant"] and "x <= limit" in codes["compare"] and "2 // n" in codes["swap"]
    assert "if False:" in codes["drop_if"] and "else" not in codes["drop_else"]
    assert len({m.code for m in ms}) == len(ms) and all(m.code != LITERAL for m in ms)
    assert mutants(LITERAL, "clip_count", 50) == ms  # deterministic
    assert [m.kind for m in mutants(LITERAL, "clip_count", 5)] == list(KINDS)  # a cap keeps every kind
    assert mutants("def f(:", "f", 5) == [] and mutants(LITERAL, "other", 5) == []


def test_boundary_tests_kill_the_off_by_one_and_weak_tests_do_not(smoke_cfg):
    cfg = smoke_cfg()
    task, _ = codegen.parse_task(BOUNDARY, "stop", 3, 8000)
    weak = {**task, "tests": "assert count_below([1, 5], 3) == 1\nassert count_below([], 0) == 0\n"
                             "assert count_below([0, 1, 2], 10) == 3"}
    strong_rec, weak_rec = verifier.run_mutants([{**task, "id": "s"}, {**weak, "id": "w"}], 8, cfg)

    def off_by_one(rec):
        return next(m for m in rec["mutants"] if m["kind"] == "compare")

    assert off_by_one(strong_rec)["killed"] and not off_by_one(weak_rec)["killed"]
    s = verifier.summary([], [weak_rec], None)["code"]
    assert s["kill_rate"]["estimate"] < 1 and s["tasks_with_survivors"] == 1
    assert verifier.metrics(verifier.summary([], [], None)) == {}  # nothing measured: no metric at all


def test_report_shows_precision_with_its_interval_next_to_the_keep_rate():
    row = {"name": "gen_001", "status": "promoted",
           "metrics": {"synth.keep_rate": 0.3, "synth.verifier_precision": 0.5, "synth.verifier_precision_lo": 0.15,
                       "synth.verifier_precision_hi": 0.85, "synth.verifier_precision_n": 4,
                       "synth.code_kill_rate": 0.75, "synth.code_kill_rate_lo": 0.4, "synth.code_kill_rate_hi": 0.9,
                       "synth.code_kill_rate_n": 8}}
    head, *_, line = render([row], "markdown").splitlines()
    cols = [c.strip() for c in head.strip("|").split("|")]
    assert cols.index("synth.verifier_precision") == cols.index("synth.keep_rate") + 1
    assert "0.5 [0.15, 0.85]" in line and "0.75 [0.4, 0.9]" in line


def test_too_many_questions_is_a_clear_error():
    with pytest.raises(ValueError, match="synth.verifier.n_questions"):
        verifier.questions(10 ** 6)
