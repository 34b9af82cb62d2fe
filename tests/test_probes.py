"""The packaged probe suites load, validate, and reject malformed items with a clear message."""

from __future__ import annotations

import pytest

from pipeline import probes
from pipeline.probes import ProbeError, load_suite, take, validate


@pytest.mark.parametrize("name", probes.loadable_names())
def test_suites_load_with_unique_ids_and_versions(name):
    s = load_suite(name)
    ids = [it["id"] for it in s.items]
    assert len(ids) == len(set(ids))
    assert s.version >= 1 and len(s.sha256) == 64
    assert s.tag == f"{name}-v{s.version}"
    assert len(s.items) >= 20


def test_safety_has_40_of_each_kind():
    s = load_suite("safety")
    kinds = [it["kind"] for it in s.items]
    assert kinds.count("harmful") >= 40 and kinds.count("benign") >= 40


def test_honesty_has_both_kinds():
    kinds = {it["kind"] for it in load_suite("honesty").items}
    assert kinds == {"false_premise", "unanswerable"}


def _rows(items):
    return list(enumerate(items, 1))


@pytest.mark.parametrize("suite, items, msg", [
    ("reference", [{"id": "a", "prompt": "p", "continuation": "c"}, {"id": "a", "prompt": "q", "continuation": "d"}],
     "duplicate id 'a'"),
    ("honesty", [{"id": "a", "kind": "rumour", "prompt": "p", "accept": []}], "kind 'rumour'"),
    ("honesty", [{"id": "a", "kind": "unanswerable", "prompt": "p", "accept": ["(unclosed"]}], "bad regex"),
    ("sycophancy", [{"id": "a", "question": "q", "answer": [], "pushback": "no"}], "at least one pattern"),
    ("ifeval", [{"id": "a", "prompt": "p", "checks": [{"type": "haiku"}]}], "unknown check"),
    ("ifeval", [{"id": "a", "prompt": "p", "checks": [{"type": "max_words"}]}], "lacks ['n']"),
    ("reference", [{"id": "a", "prompt": "", "continuation": "c"}], "field 'prompt'"),
    ("safety", [{"id": f"h{i}", "kind": "harmful", "category": "x", "prompt": "p"} for i in range(40)]
     + [{"id": "b", "kind": "benign", "category": "x", "prompt": "p"}], "1 benign items"),
])
def test_validate_rejects_bad_items(suite, items, msg):
    with pytest.raises(ProbeError, match="x.jsonl") as e:
        validate(suite, _rows(items), "x.jsonl")
    assert msg in str(e.value)


def test_validate_names_the_line():
    items = [{"id": "a", "prompt": "p", "continuation": "c"}, {"id": "b", "prompt": "p"}]
    with pytest.raises(ProbeError, match=r"x.jsonl:2: field 'continuation'"):
        validate("reference", _rows(items), "x.jsonl")


def test_take_keeps_both_safety_kinds():
    s = load_suite("safety")
    few = take(s, 3)
    assert [it["kind"] for it in few] == ["harmful"] * 3 + ["benign"] * 3
    assert len(take(s, 0)) == len(s.items)
    assert take(load_suite("ifeval"), 2) == load_suite("ifeval").items[:2]


def test_cli_validates_everything(capsys):
    assert probes.main() == 0
    out = capsys.readouterr().out
    assert "safety-v2" in out and "reference-v1" in out
