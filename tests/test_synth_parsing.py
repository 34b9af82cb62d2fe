"""Pure parsing and voting rules of the synthesis verifier, on literal strings."""

from __future__ import annotations

from pipeline.synth import codegen, mathgen
from pipeline.synth.stats import agreement_histogram, distinct_n, spread

Q = "Ava has 3 boxes of 12 pencils and gives away 10 pencils to her classmates. How many pencils does she keep?"


def test_problem_parsing_keeps_the_statement_and_drops_chatter():
    assert mathgen.parse_problem(f"Sure, here it is: Problem: {Q}\n\nSolution: 36-10=26", "stop", 12, 8000) == (Q, "ok")
    assert mathgen.parse_problem(f"**New problem:** {Q} She also", "length", 12, 8000) == (Q, "ok")
    assert mathgen.parse_problem("Ava has 3 boxes of 12 pencils and gives", "length", 12, 8000) == (None, "truncated")
    assert mathgen.parse_problem("Ava has 3 boxes. That is all.", "stop", 12, 8000) == (None, "malformed")
    assert mathgen.parse_problem("How many is 3 and 4?", "stop", 12, 8000) == (None, "too_short")
    assert mathgen.parse_problem(Q.replace("3", "three").replace("12", "twelve").replace("10", "ten"),
                                 "stop", 12, 8000) == (None, "malformed")  # no digit: no computable numbers
    assert mathgen.parse_problem(Q + "\ufffd", "stop", 12, 8000) == (None, "non_utf8")
    assert mathgen.parse_problem(Q * 100, "stop", 12, 500) == (None, "huge")


def test_vote_needs_agreement_and_keeps_distinct_solutions():
    texts = ["36-10=26\n#### 26", "36 - 10 = 26\n#### 26 more text", "The answer is 26.", "#### 30"]
    v = mathgen.vote(texts, ["stop"] * 4, 0.5, 5, 8000)
    assert v["kept"] and v["majority"] == "26" and v["agreement"] == 0.75
    # "36 - 10 = 26" is the same reasoning as "36-10=26" once normalized: not a distinct solution
    assert v["correct"] == ["36-10=26\n#### 26", "The answer is 26.\n#### 26"]
    assert v["incorrect"] == ["#### 30"]
    assert mathgen.vote(["#### 1", "#### 1", "#### 2", "#### 2"], ["stop"] * 4, 0.5, 2, 8000)["reason"] == "tie"
    assert mathgen.vote(["#### 1", "#### 2", "#### 3", "#### 1"], ["stop"] * 4, 0.75, 2, 8000)["reason"] == "low_agreement"
    one = mathgen.vote(["#### 1", "no", "no", "no"], ["stop"] * 4, 0.25, 2, 8000)
    assert one["reason"] == "low_agreement"  # a single sample cannot agree with itself
    cut = mathgen.vote(["#### 7", "7 apples and then 7 more and", "#### 7"], ["stop", "length", "stop"], 0.5, 2, 8000)
    assert cut["answers"] == ["7", None, "7"] and cut["sample_reasons"][1] == "truncated"


def test_program_of_thought_answer_compare():
    assert mathgen.pot_program("```python\nprint(36 - 10)\n```") == "print(36 - 10)\n"
    assert mathgen.pot_program("x = 3") is None
    assert mathgen.pot_agrees("debug\n26.0\n", "26") and not mathgen.pot_agrees("25\n", "26")


def test_task_parsing_and_trivial_tests():
    good = ("```python\nfrom typing import List\n\ndef total(xs: List[int]) -> int:\n    \"\"\"Sum.\n    >>> total([1])\n    1\n"
            "    \"\"\"\n    return sum(xs)\n```\n```python\nassert total([1]) == 1\nassert total([]) == 0\n"
            "assert total([2, 3]) == 5\nprint('done')\n```")
    task, why = codegen.parse_task(good, "stop", 3, 8000)
    assert why == "ok" and task["entry_point"] == "total" and task["asserts"] == 3
    assert task["prompt"].startswith("from typing import List\n\n\ndef total(") and task["prompt"].rstrip().endswith('"""')
    assert "return sum(xs)" in task["solution"] and "print" not in task["tests"]
    assert len(codegen.mutant_programs(task)) == len(codegen.MUTANT_BODIES)
    assert codegen.parse_task(good.replace("assert total([2, 3]) == 5\n", ""), "stop", 3, 8000) == (None, "trivial_tests")
    assert codegen.parse_task(good.replace("assert total([]) == 0", "assert True"), "stop", 3, 8000) == (None, "trivial_tests")
    assert codegen.parse_task(good.replace('"""Sum.', '"""Sum').replace("\"\"\"\n    return", "\n    return"),
                              "stop", 3, 8000)[1] in ("syntax_error", "no_docstring")
    assert codegen.parse_task("no code here", "stop", 3, 8000) == (None, "no_code")


def test_completion_code_full_function_or_body():
    task, _ = codegen.parse_task("```python\ndef inc(x):\n    \"\"\"Add one.\"\"\"\n    return x + 1\n```\n```python\n"
                                 "assert inc(1) == 2\nassert inc(2) == 3\nassert inc(-1) == 0\n```", "stop", 3, 8000)
    full = codegen.completion_code("```python\ndef inc(x):\n    return 1 + x\n```", task)
    assert full == "def inc(x):\n    return 1 + x\n"
    body = codegen.completion_code("    return x + 1\n", task)
    assert body.startswith("def inc(x):\n    \"\"\"Add one.\"\"\"") and body.rstrip().endswith("return x + 1")


def test_diversity_measures():
    assert distinct_n(["a b c", "a b c"], 1) == 0.5
    assert spread(["a b", "a b"]) == 0.0 and spread(["a b", "c d"]) == 1.0
    assert agreement_histogram([0.5, 0.75, 0.5]) == {"0.50": 2, "0.75": 1}
