"""pipeline.report.compare: means over seeds with t-intervals, arm differences with seeds as the unit (two-way
bootstrap over seeds x the items every seed shares)."""

from __future__ import annotations

import json

import pytest
from scipy import stats as sps

from pipeline.report import compare, text as report
from pipeline import stats
from pipeline.infra.io import atomic_write_json, write_jsonl
from pipeline.lineage import Lineage, LineageError

M = "gsm8k_val.accuracy_flexible"


def make(root, name: str, outcomes: dict[int, list[int]]) -> Lineage:
    """A lineage whose gen g answered items q0.. with `outcomes[g]` (1 correct), ledger and records."""
    lin = Lineage(root, name)
    lin.init("tiny:qwen3", root / "base")
    for g, out in outcomes.items():
        gen = lin.gen(g)
        write_jsonl(gen.path / "eval" / "gsm8k_val.jsonl",
                    [{"id": f"q{i}", "metrics": {"accuracy_flexible": float(v)}} for i, v in enumerate(out)])
        lin.record(gen, status="promoted", parent=None if g == 0 else f"gen_{g - 1:03d}",
                   metrics={M: sum(out) / len(out)})
    return lin


@pytest.fixture
def study(tmp_path):
    """Arms `a` and `b` over seeds 0 and 1; b gains items a misses at gen 1."""
    root = tmp_path / "studies" / "t"
    base = [1] * 10 + [0] * 30
    lins = {("a", 0): make(root, "t-a-s0", {0: base, 1: [1] * 12 + [0] * 28}),
            ("a", 1): make(root, "t-a-s1", {0: base, 1: [1] * 10 + [0] * 30}),
            ("b", 0): make(root, "t-b-s0", {0: base, 1: [1] * 30 + [0] * 10}),
            ("b", 1): make(root, "t-b-s1", {0: base, 1: [1] * 28 + [0] * 12})}
    atomic_write_json(root / "study.json", {"study": "t", "arms": {"a": [], "b": ["x=1"]}, "seeds": [0, 1],
                                            "lineages": [{"arm": a, "seed": s, "dir": str(l.path)}
                                                         for (a, s), l in lins.items()]})
    return root, lins


def test_means_over_seeds_with_a_t_interval(study):
    root, _ = study
    data = compare.compare([root])
    assert data["interval"] == "student-t over seeds" and data["generations"] == [0, 1]
    row = next(r for r in data["means"] if r["arm"] == "a" and r["gen"] == 1 and r["metric"] == M)
    vals = [12 / 40, 10 / 40]
    assert row["values"] == vals and row["seeds"] == [0, 1] and row["n_seeds"] == 2
    half = sps.t.ppf(0.975, 1) * sps.tstd(vals) / 2 ** 0.5
    assert row["mean"] == pytest.approx(0.275) and row["lo"] == pytest.approx(0.275 - half)
    assert row["hi"] == pytest.approx(0.275 + half)
    gen0 = next(r for r in data["means"] if r["arm"] == "b" and r["gen"] == 0)
    assert gen0["lo"] == gen0["hi"] == gen0["mean"] == 0.25  # no spread over seeds


def test_difference_crosses_seeds_and_items(study):
    root, _ = study
    data = compare.compare([root])
    d = next(x for x in data["differences"] if x["gen"] == 1 and x["metric"] == M)
    assert d["arm"] == "b" and d["reference_arm"] == "a" and d["seeds"] == ["s0", "s1"]
    # 2 seeds x 40 items: a right on 22 cells, b on 58, b right wherever a is
    assert (d["n_seeds"], d["n"], d["both"], d["only_a"], d["only_b"]) == (2, 40, 22, 0, 36)
    assert d["seed_diffs"] == [18 / 40, 18 / 40]
    assert d["diff"] == pytest.approx(36 / 80) and d["lo"] > 0 and d["method"].startswith("two-way bootstrap")
    assert "only 2 seeds" in d["note"] and "low power" in d["note"]
    same = next(x for x in data["differences"] if x["gen"] == 0)
    assert same["diff"] == 0 and same["lo"] <= 0 <= same["hi"]  # no discordant cell: no spread to resample
    text = compare.render(data, "markdown")
    assert "Mean over seeds" in text and "student-t over seeds" in text and "b - a" in text
    assert "two-way bootstrap" in text and "low power" in text
    assert "## " not in text  # the report's per-lineage sections are the only headings
    assert json.loads(compare.render(data, "json"))["differences"]


