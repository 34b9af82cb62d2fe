"""The synth stage with a scripted teacher: every filter, outputs, accumulation, resume, fallback.

The fake engine answers by prompt kind (problem writing, solving, program-of-thought, task writing,
code solving) from scripts below, so each candidate's fate is known in advance.
"""

from __future__ import annotations

import json
import re

import pytest

from pipeline.propose import accepted as proposal
from pipeline.loop.runner import Manifest, StageContext, StageResult, write_manifest
from pipeline.evals.loaders import load_gsm8k
from pipeline.engine import GenStats, Output
from pipeline.infra.io import atomic_write_json, read_json, read_jsonl
from pipeline.loop.lineage import Lineage
from pipeline.synth import codegen, mathgen, stage

GOOD = "Mia bakes 4 trays of 12 cookies each for the school fair and sells 30 of them. How many cookies are left?"
SPLIT = "A farmer plants 6 rows of 9 carrots in the long garden behind the red barn. How many carrots did he plant?"
DUP = "Mia bakes 5 trays of 10 cookies each for the school fair and sells 20 of them. How many cookies are left?"
EARLIER = "Owen saves 7 dollars every week for 8 weeks to buy a new kite at the beach shop. How much did he save?"


def disguised_test_item() -> str:
    q = load_gsm8k("test")[0]["question"]  # Janet's ducks
    return "Solve this: " + re.sub(r"\d+", lambda m: str(int(m.group()) + 5), q).upper()


def problem_script() -> list[tuple[str, str]]:
    """(text, finish) per candidate, in candidate order."""
    return [
        (f"Problem: {GOOD}\n\nSolution: ...", "stop"),
        (SPLIT, "stop"),
        (disguised_test_item(), "stop"),
        (DUP, "stop"),
        ("Write a story about a dragon who likes numbers like 7", "stop"),  # no question: malformed
        ("Lucy has 5 red pens and buys 3 more boxes of pens, each box holding", "length"),  # truncated
        ("Jo has 3 \ufffd\ufffd apples and 2 more pears in the big blue basket. How many fruits?", "stop"),
        ("How many? " + "x" * 9000, "stop"),  # huge
        ("<EXEMPLAR>", "stop"),  # copies its first few-shot exemplar
    ]


def solutions_for(problem: str, k: int) -> list[str]:
    if problem.startswith("Mia bakes 4"):
        return ["4*12=48 cookies. 48-30=18.\n#### 18", "48 - 30 = 18\n#### 18 and then more chatter",
                "Mia has 48-30 = 18 left.\n#### 18", "I think 20\n#### 20"][:k]
    if problem.startswith("Mia bakes 5"):
        return ["50-20=30\n#### 30"] * k
    if problem.startswith("Owen saves"):
        return ["7*8=56\n#### 56"] * k
    if problem.startswith("A farmer"):
        return ["#### 54", "#### 53", "#### 55", "#### 52"][:k]  # no majority
    return ["no idea"] * k


TASK_GOOD = '''```python
def sum_of_squares(nums: list) -> int:
    """Return the sum of the squares of the numbers.
    >>> sum_of_squares([1, 2])
    5
    """
    return sum(x * x for x in nums)
```
```python
assert sum_of_squares([1, 2]) == 5
assert sum_of_squares([]) == 0
assert sum_of_squares([3]) == 9
assert sum_of_squares([-2, 2]) == 8
```'''
TASK_TRUE = TASK_GOOD.replace("assert sum_of_squares([3]) == 9", "assert True")
TASK_TWO = TASK_GOOD.replace("assert sum_of_squares([3]) == 9\nassert sum_of_squares([-2, 2]) == 8\n", "")
TASK_NONDISC = '''```python
def count_zeros(nums: list) -> int:
    """Count the zeros in the list.
    >>> count_zeros([1])
    0
    """
    return nums.count(0)
```
```python
assert count_zeros([1]) == 0
assert count_zeros([]) == 0
assert count_zeros([5, 6]) == 0
```'''
TASK_HANG = TASK_GOOD.replace("return sum(x * x for x in nums)", "while True:\n        pass")
TASK_WRONG = TASK_GOOD.replace("x * x", "x + x")
TASK_SYNTAX = "```python\ndef broken(:\n    pass\n```"


