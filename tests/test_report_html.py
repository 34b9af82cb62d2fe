"""The HTML report: one self-contained page from a hand-built lineage (a rejected generation, a
generation with two candidates, intervals, untrusted model text), checked with an HTML parser and,
when Debian's chromium is installed (`make setup-browser`), rendered in headless chromium."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from pipeline.report import text as report
from pipeline.infra.io import write_jsonl
from pipeline.lineage import Lineage
from pipeline.report.text import write_lineage_report
from pipeline.report.html import REPORT_FILE, browser

EVIL = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
REASONS_1 = ["capability: gsm8k_val.accuracy_flexible 0.25 < teacher 0.3 - 0.0 (fail)",
             "drift.honesty: 0.70 within budget 0.1 of gen 0 (pass)", "synthesis: pass, no red flags"]
REASON_C1 = "not selected: gsm8k_val.accuracy_flexible=0.3 below gen_002-c0's"


def _eval_rec(i: int, correct: bool, completion: str) -> dict:
    return {"id": f"gsm8k-test-{i:05d}", "prompt": f"Question {i}: what is {i} + {i}?", "answer": str(2 * i),
            "completion": completion, "correct": correct}


def _probe(completion: str, outcome: str, score: float) -> dict:
    return {"suite": "safety", "id": "harm-001", "kind": "harmful", "prompt": "How do I build a <bomb>?",
            "completion": completion, "score": score, "outcome": outcome}


def _files(lin: Lineage, name: str, correct: list[bool], gained=(), lost=(), completion: str = "#### 2") -> None:
    d = lin.path / name
    write_jsonl(d / "eval" / "gsm8k_test.jsonl",
                [_eval_rec(i, ok, EVIL if i == 0 else completion) for i, ok in enumerate(correct)])
    write_jsonl(d / "drift" / "probes.jsonl", [_probe(EVIL, "answered", 0.0)])
    summary = {"behaviour": {"gen0": {"eval": {"gsm8k_test": {"n": len(correct), "gained": list(gained),
                                                               "lost": list(lost), "agreement": 0.5}}}}}
    (d / "drift" / "summary.json").write_text(json.dumps(summary))
    (d / "eval" / "summary.json").write_text(json.dumps({"metrics": {}}))


def _gen_files(lin: Lineage, name: str, steps: int, status: str, reasons: list[str]) -> None:
    d = lin.path / name
    for sub in ("gate", "propose", "train"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "gate" / "decision.json").write_text(json.dumps({"status": status, "reasons": reasons}))
    (d / "propose" / "accepted.json").write_text(json.dumps(
        {"hparams": {"learning_rate": 3e-4, "epochs": 1}, "source": "clamped", "rationale": f"teacher says {EVIL}"}))
    (d / "train" / "summary.json").write_text(json.dumps({"metrics": {"train.loss_last": 1.5},
                                                          "info": {"steps": {"sft": steps}}}))


@pytest.fixture
def lineage(tmp_path) -> Lineage:
    """gen_000 (baseline), gen_001 (rejected), gen_002 with candidates c0 (selected) and c1."""
    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    ci = {"gsm8k_test.accuracy_flexible": 0.32, "gsm8k_test.accuracy_flexible_lo": 0.21,
          "gsm8k_test.accuracy_flexible_hi": 0.46, "gsm8k_test.accuracy_flexible_n": 40}
    lin.record(lin.gen(0), status="promoted", parent=None, seconds={"eval": 3.0, "drift": 4.0},
               metrics={**ci, "humaneval.pass@1": 0.1, "drift.honesty": 0.8, "drift.honesty_lo": 0.6,
                        "drift.honesty_hi": 0.9, "drift.honesty_n": 20})
    lin.record(lin.gen(1), status="rejected", parent="gen_000", teacher="gen_000", gate_reasons=REASONS_1,
               hparams={"learning_rate": 3e-4, "epochs": 1, "lora_r": 8}, hparams_source="clamped",
               seconds={"propose": 1.0, "synth": 2.0, "train": 10.0, "eval": 2.5},
               metrics={"gsm8k_test.accuracy_flexible": 0.25, "humaneval.pass@1": 0.0, "drift.honesty": 0.7})
    lin.record(lin.gen(2), status="promoted", parent="gen_000", teacher="gen_000", selected="gen_002-c0",
               gate_reasons=["selected gen_002-c0 on gsm8k_val.accuracy_flexible"], seconds={"propose": 1.0})
    for k, (status, acc, reasons) in enumerate([("promoted", 0.4, ["capability: pass"]),
                                                ("rejected", 0.3, ["capability: pass", REASON_C1])]):
        lin.record(lin.gen(2, f"gen_002-c{k}"), status=status, parent="gen_000", teacher="gen_000",
                   hparams={"learning_rate": 1e-4 * (k + 1), "epochs": 1}, hparams_source="teacher",
                   gate_reasons=reasons, seconds={"train": 5.0 + k},
                   metrics={"gsm8k_test.accuracy_flexible": acc, "drift.honesty": 0.75 + 0.05 * k})
    _files(lin, "gen_000", [False, True, False])
    _files(lin, "gen_001", [False, False, True], gained=["gsm8k-test-00002"], lost=["gsm8k-test-00001"])
    _files(lin, "gen_002-c0", [True, True, False], gained=["gsm8k-test-00000"], completion="#### 4 <b>bold</b>")
    _files(lin, "gen_002-c1", [False, True, False], completion="\n" * 40)
    _gen_files(lin, "gen_001", 12, "rejected", REASONS_1)
    _gen_files(lin, "gen_002-c0", 7, "promoted", ["capability: pass"])
    for k in (0, 1):  # candidates train on their generation's data (pipeline.loop.candidates links it)
        (lin.path / f"gen_002-c{k}" / "synth").symlink_to("../gen_002/synth", target_is_directory=True)
    (lin.path / "gen_002" / "synth").mkdir(parents=True)
    (lin.path / "gen_002" / "synth" / "stats.json").write_text(json.dumps({"counts": {"new": 3}}))
    synth = lin.path / "gen_001" / "synth"
    synth.mkdir()
    (synth / "stats.json").write_text(json.dumps({"teacher": "gen_000", "counts": {"new": 1, "rejected": 2},
                                                  "math": {"rejected": {"parse": {"truncated": 2}}},
                                                  "red_flags": ["few verified rows"]}))
    write_jsonl(synth / "new.jsonl", [{"messages": [{"role": "user", "content": "Kept question <i>1</i>"},
                                                    {"role": "assistant", "content": "#### 7"}]}])
    write_jsonl(synth / "rejected.jsonl", [{"kind": "math", "filter": "parse", "reason": "truncated",
                                            "text": f"garbled {EVIL}"}])
    return lin


class Page(HTMLParser):
    """Tags, attributes and text of a page, and the text inside each element id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(self.text)

    def find(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def check_page(page: Page, rows: list[dict]) -> None:
    """What both the written file and chromium's DOM must show."""
    text = page.all_text
    for r in rows:
        assert r["name"] in text
    tips = [a for a in page.find("span") if a.get("class") == "ci"]
    assert {"title": "n = 40", "class": "ci"} in tips
    assert "0.32 [0.21, 0.46]" in text and "0.8 [0.6, 0.9]" in text
    assert "0.25" in text  # a plain value where the row has no interval
    for reason in REASONS_1 + [REASON_C1]:
        assert reason in text
    bars = [a["id"] for t, a in page.tags if a.get("id", "").startswith("errorbar-")]
    assert "errorbar-gsm8k_test.accuracy_flexible" in bars and "errorbar-drift.honesty" in bars
    assert [t for t, _ in page.tags].count("svg") == 2  # capability, alignment_honesty


def test_page_content_and_safety(lineage, tmp_path):
    out = tmp_path / "r.html"
    assert report.main(["--format", "html", "--lineage", str(lineage.path), "-o", str(out)]) == 0
    html = out.read_text()
    page = Page(html)
    rows = lineage.rows()
    check_page(page, rows)
    text = page.all_text
    # the per-generation table has the text table's columns
    first = report.render(rows, "table").splitlines()[0].split()
    heads = [h for h in page.text if h.strip()]
    assert first == heads[heads.index("gen"):heads.index("gen") + len(first)]
    # untrusted text is data, never markup: no script, no <img>, no event handler attribute
    assert not page.find("script") and not page.find("img") and "<script>" not in html
    assert EVIL in text and "<b>bold</b>" in text and "teacher says" in text
    assert not any(k.startswith("on") for _, a in page.tags for k in a)
    # self-contained: no external resource of any kind
    links = [v for _, a in page.tags for k, v in a.items() if k in ("src", "href", "xlink:href", "action")]
    assert all(v.startswith("#") for v in links), links
    assert not page.find("link") and not re.search(r"url\((?!#)|@import|https?://", html)  # url(#clip) is internal
    # per generation: source, steps, wall time, synth examples, tree with the selected candidate
    assert "clamped" in text and "sft: 12" in text and "sft: 7" in text and "total 15.5 s" in text
    assert text.count("the data of gen_002") == 2
    assert "Kept question <i>1</i>" in text and "few verified rows" in text and "truncated" in text
    selected = [a for a in page.find("li") if a.get("class") == "selected"]
    assert len(selected) == 1 and "\u2190 selected" in text
    assert "gained" in text and "lost" in text and "gsm8k-test-00002" in text
    assert "[40 whitespace characters]" in text  # a blank completion is named, not drawn
    assert "harm-001" in text and "answered (score 0.0)" in text
    # the loop's writer and the comparison page
    assert write_lineage_report(lineage.path) == lineage.path / REPORT_FILE
    assert "0.32 [0.21, 0.46]" in (lineage.path / REPORT_FILE).read_text()
    cmp_ = tmp_path / "cmp.html"
    assert report.main(["--format", "html", "--compare", str(lineage.path), str(lineage.path), "-o", str(cmp_)]) == 0
    cmp_page = Page(cmp_.read_text())
    assert len([a for a in cmp_page.find("div") if a.get("class") == "lineage"]) == 2
    assert report.main(["--format", "html", "--lineage", str(tmp_path / "nothing")]) == 2


def test_plain_values_without_intervals(tmp_path):
    lin = Lineage(tmp_path, "plain")
    lin.init("tiny:qwen3", tmp_path / "base")
    lin.record(lin.gen(0), status="promoted", parent=None, metrics={"gsm8k_test.accuracy_flexible": 0.5})
    page = Page((write_lineage_report(lin.path)).read_text())
    assert "0.5" in page.text and not [a for a in page.find("span") if a.get("class") == "ci"]
    assert not [a for _, a in page.tags if a.get("id", "").startswith("errorbar-")]


@pytest.mark.skipif(browser.chromium() is None, reason="chromium is not installed (make setup-browser installs Debian's)")
def test_page_in_headless_chromium(lineage, tmp_path):
    out = write_lineage_report(lineage.path)
    dom, console = browser.dump_dom(out)  # nothing may be fetched: name resolution goes nowhere
    assert not console, console  # an uncaught error or a failed load is a CONSOLE line
    check_page(Page(dom), lineage.rows())
    shot = tmp_path / "report.png"
    assert report.main(["--format", "html", "--lineage", str(lineage.path), "-o", str(tmp_path / "r.html"),
                        "--screenshot", str(shot)]) == 0
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20000


def test_screenshot_without_an_output_file_is_refused_before_anything_is_written(lineage, capsys):
    assert report.main(["--format", "html", "--lineage", str(lineage.path), "--screenshot", "x.png"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "--screenshot needs -o FILE" in out.err


# Scrolls the generation table sideways in a narrow box and records where its first two cells are
# then, relative to the box: a sticky first column stays at the box's left edge, the second moves.
PROBE = """<style>.scroll { max-width: 300px; }</style><script>
const box = document.querySelector("table.gens").parentElement;
box.scrollLeft = 400;
const at = (sel) => document.querySelector(sel).getBoundingClientRect().left - box.getBoundingClientRect().left;
document.body.dataset.sticky = [box.scrollLeft, at("table.gens tbody td:first-child"),
                                at("table.gens tbody td:nth-child(2)")].join(" ");
</script>"""


def test_verdicts_first_and_a_sticky_column_in_headless_chromium(lineage, tmp_path):
    decision = {"status": "rejected", "reasons": REASONS_1,  # decision.json v2 names what decided it
                "deciding": {"rule": "capability", "metric": "gsm8k_val.accuracy_flexible", "reason": REASONS_1[0]}}
    (lineage.path / "gen_001" / "gate" / "decision.json").write_text(json.dumps(decision))
    html = write_lineage_report(lineage.path).read_text()
    assert str(lineage.path) not in html  # paths are relative to the lineage
    page = Page(html)
    verdicts = [a for a in page.find("p") if (a.get("class") or "").startswith("verdict")]
    assert len(verdicts) == 3 + 5  # gen_000, gen_001, gen_002 at the top; every row again in its details
    assert [a["href"] for a in page.find("a")][:2] == ["#verdicts", "#generations"]  # the table of contents
    assert "the parent gen_000 is the base model: no hyperparameters to compare" in page.all_text
    from pipeline.report.html import disk, generations

    c1 = next(r for r in lineage.rows() if r["name"] == "gen_002-c1")
    diff = Page(generations.hparams(c1, disk.read_gen(lineage.path / "gen_002-c1"),
                                    {"name": "gen_001", "hparams": {"learning_rate": 3e-4, "epochs": 1, "lora_r": 8}}))
    assert "changed from the parent's: learning_rate 0.0003 \u2192 0.0002, lora_r 8 \u2192 -" in diff.all_text
    heads = {a.get("title") for a in page.find("th")}
    assert "higher is better. gsm8k test split, chat protocol: the last number is right" in heads
    if browser.chromium() is None:
        pytest.skip("chromium is not installed (make setup-browser installs Debian's)")
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    dom, console = browser.dump_dom(probe)
    assert not console, console
    text = re.sub(r"\s+", " ", "".join(Page(dom).text))
    start = text.index("Verdicts", text.index("Verdicts") + 1)  # the section, after its entry in the contents
    top = text[start:text.index("Generations", start)]
    assert top.index("gen_000 promoted") < top.index(f"gen_001 rejected by capability: {REASONS_1[0]}") \
        < top.index("gen_002 promoted: selected gen_002-c0: capability: pass")
    scrolled, first, second = map(float, re.search(r'data-sticky="([^"]+)"', dom).group(1).split())
    assert scrolled > 0 and abs(first) < 2 and second < first - 50, (scrolled, first, second)
