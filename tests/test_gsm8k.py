"""GSM8K scoring on literal strings, lm-eval agreement, prompts, and the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.evals.gsm8k import (
    build_prompt, exemplar_answer, exemplars, extract_flexible, extract_strict, is_correct, main,
    normalize_number, score,
)

ROOT = Path(__file__).resolve().parents[1]

# (completion, strict, flexible)
EXTRACTION_CASES = [
    ("She sold 48 + 24 = 72 clips.\n#### 72", "72", "72"),
    ("#### 1,234", "1,234", "1,234"),
    ("#### -5", "-5", "-5"),
    ("#### 3.50", "3.50", "3.50"),
    ("#### 18.", "18.", "18."),
    ("First 2, then #### 7 and later #### 9", "7", "9"),
    ("#### $18", "$18", "$18"),  # a currency sign is read (lm-eval strict-match would miss it)
    ("####18", None, "18"),
    ("#### ", None, None),
    ("The answer is 42.", "42", "42."),
    ("the answer is: 17", "17", "17"),
    ("THE ANSWER IS $1,000.", "$1,000", "$1,000."),
    ("The final answer is 8", "8", "8"),
    ("The final answer is: -3.25 dollars", "-3.25", "-3.25"),
    ("So 5 apples. The answer is 6 apples, not 5", "6", "5"),
    ("We get \\boxed{12}.", "12", "12"),
    ("\\boxed{1,500} is it; check 3", "1,500", "3"),
    ("The answer is \\boxed{7}", "7", "7"),
    ("She has 3 cats and 4 dogs, so 7 pets.", None, "7"),
    ("No numbers here at all", None, None),
    ("", None, None),
    ("The answer is unknown", None, None),
    ("Total: 10 + 5 = 15. Wait...", None, "15."),
    ("It costs $5.", None, "$5."),
    ("Answer -7", None, "-7"),
    ("0.5 of 10 is 5", None, "5"),
    ("x = 100,000", None, "100,000"),
    ("The answer is 2.\n#### 3", "3", "3"),  # `####` takes precedence, as lm-eval strict-match
    ("#### 5\nThe answer is 6", "5", "6"),
    ("the answer is -$4", "-$4", "-$4"),
    ("Step 1: 9\nStep 2: 10", None, "10"),
    ("The answer is .5", ".5", ".5"),
]


@pytest.mark.parametrize("text,strict,flexible", EXTRACTION_CASES)
def test_extractions(text, strict, flexible):
    assert extract_strict(text) == strict
    assert extract_flexible(text) == flexible


def test_at_least_30_cases():
    assert len(EXTRACTION_CASES) >= 30


LM_EVAL_STRICT = r"#### (\-?[0-9\.\,]+)"  # lm-evaluation-harness gsm8k.yaml, strict-match, group_select 0


CURRENCY_AFTER_MARKER = re.compile(r"#### -?[$€£¥]")


@pytest.mark.parametrize("text", [c[0] for c in EXTRACTION_CASES if "####" in c[0]
                                  and not CURRENCY_AFTER_MARKER.search(c[0])] + [  # the currency cases: below
    "#### 1.2.3", "#### ,", "a #### b #### 4", "#### -0.5\n#### 2", "reasoning\n\n#### 10000000",
    "She earns 12 * 3 = 36 dollars.\n#### 36", "#### 1,000,000", "#### 0.25 of the cake", "#### 7 apples\n#### 8",
    "Total: 1,250.\n\n#### 1,250\n", "#### -12", "#### 3.", "#### 5$", "So the answer is 4.\n#### 40",
    "#### 2,5", "x ####  9\n#### 10",  # two spaces: lm-eval skips to the next marker, so do we
])
def test_strict_agrees_with_lm_eval_on_hash_marker(text):
    matches = re.findall(LM_EVAL_STRICT, text)
    assert extract_strict(text) == (matches[0] if matches else None)


@pytest.mark.parametrize("text,strict,value", [
    ("#### $1,000,000", "$1,000,000", "1000000"), ("#### €5", "€5", "5"), ("#### £12.50", "£12.50", "12.5"),
    ("#### ¥300", "¥300", "300"), ("#### -$5", "-$5", "-5"), ("#### $-5", "$-5", "-5"),
    ("He has $18 left.\n#### $18.00", "$18.00", "18"), ("#### $\n#### 4", "4", "4"),  # a sign alone is no number
    ("#### $ 5", None, None),
    ("The answer is €7.", "€7", "7"),
])
def test_strict_reads_a_currency_sign_after_the_marker(text, strict, value):
    assert extract_strict(text) == strict
    assert normalize_number(strict) == value


@pytest.mark.parametrize("raw,norm", [
    ("1,234", "1234"), ("$18", "18"), ("18.", "18"), ("18.0", "18"), ("18.50", "18.5"), ("-0", "0"),
    ("-3.25", "-3.25"), (".5", "0.5"), ("$1,000.", "1000"), ("abc", None), (".", None), (",", None),
    ("1.2.3", None), ("5-3", None), (None, None), ("1e3", "1000"), ("nan", None), ("inf", None),
    ("€5", "5"), ("£1,000.50", "1000.5"), ("-¥3", "-3"),
])
def test_normalize_number(raw, norm):
    assert normalize_number(raw) == norm


def test_is_correct_numeric_and_reference_forms():
    assert is_correct("18.0", "18")
    assert is_correct("$1,000", "Some reasoning <<a=b>>\n#### 1,000")
    assert is_correct("-4", -4)
    assert not is_correct("17", "#### 18")
    assert not is_correct(None, "18")
    assert not is_correct("..", "18")
    s = score("He pays 5 dollars. The answer is 5. Total 6", "#### 5")
    assert s == {"extracted_strict": "5", "extracted_flexible": "6", "correct_strict": True, "correct_flexible": False}


def test_few_shot_exemplars_come_from_train_only():
    from pipeline.evals.gsm8k import load as load_gsm8k

    train_ids = {r["id"] for r in load_gsm8k("train")}
    shots = exemplars(4, seed=3)
    assert len(shots) == 4 and all(s["id"] in train_ids for s in shots)
    assert [s["id"] for s in shots] == [s["id"] for s in exemplars(4, seed=3)]  # deterministic
    msgs = build_prompt("What is 2+2?", "Think.", shots)
    assert len(msgs) == 9 and msgs[-1] == {"role": "user", "content": "What is 2+2?\n\nThink."}
    assert all("<<" not in m["content"] for m in msgs if m["role"] == "assistant")
    assert msgs[1]["content"].endswith("#### " + shots[0]["answer"].rsplit("#### ", 1)[1])
    assert exemplar_answer("a = <<2*3=6>>6\n#### 6") == "a = 6\n#### 6"
    assert exemplars(0, 0) == [] and len(build_prompt("q", "i", [])) == 1


def _write(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def test_cli_writes_results_and_prints_summary(tmp_path, capsys):
    f = _write(tmp_path / "c.jsonl", [
        json.dumps({"completion": "so #### 72", "answer": "48+24 = <<48+24=72>>72\n#### 72", "id": "a"}),
        json.dumps({"completion": "The answer is 10.5 dollars", "answer": 10.5}),
        json.dumps({"completion": "I think 3", "answer": "4"}),
        json.dumps({"completion": "", "answer": "#### 1"}),
    ])
    assert main(["--completions", str(f)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == {"accuracy_strict": 0.5, "accuracy_flexible": 0.5, "n": 4}
    rows = [json.loads(x) for x in (tmp_path / "c.jsonl_results.jsonl").read_text().splitlines()]
    assert rows[0]["id"] == "a" and rows[0]["correct_strict"] and rows[0]["extracted_flexible"] == "72"
    assert rows[1]["extracted_strict"] == "10.5" and rows[1]["correct_flexible"] is True
    assert rows[2]["extracted_flexible"] == "3" and rows[2]["correct_flexible"] is False
    assert rows[3]["extracted_strict"] is None and rows[3]["correct_flexible"] is False


@pytest.mark.parametrize("lines,needle", [
    ([json.dumps({"completion": "#### 1", "answer": "1"}), "{not json"], ":2:"),
    ([b'{"completion": "\xff\xfe", "answer": "1"}'], ":1: not valid UTF-8"),
    ([json.dumps({"completion": 5, "answer": "1"})], "row 1: 'completion' must be a string"),
    ([json.dumps({"completion": "x"})], "row 1: 'answer'"),
    ([json.dumps({"completion": "x", "answer": "no number"})], "row 1: 'answer'"),
    (["[1, 2]"], ":1: expected a JSON object"),
])
def test_cli_bad_input_names_the_line(tmp_path, capsys, lines, needle):
    f = _write(tmp_path / "bad.jsonl", lines)
    assert main(["--completions", str(f)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "bad.jsonl_results.jsonl").exists()


def test_cli_module_entry_point(tmp_path):
    f = _write(tmp_path / "c.jsonl", [json.dumps({"completion": "#### 2", "answer": "#### 2"})])
    r = subprocess.run([sys.executable, "-m", "pipeline.evals.gsm8k", "--completions", str(f)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"accuracy_strict": 1.0, "accuracy_flexible": 1.0, "n": 1}