def task_script(he_prompt: str) -> list[tuple[str, str]]:
    he_task = (f"```python\n{he_prompt}    return False\n```\n```python\nassert has_close_elements([1.0], 0.5) is False\n"
               "assert has_close_elements([1.0, 1.1], 0.5) is True\nassert has_close_elements([], 1.0) is False\n```")
    return [(TASK_GOOD, "stop"), (TASK_TRUE, "stop"), (TASK_TWO, "stop"), (TASK_NONDISC, "stop"),
            (TASK_HANG, "stop"), (TASK_WRONG, "stop"), (TASK_SYNTAX, "stop"), (he_task, "stop"),
            ("```python\ndef f(x):\n    return x", "length")]


class FakeEngine:
    supports_json_schema = False

    def __init__(self, fail_on: str | None = None) -> None:
        self.stats = GenStats()
        self.calls: list[str] = []
        self.fail_on = fail_on
        from pipeline.evals.loaders import load_humaneval

        self.tasks = task_script(load_humaneval()[0]["prompt"])
        self.problems = problem_script()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def end_of_turn_id(self):
        return 7

    def generate(self, prompts, params):
        last = prompts[0][-1]["content"]
        kind = ("problems" if last.startswith(mathgen.PROBLEM_HEADER) else "solve" if last.startswith(mathgen.SOLVE_HEADER)
                else "pot" if last.startswith(mathgen.POT_HEADER) else "tasks" if last.startswith(codegen.TASK_HEADER)
                else "code" if last.startswith(codegen.SOLVE_HEADER) else "?")
        self.calls.append(kind)
        if kind == self.fail_on:
            raise KeyboardInterrupt("simulated kill")
        outs = []
        for i, p in enumerate(prompts):
            user = p[-1]["content"]
            if kind == "problems":
                text, fin = self.problems[i] if i < len(self.problems) else ("junk", "stop")
                if text == "<EXEMPLAR>":
                    text = user.split("Problem: ")[1].split("\n\n")[0]
                outs.append(Output([text], [len(text) // 4], [fin]))
            elif kind == "solve":
                texts = solutions_for(user.split("\n\n", 1)[1], params.n)
                outs.append(Output(texts, [10] * len(texts), ["stop"] * len(texts)))
            elif kind == "pot":
                outs.append(Output(["```python\nprint(4 * 12 - 30)\n```" if "Mia bakes 4" in user else "```python\nprint(1)\n```"],
                                   [8], ["stop"]))
            elif kind == "tasks":
                text, fin = self.tasks[i] if i < len(self.tasks) else ("junk", "stop")
                outs.append(Output([text], [100], [fin]))
            elif kind == "code":
                texts = ["```python\ndef sum_of_squares(nums):\n    return sum(n ** 2 for n in nums)\n```",
                         "    return len(nums)\n"][:params.n]
                outs.append(Output(texts, [20] * len(texts), ["stop"] * len(texts)))
        self.stats.completion_tokens += sum(sum(o.completion_tokens) for o in outs)
        return outs


@pytest.fixture
def setup(tmp_path, monkeypatch, smoke_cfg, tiny_qwen3):
    """Returns make(gen_index, *overrides) -> (cfg, ctx); the fake engine replaces StageContext.engine."""
    holder = {"engine": FakeEngine()}
    monkeypatch.setattr(StageContext, "engine", lambda self, model_dir: holder["engine"])

    def make(gen: int = 1, *overrides: str, math_fraction: float = 0.5):
        cfg = smoke_cfg(f"synth.math.n_problems={len(problem_script())}", f"synth.code.n_tasks={len(task_script('x'))}",
                        "synth.math.k_solutions=4", "synth.math.max_solutions_per_problem=2", "synth.code.k_solutions=2",
                        "synth.val_fraction=0.0", "synth.min_anchor_examples=3", *overrides)
        lin = Lineage(cfg.paths.root, cfg.paths.lineage)
        lin.init("tiny:qwen3", tiny_qwen3)
        g = lin.gen(gen)
        atomic_write_json(g.path / "propose" / "accepted.json",
                          {"hparams": {"synth_temperature": 0.7, "num_examples": 50, "math_fraction": math_fraction}})
        return cfg, StageContext(cfg=cfg, lineage=lin, gen=g, teacher=lin.gen(0), stage="synth")

    return make, holder


def reasons(ctx) -> dict:
    return {r["id"].split("-", 1)[1]: r["reason"] for r in read_jsonl(ctx.out / "rejected.jsonl")}


def test_every_filter_with_scripted_teacher(setup):
    make, holder = setup
    cfg, ctx = make(1)
    res = stage.run(ctx)
    assert holder["engine"].calls == ["problems", "solve", "tasks", "code"]  # one batched call per step
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


def test_program_of_thought_check(setup):
    make, holder = setup
    holder["engine"].problems = [(GOOD, "stop"), (DUP, "stop")]
    cfg, ctx = make(1, "synth.math.pot_check=true", "synth.math.n_problems=2", math_fraction=1.0)
    stage.run(ctx)
    assert holder["engine"].calls == ["problems", "solve", "pot"]  # math_fraction 1: no code synthesized
    assert reasons(ctx) == {"math-00001": "pot_disagrees"}  # its program prints 1, the majority says 30
    assert {r["meta"]["problem_id"] for r in read_jsonl(ctx.out / "new.jsonl")} == {"g001-math-00000"}


def test_accumulates_and_dedups_against_earlier_generation(setup):
    make, holder = setup
    cfg1, ctx1 = make(1, math_fraction=1.0)
    holder["engine"].problems = [(EARLIER, "stop")]
    r1 = stage.run(ctx1)
    write_manifest(ctx1.gen, Manifest("synth", StageResult(metrics=r1.metrics)))
    holder["engine"] = FakeEngine()
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


def test_kill_mid_stage_resumes_without_duplicates(setup):
    make, holder = setup
    cfg, ctx = make(1)
    holder["engine"] = FakeEngine(fail_on="code")
    with pytest.raises(KeyboardInterrupt):
        stage.run(ctx)
    assert (ctx.out / "work" / "math_samples.jsonl").exists() and not (ctx.out / "train.jsonl").exists()
    holder["engine"] = FakeEngine()
    stage.run(ctx)
    assert holder["engine"].calls == ["code"]  # finished steps are loaded, not regenerated
    first = (ctx.out / "train.jsonl").read_text()
    stage.run(ctx)  # a second complete re-run rewrites the same files
    assert (ctx.out / "train.jsonl").read_text() == first
    ids = [r["meta"]["id"] for r in read_jsonl(ctx.out / "new.jsonl")]
    assert len(ids) == len(set(ids)) == 4


def test_nothing_verified_falls_back_to_anchor_rows(setup):
    make, holder = setup
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


class PoolEngine(FakeEngine):
    """Also solves GSM8K-train pool questions: 3 of 4 samples agree on the reference's final number (the
    teacher may know it); records every prompt, to show no reference answer is ever in one."""

    def __init__(self) -> None:
        super().__init__()
        from pipeline.evals.loaders import gsm8k_final_answer, gsm8k_slice

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
def test_math_source_pool_teacher_or_mixed(setup, source, n_pool, n_teacher):
    make, holder = setup
    holder["engine"] = eng = PoolEngine()
    cfg, ctx = make(1, f"synth.math.source={source}", "synth.math.n_problems=4", math_fraction=1.0)
    res = stage.run(ctx)
    assert eng.calls == (["problems"] if n_teacher else []) + ["solve"]  # pool questions need no writing call
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


def test_code_is_synthesized_when_any_candidate_wants_some(setup):
    """The shared synthesis serves every candidate: one with math_fraction < 1 brings code in."""
    make, holder = setup
    cfg, ctx = make(3, math_fraction=1.0)
    stage.run(ctx)
    assert "tasks" not in holder["engine"].calls  # alone, math_fraction=1 wants no code
    holder["engine"] = FakeEngine()
    cfg, ctx = make(1, "propose.candidates=2", math_fraction=1.0)
    acc = read_json(ctx.gen.path / "propose" / "accepted.json")
    acc["candidates"] = [{"hparams": acc["hparams"]}, {"hparams": {**acc["hparams"], "math_fraction": 0.5}}]
    atomic_write_json(ctx.gen.path / "propose" / "accepted.json", acc)
    stage.run(ctx)
    assert "tasks" in holder["engine"].calls
    cfg, ctx = make(2, "candidate.hparams.math_fraction=0.0", math_fraction=1.0)  # a sweep job's override
    holder["engine"] = FakeEngine()
    stage.run(ctx)
    assert "tasks" in holder["engine"].calls


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


def test_reworded_benchmark_task_is_rejected_by_behaviour(setup):
    """A task that rewords HumanEval/0 (renamed, docstring in other words) passes that problem's tests:
    rejected.jsonl names the problem and the signal; the honest task is kept."""
    make, holder = setup
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


def test_labels_known_to_be_wrong_leave_the_mixture(setup, monkeypatch):
    """The vote keeps 5 held-out GSM8K questions, every label wrong (0/5, upper bound 0.43 < 0.5):
    gen 1's math rows leave its mixture, the guard records them, and nothing trustworthy remains."""
    from pipeline.synth import mixture

    make, holder = setup
    scripted = solutions_for
    monkeypatch.setitem(globals(), "solutions_for", lambda p, k: scripted(p, k) if not scripted(p, k)[0] == "no idea"
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
