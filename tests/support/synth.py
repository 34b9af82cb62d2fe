"""The synth stage's scripted teacher: problem, solution and task scripts whose fates are known in advance.

`SynthTeacher` answers by prompt kind; the `synth_setup` fixture (conftest.py) puts one in place of the
stage context's engine.
"""

from __future__ import annotations

import re

from pipeline.engine import Output
from pipeline.evals.gsm8k import load as load_gsm8k
from pipeline.synth import codegen, mathgen
from tests.support import ScriptedEngine

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


def prompt_kind(last: str) -> str:
    """Which synthesis step a prompt belongs to, by its header."""
    return ("problems" if last.startswith(mathgen.PROBLEM_HEADER) else "solve" if last.startswith(mathgen.SOLVE_HEADER)
            else "pot" if last.startswith(mathgen.POT_HEADER) else "tasks" if last.startswith(codegen.TASK_HEADER)
            else "code" if last.startswith(codegen.SOLVE_HEADER) else "?")


class ByKind(ScriptedEngine):
    """A scripted teacher that answers by prompt kind (`prompt_kind`): `kinds` lists each call's kind,
    `self.kind` is the current one for `reply`; `fail_on` raises a simulated kill at the first call of
    that kind."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__()
        self.kinds: list[str] = []
        self.fail_on = fail_on

    def generate(self, prompts, params):
        self.kind = prompt_kind(prompts[0][-1]["content"])
        self.kinds.append(self.kind)
        if self.kind == self.fail_on:
            raise KeyboardInterrupt("simulated kill")
        return super().generate(prompts, params)


class SynthTeacher(ByKind):
    """Answers from the scripts above: problem writing, solving, program-of-thought, task writing, code."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__(fail_on)
        from pipeline.evals.humaneval import load_problems as load_humaneval

        self.tasks = task_script(load_humaneval()[0]["prompt"])
        self.problems = problem_script()

    def reply(self, messages, i, params):
        user = messages[-1]["content"]
        if self.kind == "problems":
            text, fin = self.problems[i] if i < len(self.problems) else ("junk", "stop")
            if text == "<EXEMPLAR>":
                text = user.split("Problem: ")[1].split("\n\n")[0]
            return Output([text], [len(text) // 4], [fin])
        if self.kind == "solve":
            texts = solutions_for(user.split("\n\n", 1)[1], params.n)
            return Output(texts, [10] * len(texts), ["stop"] * len(texts))
        if self.kind == "pot":
            return Output(["```python\nprint(4 * 12 - 30)\n```" if "Mia bakes 4" in user else "```python\nprint(1)\n```"],
                          [8], ["stop"])
        if self.kind == "tasks":
            text, fin = self.tasks[i] if i < len(self.tasks) else ("junk", "stop")
            return Output([text], [100], [fin])
        texts = ["```python\ndef sum_of_squares(nums):\n    return sum(n ** 2 for n in nums)\n```",
                 "    return len(nums)\n"][:params.n]
        return Output(texts, [20] * len(texts), ["stop"] * len(texts))


