"""Code synthesis: the teacher writes HumanEval-style tasks with a reference solution and assert tests.

A task is kept only when (all checks run in `pipeline.sandbox`, the evaluation's own checker: the code
in one sandbox, the teacher's tests in a sandboxed checker, only returned values crossing):
- its output parses: one function with a docstring (the entry point) and assert statements
  (`parse_task`; rejections: non_utf8, huge, truncated, no_code, syntax_error, no_function,
  no_docstring);
- the tests are non-trivial: at least `min_asserts` asserts call the entry point, and none is a
  constant (`assert True`) (`trivial_tests`);
- the reference solution passes its tests (`solution_fails`, or `timeout` for code that hangs);
- the tests discriminate: every mutant whose body is `pass`, a constant return, or returns its first
  argument fails them (`non_discriminating`).
Extra solutions come from solving the task k times; each passing, distinct one is kept (up to
`max_solutions_per_task` with the reference), failing ones become DPO "rejected" sides.

The training row is user = `user_prompt(task)` (the signature + docstring), assistant = the whole
verified function in a ```python fence.
"""

from __future__ import annotations

import ast
import random
import textwrap

from pipeline.evals import modelled_on
from pipeline.sandbox import GuardedProgram
from pipeline.synth.parsing import code_blocks, output_problem

DOMAIN = "code"  # modelled on the registered benchmark declaring this domain (pipeline.evals.modelled_on)
TASK_HEADER = "Write a new, self-contained Python programming task."
# The same wording and layout as the HumanEval chat eval (conf/eval/*.yaml `humaneval.instruction`,
# pipeline.evals.build_prompts), so code rows teach the format the successor is scored in.
SOLVE_HEADER = "Complete the following Python function. Reply with the complete function in one ```python code block."
TOPICS = (
    "string manipulation", "lists of integers", "dictionaries", "sorting", "prime numbers", "digits of a number",
    "palindromes", "counting characters", "intervals", "matrices as lists of lists", "running sums",
    "vowels and consonants", "filtering a list", "dates given as strings", "binary representations",
    "parentheses matching", "word frequencies", "geometry with integers", "sequences defined by a rule",
    "merging lists", "searching in a list", "tuples of pairs", "number bases", "sets of numbers",
)
# A hand-written format example (not a benchmark item): shows the two blocks the parser expects.
EXAMPLE = '''```python
def count_evens(numbers: list) -> int:
    """Return how many numbers in the list are even.
    >>> count_evens([1, 2, 4])
    2
    >>> count_evens([])
    0
    """
    return sum(1 for x in numbers if x % 2 == 0)
```
```python
assert count_evens([1, 2, 4]) == 2
assert count_evens([]) == 0
assert count_evens([7, 9]) == 0
assert count_evens([0, -2, 3]) == 2
```'''
MUTANT_BODIES = ("pass", "return 0", "return ''", "return []", "return True", "return False", "return {first}")


