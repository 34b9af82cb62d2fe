"""pipeline.stats on literal inputs: reference values (statsmodels, scipy, published examples),
properties, a seeded coverage simulation, the gate's decide(), power formulas and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest, norm
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from pipeline.stats import (
    Interval, Paired, StatsError, bootstrap_mean, decide, interval, items_needed, min_detectable,
    newcombe_paired, paired_binary, paired_continuous, project, ratio_bootstrap, wilson,
)
from pipeline.stats.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def outcomes(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[int], list[int]]:
    """Aligned 0/1 lists with exactly these paired counts."""
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return a, b


# --- one measurement ---------------------------------------------------------------------------

@pytest.mark.parametrize("k,n,alpha", [(0, 10, 0.05), (3, 10, 0.05), (10, 10, 0.05), (37, 50, 0.1), (612, 1319, 0.01)])
def test_wilson_equals_statsmodels(k, n, alpha):
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    iv = wilson(k, n, alpha)
    assert (iv.estimate, iv.n, iv.method, iv.alpha) == (k / n, n, "wilson", alpha)
    assert iv.lo == pytest.approx(max(0.0, lo), abs=1e-12) and iv.hi == pytest.approx(min(1.0, hi), abs=1e-12)
    assert 0.0 <= iv.lo <= iv.estimate <= iv.hi <= 1.0


def test_wilson_edges_and_bad_input():
    assert wilson(0, 0) == Interval(None, None, None, 0, "wilson", 0.05)
    assert wilson(0, 5).lo == 0.0 and wilson(5, 5).hi == 1.0
    for k, n in ((6, 5), (-1, 5), (1, -5), (1.5, 5), (True, 5)):
        with pytest.raises(StatsError):
            wilson(k, n)
    with pytest.raises(StatsError, match="alpha"):
        wilson(1, 5, alpha=1.5)


def test_bootstrap_mean_is_seeded_and_sane():
    xs = [0.1, 0.4, 0.35, 0.8, 0.05, 0.6, 0.3, 0.9, 0.2, 0.45]
    iv = bootstrap_mean(xs, seed=3)
    assert iv == bootstrap_mean(xs, seed=3)  # deterministic
    assert iv.method == "bootstrap" and iv.n == 10
    assert iv.estimate == pytest.approx(np.mean(xs))
    assert min(xs) <= iv.lo < iv.estimate < iv.hi <= max(xs)
    # roughly the normal-theory width for a mean of 10 values
    se = np.std(xs, ddof=1) / math.sqrt(len(xs))
    assert 0.6 < (iv.hi - iv.lo) / (2 * 1.96 * se) < 1.3
    assert bootstrap_mean([]).estimate is None
    one = bootstrap_mean([0.7])
    assert (one.estimate, one.lo, one.hi) == (0.7, None, None)
    assert bootstrap_mean([2.0, 2.0, 2.0]).as_dict() == {
        "estimate": 2.0, "lo": 2.0, "hi": 2.0, "n": 3, "method": "bootstrap", "alpha": 0.05}
    with pytest.raises(StatsError, match="NaN"):
        bootstrap_mean([0.1, float("nan")])
    with pytest.raises(StatsError, match="number"):
        bootstrap_mean([0.1, "x"])


def test_interval_picks_wilson_for_outcomes():
    assert interval([True, False, True, True]) == wilson(3, 4)
    assert interval([1.0, 0.0, 0.0]) == wilson(1, 3)
    assert interval([0.5, 1.0, 0.0]).method == "bootstrap"


# --- paired binary -----------------------------------------------------------------------------

@pytest.mark.parametrize("counts", [(40, 3, 9, 48), (10, 0, 0, 5), (5, 1, 0, 2), (100, 30, 12, 58), (0, 7, 2, 0)])
def test_mcnemar_p_equals_statsmodels_and_binomtest(counts):
    both, only_a, only_b, neither = counts
    p = paired_binary(*outcomes(*counts))
    ref = mcnemar([[both, only_a], [only_b, neither]], exact=True).pvalue
    assert p.p_value == pytest.approx(min(1.0, ref), abs=1e-12)
    if only_a + only_b:
        assert p.p_value == pytest.approx(binomtest(only_b, only_a + only_b, 0.5).pvalue, abs=1e-12)
    else:
        assert p.p_value == 1.0
    assert (p.both, p.only_a, p.only_b, p.neither, p.n) == (*counts, sum(counts))
    assert (p.method, p.test) == ("newcombe-paired-wilson", "mcnemar-exact")


def test_newcombe_matches_published_examples():
    # Newcombe (1998), Table II example (a): 36 both, 12 first only, 2 second only, 0 neither;
    # method 10 gives 0.0569 to 0.3404 for p1 - p2. Here b plays "first": only_b = 12, only_a = 2.
    lo, hi = newcombe_paired(both=36, only_a=2, only_b=12, neither=0)
    assert (round(lo, 4), round(hi, 4)) == (0.0569, 0.3404)
    # Fagerland, Lydersen & Laake (2014/2017), Cavo et al. data (59, 6, 16, 80): Newcombe
    # square-and-add -0.0621 (95% CI -0.1186 to -0.0046).
    p = paired_binary(*outcomes(both=59, only_a=16, only_b=6, neither=80))
    assert (round(p.diff, 4), round(p.lo, 4), round(p.hi, 4)) == (-0.0621, -0.1186, -0.0046)


def test_newcombe_properties():
    for counts in [(40, 3, 9, 48), (0, 0, 0, 7), (7, 0, 0, 0), (0, 20, 0, 0), (0, 0, 20, 0), (3, 2, 2, 3)]:
        p = paired_binary(*outcomes(*counts))
        assert -1.0 <= p.lo <= p.diff <= p.hi <= 1.0
    # Strongly correlated outcomes: the paired interval is much narrower than treating the two
    # measurements as independent samples (statsmodels' unpaired Newcombe interval).
    both, only_a, only_b, neither = 60, 4, 10, 26
    n = both + only_a + only_b + neither
    p = paired_binary(*outcomes(both, only_a, only_b, neither))
    ulo, uhi = confint_proportions_2indep(both + only_b, n, both + only_a, n, method="newcomb")
    assert p.hi - p.lo < 0.7 * (uhi - ulo)
    assert p.diff == pytest.approx((only_b - only_a) / n) and p.a == 0.64 and p.b == 0.70
    assert p.discordance == pytest.approx(0.14)


def test_newcombe_coverage_on_simulated_pairs():
    # 500 paired datasets of n = 100 with P(both, only_a, only_b, neither) fixed: true diff 0.05.
    probs = np.array([0.55, 0.05, 0.10, 0.30])
    truth = probs[2] - probs[1]
    rng = np.random.default_rng(12345)
    hits = 0
    for both, only_a, only_b, neither in rng.multinomial(100, probs, size=500):
        lo, hi = newcombe_paired(int(both), int(only_a), int(only_b), int(neither))
        hits += lo <= truth <= hi
    assert 0.92 <= hits / 500 <= 0.98


def test_paired_binary_matches_by_id_and_rejects_mismatch():
    a = {"q1": True, "q2": False, "q3": True}
    b = {"q3": True, "q2": True, "q1": True}  # order does not matter
    p = paired_binary(a, b)
    assert (p.n, p.only_b, p.diff) == (3, 1, pytest.approx(1 / 3))
    with pytest.raises(StatsError, match=r"only in a: 'q3'.*only in b: 'q4'"):
        paired_binary(a, {"q1": True, "q2": True, "q4": False})
    with pytest.raises(StatsError, match="aligned"):
        paired_binary([1, 0], [1, 0, 1])
    with pytest.raises(StatsError, match="0/1"):
        paired_binary([1, 0], [1, 0.5])
    with pytest.raises(StatsError, match="both be dicts"):
        paired_binary({"q1": 1}, [1])
    empty = paired_binary([], [])
    assert empty.n == 0 and empty.diff is None and decide(empty, 0.05) == "inconclusive"


# --- paired continuous -------------------------------------------------------------------------

def test_paired_continuous_interval_and_exact_sign_flip():
    a = [0.20, 0.50, 0.10, 0.70, 0.40]
    b = [0.30, 0.55, 0.30, 0.75, 0.45]  # b higher on every item
    p = paired_continuous(a, b, seed=1)
    assert isinstance(p, Paired) and p == paired_continuous(a, b, seed=1)
    assert p.diff == pytest.approx(0.09) and 0 < p.lo <= p.diff <= p.hi
    # 2^5 = 32 sign patterns <= n_boot, so the test is exact: only all-plus and all-minus are as extreme.
    assert p.p_value == pytest.approx(2 / 32)
    assert (p.method, p.test, p.both) == ("paired-bootstrap-percentile", "sign-flip-permutation", None)
    same = paired_continuous(a, a)
    assert (same.diff, same.lo, same.hi, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    one = paired_continuous([0.1], [0.3])
    assert one.diff == pytest.approx(0.2) and (one.lo, one.hi, one.p_value) == (None, None, None)


def test_paired_bootstrap_coverage_on_simulated_differences():
    # Resampling items of (a, b) together is resampling their differences, so the interval of
    # paired_continuous is bootstrap_mean of b - a. Percentile intervals run a little short of
    # nominal at n = 100 (about 0.93-0.95 here), hence the band.
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (300, 100))
    b = a + 0.05 + rng.normal(0, 0.2, (300, 100))
    assert paired_continuous(list(a[0]), list(b[0]), n_boot=500, seed=1).lo == \
        pytest.approx(bootstrap_mean(list(b[0] - a[0]), n_boot=500, seed=1).lo, abs=1e-12)
    hits = 0
    for d in b - a:
        iv = bootstrap_mean(d, n_boot=500, seed=1)
        hits += iv.lo <= 0.05 <= iv.hi
    assert 0.90 <= hits / 300 <= 0.98


def test_paired_continuous_sees_a_shift_hidden_by_item_spread():
    rng = np.random.default_rng(7)
    a = rng.uniform(0, 10, 200)  # items differ a lot ...
    b = a + 0.1 + rng.normal(0, 0.05, 200)  # ... but b is consistently 0.1 higher
    p = paired_continuous(list(a), list(b), n_boot=1000)
    assert 0.08 < p.lo < 0.1 < p.hi < 0.12 and p.p_value < 0.01


# --- decide ------------------------------------------------------------------------------------

def test_decide_three_ways():
    regression = paired_binary(*outcomes(both=50, only_a=30, only_b=0, neither=20))  # 0.80 -> 0.50
    gain = paired_binary(*outcomes(both=50, only_a=0, only_b=30, neither=20))  # 0.50 -> 0.80
    # One item net (11 gained, 10 lost, a typical churn between two checkpoints): the items cannot tell.
    one_item = paired_binary(*outcomes(both=55, only_a=10, only_b=11, neither=24))
    assert decide(regression, margin=0.02) == "fail"
    assert decide(gain, margin=0.02) == "pass"
    assert decide(gain, margin=0.02, require_improvement=True) == "pass"
    assert decide(one_item, margin=0.02) == "inconclusive"
    assert decide(one_item, margin=0.02, require_improvement=True) == "inconclusive"
    # Two runs that agree on all items but one pin the difference down to about +-2 points.
    near_identical = paired_binary(*outcomes(both=60, only_a=0, only_b=1, neither=39))
    assert decide(near_identical, margin=0.02) == "pass"
    assert decide(near_identical, margin=0.01) == "inconclusive"
    # A lower-is-better metric: a big rise is a regression.
    assert decide(gain, margin=0.02, higher_is_better=False) == "fail"
    assert decide(regression, margin=0.02, higher_is_better=False) == "pass"
    # A generous margin tolerates a small loss the interval pins down.
    small_loss = paired_binary(*outcomes(both=900, only_a=20, only_b=0, neither=80))  # -0.02
    assert small_loss.hi < 0
    assert decide(small_loss, margin=0.05) == "pass"
    assert decide(small_loss, margin=0.05, require_improvement=True) == "inconclusive"
    assert decide(small_loss, margin=0.001) == "fail"
    with pytest.raises(StatsError, match="margin"):
        decide(gain, margin=-0.1)


# --- power -------------------------------------------------------------------------------------

def test_items_needed_hand_calculation():
    # Connor (1987): discordant rate 0.2, difference 0.05, alpha 0.05, power 0.8:
    # (1.959964 * sqrt(0.2) + 0.841621 * sqrt(0.2 - 0.0025))^2 / 0.0025 = 625.55 -> 626 items.
    za, zb = norm.ppf(0.975), norm.ppf(0.8)
    hand = (za * math.sqrt(0.2) + zb * math.sqrt(0.1975)) ** 2 / 0.0025
    assert hand == pytest.approx(625.55, abs=0.01)
    assert items_needed(0.05, 0.2) == 626
    # Unpaired, baseline 0.5, +0.1: (z_a sqrt(2 * 0.55 * 0.45) + z_b sqrt(0.25 + 0.24))^2 / 0.01
    hand = (za * math.sqrt(2 * 0.55 * 0.45) + zb * math.sqrt(0.5 * 0.5 + 0.6 * 0.4)) ** 2 / 0.01
    assert items_needed(0.1, 0.5, paired=False) == math.ceil(hand) == 388


def test_items_needed_is_monotone():
    margins = [0.01, 0.02, 0.03, 0.05, 0.1]
    ns = [items_needed(m, 0.2) for m in margins]
    assert ns == sorted(ns, reverse=True) and len(set(ns)) == len(ns)
    assert items_needed(0.03, 0.1) < items_needed(0.03, 0.2) < items_needed(0.03, 0.4)  # more disagreement, more items
    assert items_needed(0.03, 0.2, power=0.9) > items_needed(0.03, 0.2, power=0.8)
    assert items_needed(0.03, 0.2, alpha=0.01) > items_needed(0.03, 0.2, alpha=0.05)
    # pairing pays: 15% discordance needs far fewer items than two independent samples at 60%
    assert items_needed(0.03, 0.15) < items_needed(0.03, 0.6, paired=False) / 2
    with pytest.raises(StatsError, match="exceeds the discordant rate"):
        items_needed(0.3, 0.1)
    with pytest.raises(StatsError, match="margin"):
        items_needed(0.0, 0.1)
    with pytest.raises(StatsError, match="not a rate"):
        items_needed(0.6, 0.5, paired=False)


def test_min_detectable_inverts_items_needed():
    for rate, paired in ((0.15, True), (0.3, True), (0.6, False), (0.2, False)):
        for n in (164, 500, 1319):
            d = min_detectable(n, rate, paired=paired)
            assert d is not None and 0 < d < 1
            assert items_needed(d * 1.01, rate, paired=paired) <= n < items_needed(d * 0.99, rate, paired=paired)
    assert min_detectable(500, 0.15) < min_detectable(100, 0.15)
    assert min_detectable(5, 0.1) is None  # too few items to resolve even the largest difference
    with pytest.raises(StatsError, match="positive integer"):
        min_detectable(0, 0.1)


# --- retention ---------------------------------------------------------------------------------

def test_ratio_bootstrap_and_projection():
    ref = {f"q{i}": v for i, v in enumerate([1, 1, 1, 1, 0, 1, 1, 1, 1, 1] * 5)}
    cur = {k: (0 if k in ("q0", "q11") else v) for k, v in ref.items()}
    r = ratio_bootstrap(ref, cur, seed=2)
    assert r.estimate == pytest.approx(43 / 45) and r.n == 50 and r.method == "paired-bootstrap-ratio"
    assert r.lo < r.estimate <= r.hi <= 1.0  # cur never beats ref on an item
    assert r == ratio_bootstrap(ref, cur, seed=2)
    proj = project(r)
    assert sorted(proj) == [10, 50, 500]
    assert proj[50].estimate == pytest.approx(r.estimate ** 50)
    assert (proj[50].lo, proj[50].hi) == (pytest.approx(r.lo ** 50), pytest.approx(r.hi ** 50))
    assert proj[10].lo > proj[500].lo
    assert project(r, horizons=(3,))[3].method == "paired-bootstrap-ratio^3"


def test_ratio_bootstrap_zero_denominators():
    nothing = ratio_bootstrap([0, 0, 0], [1, 0, 0])
    assert (nothing.estimate, nothing.lo, nothing.hi) == (None, None, None)
    assert all(iv.estimate is None and iv.lo is None for iv in project(nothing).values())
    # Some resamples have no reference mass: the upper bound is unbounded, reported as None.
    rare = ratio_bootstrap([1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0])
    assert rare.estimate == 2.0 and rare.hi is None and project(rare)[10].hi is None
    assert ratio_bootstrap([], []).estimate is None
    with pytest.raises(StatsError, match=">= 0"):
        ratio_bootstrap([1, -1], [1, 1])
    with pytest.raises(StatsError, match="only in ref"):
        ratio_bootstrap({"x": 1, "y": 1}, {"x": 1})


# --- CLI ---------------------------------------------------------------------------------------

def write_rows(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_cli_paired(tmp_path, capsys):
    a_vals, b_vals = outcomes(both=50, only_a=2, only_b=14, neither=34)
    a = write_rows(tmp_path / "a.jsonl", [{"id": f"q{i}", "correct": bool(v)} for i, v in enumerate(a_vals)])
    b_rows = [{"id": f"q{i}", "correct": bool(v)} for i, v in enumerate(b_vals)]
    b = write_rows(tmp_path / "b.jsonl", reversed(b_rows))  # row order does not matter, ids do
    assert main(["paired", "--a", str(a), "--b", str(b)]) == 0
    res = last_json(capsys.readouterr().out)
    ref = mcnemar([[50, 2], [14, 34]], exact=True).pvalue
    assert res["n"] == 100 and res["a"] == 0.52 and res["b"] == 0.64 and res["diff"] == pytest.approx(0.12)
    assert res["diff_lo"] < 0.12 < res["diff_hi"] and res["p_value"] == pytest.approx(ref)
    assert res["method"] == "newcombe-paired-wilson" and res["test"] == "mcnemar-exact"
    assert res["verdict"] == "better"
    assert main(["paired", "--a", str(b), "--b", str(a)]) == 0
    assert last_json(capsys.readouterr().out)["verdict"] == "worse"
    assert main(["paired", "--a", str(a), "--b", str(a)]) == 0
    assert last_json(capsys.readouterr().out)["verdict"] == "inconclusive"


def test_cli_paired_reads_a_per_item_metric_of_eval_records(tmp_path, capsys):
    """--metric format_rate: each eval record's metrics.format_rate, not its `correct`."""
    rec = lambda i, fmt, ok: {"id": f"g{i}", "correct": ok, "metrics": {"format_rate": fmt}}  # noqa: E731
    a = write_rows(tmp_path / "a.jsonl", [rec(i, float(i < 7), False) for i in range(10)])
    b = write_rows(tmp_path / "b.jsonl", [rec(i, 1.0, False) for i in range(10)])
    assert main(["paired", "--a", str(a), "--b", str(b), "--metric", "format_rate"]) == 0
    res = last_json(capsys.readouterr().out)
    assert (res["a"], res["b"], res["only_b"], res["only_a"]) == (0.7, 1.0, 3, 0)
    assert main(["paired", "--a", str(a), "--b", str(b)]) == 0  # `correct`: nothing changed
    assert last_json(capsys.readouterr().out)["diff"] == 0
    bad = write_rows(tmp_path / "bad.jsonl", [rec(0, 0.5, False)])
    assert main(["paired", "--a", str(bad), "--b", str(b), "--metric", "format_rate"]) == 2
    assert f'{bad}:1: "metrics.format_rate" must be 0 or 1' in capsys.readouterr().err


