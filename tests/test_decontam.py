"""Decontamination: disguised benchmark items are caught, GSM8K train mostly survives, the CLI contract."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from pipeline.data import load_gsm8k, load_humaneval
from pipeline.synth.decontaminate import BenchmarkIndex, benchmark_items, default_index
from tests.conftest import ROOT, compose


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
    s = compose([]).synth
    return default_index(s.decontam_ngram, s.decontam_ngram_masked, s.decontam_near_dup, s.decontam_paraphrase,
                         s.decontam_paraphrase_answer)


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
