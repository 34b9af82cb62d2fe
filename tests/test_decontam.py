"""Decontamination: disguised benchmark items are caught, GSM8K train mostly survives, the CLI contract."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from pipeline.evals.gsm8k import load as load_gsm8k
from pipeline.evals.humaneval import load_problems as load_humaneval
from pipeline.synth.decontaminate import BenchmarkIndex, benchmark_items, default_index, index_for
from tests.support import ROOT, compose


@pytest.fixture(scope="module")
def index() -> BenchmarkIndex:
    s = compose([]).synth
    return default_index(s.decontam_ngram, s.decontam_ngram_masked, s.decontam_near_dup)


def _row(user: str, assistant: str = "Let me think.\n#### 1") -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def disguise(q: str, shift: int) -> str:
    """Numbers changed, case and spacing changed, punctuation changed, an instruction prefix."""
    q = re.sub(r"\d+", lambda m: str(int(m.group()) + shift), q)
    q = "  ".join(q.split()).upper().replace(".", " ;").replace(",", "")
    return f"Solve this:   {q}"


def test_disguised_gsm8k_test_items_are_caught(index):
    test = load_gsm8k("test")
    caught = [index.match(disguise(r["question"], 3 + i % 5)) for i, r in enumerate(test)]
    missed = [r["id"] for r, m in zip(test, caught) if m is None]
    assert len(missed) <= len(test) * 0.01, missed[:5]
    janet = index.match(disguise(test[0]["question"], 7))
    assert janet is not None and janet.item_id == test[0]["id"] and janet.benchmark == "gsm8k_test"


def test_renamed_item_caught_by_near_duplicate_match(index):
    q = load_gsm8k("test")[1]["question"]  # a short one: "A robe takes 2 bolts of blue fiber ..."
    swapped = q.replace("robe", "scarf").replace("blue", "red").replace("white", "green").replace("2", "6")
    m = index.match("Problem: " + swapped)
    assert m is not None and m.item_id.endswith("00001")


def test_humaneval_prompt_with_renamed_function_is_caught(index):
    he = load_humaneval()[0]
    renamed = he["prompt"].replace(he["entry_point"], "close_pairs_exist")
    hit = index.match_row(_row(renamed, "```python\npass\n```"))
    assert hit is not None and hit.benchmark == "humaneval" and hit.item_id == he["task_id"]


def test_gsm8k_train_is_mostly_kept(index):
    """GSM8K train shares 8-grams with test for ~1.3% of questions: the filter must stay close to that."""
    train = load_gsm8k("train")
    removed = sum(index.match(r["question"]) is not None for r in train)
    assert removed / len(train) < 0.05, f"removed {removed}/{len(train)}"


def test_fresh_problem_passes(index):
    q = ("Marisol knits 4 scarves every weekend and sells each for 12 dollars at the craft fair near the "
         "lighthouse. After 3 weekends she spends 30 dollars on new yarn. How many dollars does she keep?")
    assert index.match(q) is None


def test_index_rejects_bad_settings():
    with pytest.raises(ValueError, match="n-gram sizes"):
        BenchmarkIndex(benchmark_items()[:3], 2, 13, 0.5)
    with pytest.raises(ValueError, match="containment"):
        BenchmarkIndex(benchmark_items()[:3], 8, 13, 0.0)


def test_cli_splits_rows_and_reports(tmp_path):
    test = load_gsm8k("test")
    rows = [_row(disguise(test[5]["question"], 2)), _row("What is the sum of the first 6 odd numbers? Explain briefly."),
            {**_row("Write a haiku about 9 cats sitting on a warm windowsill in winter."), "meta": {"id": "x"}}]
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = subprocess.run([sys.executable, "-m", "pipeline.synth.decontaminate", "--input", str(inp), "--output", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == {"kept": 2, "removed": 1}
    removed = [json.loads(x) for x in (tmp_path / "out.removed.jsonl").read_text().splitlines()]
    assert removed[0]["matched_benchmark"] == "gsm8k_test" and removed[0]["matched_id"] == test[5]["id"]
    assert [json.loads(x).get("meta") for x in out.read_text().splitlines()] == [None, {"id": "x"}]


def test_cli_bad_input_is_a_clear_error(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"messages": "not a list"}\n')
    p = subprocess.run([sys.executable, "-m", "pipeline.synth.decontaminate", "--input", str(inp),
                        "--output", str(tmp_path / "o.jsonl")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and "in.jsonl:1" in p.stderr and "messages" in p.stderr


@pytest.fixture(scope="module")
def full_index() -> BenchmarkIndex:
    """The index the synth stage builds: every check, the paraphrase check at its configured threshold."""
    return index_for(compose([]).synth)


def reword(q: str) -> str:
    """A paraphrase that keeps the numbers: sentences reordered, verbs and nouns swapped, a new question."""
    swaps = {"bought": "purchased", "buys": "purchases", "each": "every single", "has": "owns", "gives": "hands over",
             "sells": "sold", "makes": "produces", "spent": "paid out", "store": "shop", "friends": "pals",
             "house": "home", "money": "cash", "How many": "What is the count of", "How much": "What amount of"}
    sents = re.split(r"(?<=[.?!])\s+", q.strip())
    body, last = sents[:-1], sents[-1:]
    body = body[1:] + body[:1] if len(body) > 2 else body
    text = " ".join(body + last)
    for a, b in swaps.items():
        text = re.sub(rf"\b{a}\b", b, text)
    return "Could you work out the following for me? " + text


def test_reworded_test_items_with_the_same_numbers_are_caught(full_index):
    test = load_gsm8k("test")
    eligible = [r for r in test if len(re.findall(r"\d", r["question"])) and len(set(re.findall(r"\d[\d,.]*", r["question"]))) >= 2]
    hits = [full_index.match(reword(r["question"])) for r in eligible]
    caught = sum(h is not None and h.item_id == r["id"] for r, h in zip(eligible, hits))
    assert caught >= 0.95 * len(eligible), f"{caught}/{len(eligible)}"
    q = test[0]["question"]  # Janet's ducks, reworded beyond the n-gram checks
    hit = full_index.match(reword(q))
    assert hit is not None and hit.item_id == test[0]["id"]


def test_validation_slice_and_humaneval_solutions_and_tests_are_indexed(full_index):
    val = load_gsm8k("validation")[3]
    hit = full_index.match(val["question"])
    assert hit is not None and hit.benchmark == "gsm8k_val" and hit.item_id == val["id"]
    he = load_humaneval()[12]
    renamed = (he["prompt"] + he["canonical_solution"]).replace(he["entry_point"], "pick_longest")
    sol = full_index.match_row(_row("Write a function.", f"```python\n{renamed}```"))
    assert sol is not None and sol.benchmark == "humaneval" and sol.item_id == he["task_id"]
    tests = full_index.match_row(_row("Here are tests:\n" + he["test"]))
    assert tests is not None and tests.item_id == he["task_id"]


def test_paraphrase_check_removes_little_of_gsm8k_train(full_index):
    """Every check together (n-grams, near duplicates, paraphrases, validation slice indexed) removes at
    most 2% of the GSM8K train questions outside the validation slice."""
    train = load_gsm8k("train")
    removed = [r["id"] for r in train if full_index.match(r["question"]) is not None]
    assert len(removed) / len(train) <= 0.02, f"removed {len(removed)}/{len(train)}"


# ---- reworded benchmark items: hand paraphrases among clean rows (issue 23) --------------------------

DATA = ROOT / "tests" / "data"


def _rate(k: int, n: int) -> str:
    from pipeline.stats import wilson

    w = wilson(k, n)
    return f"{k}/{n} = {k / n:.3f} [{w.lo:.3f}, {w.hi:.3f}]"


def _solved(question: str, solution: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": solution}],
            "meta": {"kind": "math"}}


def test_hand_reworded_test_items_are_removed_and_clean_rows_kept(full_index):
    """36 GSM8K test items reworded by hand (every sentence, quantities kept; tests/data), each as a row
    solved to its answer, among 400 clean rows (GSM8K-train pool questions with their worked solutions,
    the shape of the synthetic rows): >= 90% of the reworded items are removed, matched to their own
    item, and <= 2% of the clean rows. The thresholds were calibrated on GSM8K train only
    (tests/data/gsm8k_train_paraphrases.jsonl, `python -m pipeline.synth.paraphrase`)."""
    import random

    from pipeline.evals.gsm8k import train_slice as gsm8k_slice
    from pipeline.evals.gsm8k import reference_number
    from pipeline.synth.decontaminate import split_rows
    from pipeline.synth.mathgen import clean_reference

    gold = {r["id"]: reference_number(r["answer"]) for r in load_gsm8k("test")}
    reworded = [json.loads(x) for x in (DATA / "gsm8k_test_paraphrases.jsonl").read_text().splitlines()]
    assert len(reworded) >= 30 and all(p["id"] in gold for p in reworded)
    bad = [_solved(p["text"], f"Working through the steps gives {gold[p['id']]}.\n#### {gold[p['id']]}") for p in reworded]
    pool = gsm8k_slice("pool")
    clean = [_solved(r["question"], clean_reference(r["answer"])) for r in random.Random(23).sample(pool, 400)]
    kept, removed = split_rows(bad + clean, full_index)
    by_text = {r["messages"][0]["content"]: r for r in removed}
    caught = sum(by_text.get(p["text"], {}).get("matched_id") == p["id"] for p in reworded)
    clean_removed = [r for r in removed if r["messages"][0]["content"] not in {p["text"] for p in reworded}]
    assert caught >= 0.9 * len(reworded), f"reworded removed {_rate(caught, len(reworded))}"
    assert len(clean_removed) <= 0.02 * len(clean), f"clean removed {_rate(len(clean_removed), len(clean))}"
    signals = {r["match"]["kind"] for r in removed}
    assert "numbers+answer" in signals  # the signal is recorded with the item it matched
    hit = by_text[reworded[1]["text"]]
    assert hit["matched_benchmark"] == "gsm8k_test" and {"numbers", "lexical"} <= set(hit["match"])
    # the bare problem (before it is solved: no answer) is still caught most of the time
    bare = sum((m := full_index.match(p["text"])) is not None and m.item_id == p["id"] for p in reworded)
    assert bare >= 0.75 * len(reworded), f"bare reworded problems removed {_rate(bare, len(reworded))}"


def test_paraphrase_thresholds_reject_bad_settings():
    with pytest.raises(ValueError, match="both be in"):
        BenchmarkIndex(benchmark_items()[:3], 8, 13, 0.5, 0.4, 0.0)
    with pytest.raises(ValueError, match="both be in"):
        BenchmarkIndex(benchmark_items()[:3], 8, 13, 0.5, 1.5, 0.2)


REWORDED_HE0 = '''def any_pair_within(values: list, limit: float) -> bool:
    """Tell whether some two entries of the sequence sit less than `limit` apart.
    >>> any_pair_within([1.0, 2.5], 0.1)
    False
    """
    ordered = sorted(values)
    return any(b - a < limit for a, b in zip(ordered, ordered[1:]))
'''
UNRELATED = '''def count_evens(numbers: list) -> int:
    """Return how many numbers in the list are even."""
    return sum(1 for x in numbers if x % 2 == 0)
'''


def test_reworded_humaneval_task_is_removed_by_behaviour():
    """A HumanEval problem renamed, its docstring reworded, with a correct solution, passes that
    problem's tests under its entry point: removed, naming the problem; an unrelated task is kept."""
    from pipeline.sandbox import default_config
    from pipeline.synth.behaviour import BehaviourIndex

    tasks = [{"entry_point": "any_pair_within", "prompt": REWORDED_HE0.split("    ordered")[0], "solution": REWORDED_HE0},
             {"entry_point": "count_evens", "prompt": UNRELATED.split("    return")[0], "solution": UNRELATED}]
    idx = BehaviourIndex.default()
    assert len(idx.candidates(tasks[0], 3)) <= 3  # few programs run, not one per problem
    hit, miss = idx.check(tasks, default_config(), k=3)
    assert hit is not None and hit["benchmark"] == "humaneval" and hit["id"] == "HumanEval/0"
    assert hit["entry_point"] == "has_close_elements" and "HumanEval/0" in hit["candidates"]
    assert miss is None
    assert full_text_match_misses(tasks[0])


def full_text_match_misses(task: dict) -> bool:
    """The text checks alone do not catch the reworded task (so behaviour is what catches it)."""
    return index_for(compose([]).synth).match_row(_row(task["prompt"], "```python\n" + task["solution"] + "```")) is None