def test_cli_paired_rejects_mismatched_ids_and_bad_rows(tmp_path, capsys):
    a = write_rows(tmp_path / "a.jsonl", [{"id": 1, "correct": True}, {"id": 2, "correct": False}])
    b = write_rows(tmp_path / "b.jsonl", [{"id": 1, "correct": True}, {"id": 3, "correct": True}])
    assert main(["paired", "--a", str(a), "--b", str(b)]) == 2
    err = capsys.readouterr().err
    assert f"only in {a}: 2" in err and f"only in {b}: 3" in err
    bad_rows = {
        '{"id": 1, "correct": 1}': '"correct" must be true or false',
        '{"correct": true}': 'missing "id"',
        '{"id": 1, "correct": true': "not valid JSON",
        '[1, true]': "expected a JSON object",
        '{"id": [1], "correct": true}': '"id" must be a string or an integer',
        '{"id": 2, "correct": true}': "duplicate id 2 (first on line 1)",
    }
    for row, message in bad_rows.items():
        bad = write_rows(tmp_path / "bad.jsonl", ['{"id": 2, "correct": false}', "", row])
        assert main(["paired", "--a", str(a), "--b", str(bad)]) == 2
        assert f"{bad}:3: {message}" in capsys.readouterr().err
    assert main(["paired", "--a", str(a), "--b", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: cannot read" in capsys.readouterr().err


def test_cli_interval_and_power(capsys):
    assert main(["interval", "--k", "37", "--n", "50"]) == 0
    res = last_json(capsys.readouterr().out)
    lo, hi = proportion_confint(37, 50, method="wilson")
    assert (res["rate"], res["n"]) == (0.74, 50) and res["lo"] == pytest.approx(lo) and res["hi"] == pytest.approx(hi)
    for args, message in ((["--k", "11", "--n", "10"], "cannot exceed"), (["--k", "-1", "--n", "10"], "non-negative")):
        assert main(["interval", *args]) == 2
        assert message in capsys.readouterr().err
    assert main(["power", "--rate", "0.2", "--margin", "0.05"]) == 0
    assert last_json(capsys.readouterr().out)["items"] == 626
    assert main(["power", "--rate", "0.2", "--n", "626"]) == 0
    assert last_json(capsys.readouterr().out)["min_detectable"] == pytest.approx(0.05, abs=1e-3)


def test_cli_runs_as_module():
    proc = subprocess.run([sys.executable, "-m", "pipeline.stats", "interval", "--k", "3", "--n", "10"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc.stdout)["lo"] == pytest.approx(proportion_confint(3, 10, method="wilson")[0])


def test_mean_retention_is_the_geometric_mean_over_shared_items():
    from pipeline.stats import mean_retention

    a = {f"i{k}": float(k % 2) for k in range(20)}        # 10 of 20
    b = {f"i{k}": float(k % 4 == 1) for k in range(20)}   # 5 of 20, all among a's
    one = mean_retention([(a, b)])
    assert one.estimate == pytest.approx(0.5) and one.method == "joint-bootstrap-geometric-mean-ratio"
    assert (one.lo, one.hi) == pytest.approx((ratio_bootstrap(a, b).lo, ratio_bootstrap(a, b).hi))  # same resamples
    two = mean_retention([(a, b), (b, b)])
    assert two.estimate == pytest.approx(0.5 ** 0.5) and two.n == 20 and two.lo < two.estimate < two.hi
    extra = {**b, "only_here": 1.0}
    assert mean_retention([(a, b), (b, extra)]).n == 20  # items every step measured
    assert mean_retention([]).estimate is None
    assert mean_retention([({"x": 0.0}, {"x": 1.0})]).estimate is None  # nothing to retain: no step
    with pytest.raises(StatsError, match=">= 0"):
        mean_retention([({"x": -1.0, "y": 1.0}, {"x": 1.0, "y": 1.0})])


def test_per_step_maps_a_cumulative_interval_monotonically():
    from pipeline.stats import Interval, per_step

    s = per_step(Interval(0.25, 0.16, 0.36, 30, "paired-bootstrap-ratio"), 2)
    assert (s.estimate, s.lo, s.hi, s.n) == pytest.approx((0.5, 0.4, 0.6, 30))
    assert s.method == "paired-bootstrap-ratio^(1/2)"
    assert per_step(Interval(None, None, None, 0, "m"), 3).estimate is None
    with pytest.raises(StatsError, match="positive integer"):
        per_step(s, 0)