def test_seeds_that_disagree_give_an_interval_over_zero_that_pooling_hides(tmp_path):
    """Seed-level differences +0.4, -0.2, +0.1 on the same 200 items: pooled as 600 independent items
    Newcombe excludes zero; with seeds as the unit the interval covers it."""
    root = tmp_path / "studies" / "d"
    ref = [1] * 100 + [0] * 100
    flips = {0: [1] * 100 + [1] * 80 + [0] * 20,  # +0.4: 80 of ref's misses right
             1: [1] * 60 + [0] * 40 + [0] * 100,  # -0.2: 40 of ref's hits wrong
             2: [1] * 100 + [1] * 20 + [0] * 80}  # +0.1
    lins = {}
    for s, out in flips.items():
        lins[("ref", s)] = make(root, f"d-ref-s{s}", {0: ref})
        lins[("arm", s)] = make(root, f"d-arm-s{s}", {0: out})
    atomic_write_json(root / "study.json", {"study": "d", "arms": {"ref": [], "arm": ["x=1"]}, "seeds": [0, 1, 2],
                                            "lineages": [{"arm": a, "seed": s, "dir": str(l.path)}
                                                         for (a, s), l in lins.items()]})
    d = compare.compare([root])["differences"][0]
    assert d["seed_diffs"] == pytest.approx([0.4, -0.2, 0.1]) and d["diff"] == pytest.approx(0.1)
    assert d["lo"] < 0 < d["hi"] and d["n_seeds"] == 3 and d["n"] == 200
    assert "only 3 seeds" in d["note"] and "low power" in d["note"]
    pooled = stats.paired_binary({f"s{s}/{i}": v for s in flips for i, v in enumerate(ref)},
                                 {f"s{s}/{i}": v for s, out in flips.items() for i, v in enumerate(out)})
    assert pooled.n == 600 and pooled.diff == pytest.approx(0.1) and pooled.lo > 0  # the old, too-narrow answer


def test_one_seed_says_no_between_seed_variance(tmp_path):
    x, y = make(tmp_path, "x", {0: [1, 0, 1, 0] * 5}), make(tmp_path, "y", {0: [1, 1, 1, 0] * 5})
    data = compare.compare([x.path, y.path])
    d = data["differences"][0]
    assert d["n_seeds"] == 1 and "no between-seed variance" in d["note"] and d["lo"] < d["diff"] == 0.25 < d["hi"]
    assert "no between-seed variance is estimated" in compare.render(data)


def test_plain_lineage_dirs_group_by_name_and_two_lone_lineages_pair(study, tmp_path):
    _, lins = study
    data = compare.compare([lins[("a", 0)].path, lins[("a", 1)].path, lins[("b", 0)].path])
    assert set(data["arms"]) == {"t-a", "t-b"} and len(data["arms"]["t-a"]) == 2
    assert {d["seeds"][0] for d in data["differences"]} == {"s0"}  # only seed 0 is in both arms
    x, y = make(tmp_path, "x", {0: [1, 0, 1, 0]}), make(tmp_path, "y", {0: [1, 1, 1, 0]})
    data = compare.compare([x.path, y.path])
    d = data["differences"][0]
    assert d["seeds"] == ["-"] and (d["only_a"], d["only_b"]) == (0, 1)
    with pytest.raises(LineageError, match="not a lineage"):
        compare.compare([tmp_path / "nothing"])


def test_report_compare_takes_a_study_and_many_lineages(study, capsys):
    root, lins = study
    assert report.main(["--compare", str(root), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.count("## ") == 4 and "Paired difference between arms" in out
    paths = [str(l.path) for l in lins.values()][:3]
    assert report.main(["--compare", *paths]) == 0
    assert capsys.readouterr().out.count("## ") == 3


def test_html_compare_shows_the_same_aggregate(study, tmp_path):
    """`--format html --compare` renders pipeline.report.compare's numbers, not an aggregation of its own."""
    root, lins = study
    out = tmp_path / "cmp.html"
    assert report.main(["--format", "html", "--compare", str(root), "-o", str(out)]) == 0
    page = out.read_text()
    data = compare.compare([root])
    d = next(x for x in data["differences"] if x["gen"] == 1 and x["metric"] == M)
    row = next(r for r in data["means"] if r["arm"] == "a" and r["gen"] == 1 and r["metric"] == M)
    assert f"{d['diff']:.4g} [{d['lo']:.4g}, {d['hi']:.4g}]" in page and "b - a" in page
    assert f"{row['mean']:.4g} [{row['lo']:.4g}, {row['hi']:.4g}]" in page
    assert page.count('class="lineage"') == 4 and "arm b, seed 1" in page  # the study's lineages side by side