def task_prompts(n: int, seed: int, min_asserts: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        topic = rng.choice(TOPICS)
        text = (f"{TASK_HEADER} Topic: {topic}.\nFirst give one ```python block with a function: its signature, "
                "a docstring that explains the task with >>> examples, and a correct implementation. Then give a "
                f"second ```python block with at least {min_asserts + 1} assert statements that test the function.\n\n"
                f"Format example:\n{EXAMPLE}\n\nNow write a different task about {topic}.")
        out.append({"messages": [{"role": "user", "content": text}], "topic": topic})
    return out


def _calls(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name for n in ast.walk(node))


def parse_task(text: str, finish: str, min_asserts: int, max_chars: int) -> tuple[dict | None, str]:
    """(task, "ok") or (None, reason). task: entry_point, prompt, solution, tests, asserts."""
    bad = output_problem(text, finish, max_chars)
    if bad:
        return None, bad
    blocks = code_blocks(text)
    if not blocks:
        return None, "truncated" if finish == "length" else "no_code"
    src = "\n\n".join(textwrap.dedent(b) for b in blocks)
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError):
        return None, "syntax_error"
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not funcs:
        return None, "no_function"
    fn = next((f for f in funcs if ast.get_docstring(f)), None)
    if fn is None:
        return None, "no_docstring"
    imports = [ast.get_source_segment(src, n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    asserts = [n for n in tree.body if isinstance(n, ast.Assert)]
    if any(isinstance(a.test, ast.Constant) for a in asserts):
        return None, "trivial_tests"  # `assert True` / `assert 1` test nothing
    calling = [a for a in asserts if _calls(a.test, fn.name)]
    if len(calling) < min_asserts:
        return None, "trivial_tests"
    lines = src.splitlines()
    doc_end = fn.body[0].end_lineno  # the docstring expression is the body's first statement
    start = (fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno) - 1
    header = "\n".join(imports)
    prompt = (header + "\n\n\n" if header else "") + "\n".join(lines[start:doc_end]) + "\n"
    helpers = [ast.get_source_segment(src, f) for f in funcs if f is not fn]
    solution = "\n\n\n".join(x for x in [header, *helpers, "\n".join(lines[start:fn.end_lineno])] if x)
    tests = "\n".join(ast.get_source_segment(src, a) for a in calling)
    first = fn.args.args[0].arg if fn.args.args else "None"
    doc_line = lines[fn.body[0].lineno - 1]
    indent = doc_line[:len(doc_line) - len(doc_line.lstrip())] or "    "
    # What the tests may use besides the entry point: the task's imports and the reference's helpers
    # (teacher code), run in the sandboxed checker; the code under test never reaches it.
    context = "\n\n\n".join(x for x in [header, *helpers] if x)
    return {"entry_point": fn.name, "prompt": prompt, "solution": solution.strip() + "\n", "tests": tests,
            "context": context + "\n" if context else "",
            "asserts": len(calling), "first_arg": first, "indent": indent}, "ok"


def check_program(code: str, tests: str | list[str] | tuple[str, ...], entry_point: str,
                  context: str = "") -> GuardedProgram:
    """`code` checked by `tests` (the teacher's, untrusted: their checker is sandboxed too), which see
    `context` (the task's imports and helpers, `task["context"]`) and the entry point as a proxy to
    the code's sandbox: only the values it returns cross. A list of tests is judged case by case in
    one session (`SandboxResult.cases`)."""
    tests = f"{tests}\n" if isinstance(tests, str) else tuple(f"{t}\n" for t in tests)
    return GuardedProgram(f"{code.rstrip()}\n\n", entry_point, tests, context=context)


def mutant_programs(task: dict) -> list[GuardedProgram]:
    """Wrong implementations that any discriminating test set must reject."""
    out = []
    for body in MUTANT_BODIES:
        stmt = body.format(first=task["first_arg"])
        out.append(check_program(task["prompt"].rstrip() + "\n" + task.get("indent", "    ") + stmt, task["tests"],
                                 task["entry_point"], task.get("context", "")))
    return out


def user_prompt(task: dict) -> str:
    return f"{SOLVE_HEADER}\n\n```python\n{task['prompt']}```"


def solve_prompts(tasks: list[dict]) -> list[list]:
    return [[{"role": "user", "content": user_prompt(t)}] for t in tasks]


def completion_code(text: str, task: dict) -> str | None:
    """The whole function a sampled completion amounts to, or None. Completions go through the
    code eval's own `sanitize` (fences stripped; a restated function wins over the prompt's), the
    checker of the benchmark this domain is modelled on."""
    comp = modelled_on(DOMAIN).checker.sanitize(text, {"entry_point": task["entry_point"]})
    if not comp.strip():
        return None
    if comp.startswith("    pass\n\n"):  # the sample restates the whole function
        header = "\n".join(ln for ln in task["prompt"].splitlines() if ln.startswith(("import ", "from ")))
        return (header + "\n\n\n" if header else "") + textwrap.dedent(comp[len("    pass\n\n"):]).strip() + "\n"
    return task["prompt"] + comp.rstrip() + "\n"


def assistant_text(code: str) -> str:
    return f"```python\n{code.strip()}\n```"
