"""PNG plots of a lineage from its ledger rows (matplotlib, Agg; no display needed).

    python -m pipeline.report --lineage checkpoints/<lineage> --plots plots/

- capability.png         every registered benchmark's metrics (pipeline.evals.capability_keys; test and
                         validation tasks; a lower-is-better one says so in the legend) vs generation
- alignment_<metric>.png each alignment metric vs generation, and its mean per-step retention
                         compounded to 10, 50 and 500 generations (pipeline.report.compounding)
- kl.png                 teacher-forced KL from gen 0 and from the parent vs generation
- diversity.png          distinct-n of free generations and of the synthetic data vs generation

Rejected generations are drawn as crosses, promoted ones as dots; a metric whose ledger row carries
its 95% interval (`<metric>_lo`, `<metric>_hi`, pipeline.stats.ledger) gets error bars (matplotlib gid
`errorbar-<metric>`, an element id in the inline SVG of `pipeline.report.html`), and the projected
retention its interval band when per-item values are given. A plot with no data is skipped.
`figures(rows)` returns the figures without writing them (the HTML report embeds them as SVG).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from pipeline.report.compounding import HORIZONS, Items, view
from pipeline.drift.metrics import DISTINCT, KL, SYNTH_DISTINCT
from pipeline.evals import capability_keys, metric_direction
from pipeline.stats.ledger import bounds, points

STYLE = {"promoted": dict(marker="o"), "rejected": dict(marker="x", markersize=9)}
def _finished(rows: list[dict]) -> list[dict]:
    return sorted((r for r in rows if r.get("status") in ("promoted", "rejected")), key=lambda r: (r["gen"], r["name"]))


Point = tuple[int, float, str, "float | None", "float | None"]  # gen, value, status, lo, hi


def _series(rows: list[dict], key: str) -> list[Point]:
    return [(r["gen"], float(r["metrics"][key]), r["status"], *bounds(r["metrics"], key)[:2]) for r in rows
            if isinstance((r.get("metrics") or {}).get(key), (int, float))]


def _plot_series(ax, pts: list[Point], label: str, color=None, legend: str | None = None) -> None:
    line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", alpha=0.6, label=legend or label, color=color)
    for status, style in STYLE.items():
        sel = [p for p in pts if p[2] == status]
        if sel:
            ax.plot([p[0] for p in sel], [p[1] for p in sel], linestyle="none", color=line.get_color(), **style)
    bars = [p for p in pts if p[3] is not None and p[4] is not None]
    if bars:  # the 95% interval of each generation's value
        err = [[max(0.0, p[1] - p[3]) for p in bars], [max(0.0, p[4] - p[1]) for p in bars]]
        eb = ax.errorbar([p[0] for p in bars], [p[1] for p in bars], yerr=err, fmt="none", capsize=4,
                         color=line.get_color(), alpha=0.8)
        for bar in eb.lines[2]:
            bar.set_gid(f"errorbar-{label}")


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _lines_plot(rows: list[dict], keys: list[str], title: str, ylabel: str,
                legends: dict[str, str] | None = None) -> Figure | None:
    series = {k: _series(rows, k) for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    for k, pts in series.items():
        _plot_series(ax, pts, k, legend=(legends or {}).get(k))
    ax.set_title(title)
    ax.set_xlabel("generation")
    ax.set_ylabel(ylabel)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="dot: promoted, x: rejected", title_fontsize=7)
    fig.tight_layout()
    return fig


def capability(rows: list[dict]) -> Figure | None:
    keys = capability_keys(sorted({k for r in rows for k in points(r.get("metrics") or {})}))  # intervals are error bars
    legends = {k: f"{k} (lower is better)" for k in keys if metric_direction(k) == "lower"}
    return _lines_plot(rows, keys, "Capability by generation (val: gated on; test: reported only)", "score", legends)


def kl(rows: list[dict]) -> Figure | None:
    return _lines_plot(rows, list(KL.keys()), "Teacher-forced KL on reference text", "nats / token")


def diversity(rows: list[dict]) -> Figure | None:
    keys = sorted({k for r in rows for k in points(r.get("metrics") or {})
                   if DISTINCT.matches(k) or SYNTH_DISTINCT.matches(k)})
    return _lines_plot(rows, keys, "Diversity (falling distinct-n is a collapse signal)", "distinct-n")


def no_retention(v: dict) -> str:
    """Why a metric's retention panel has nothing to project: gen 0 has nothing to retain (a rate of 0
    for a higher-is-better metric, 1 for a lower-is-better one), or no step after gen 0 is counted yet."""
    base = v["scores"][0] if v["scores"] else None
    good = None if base is None else (base if v["direction"] == "higher" else 1.0 - base)
    if good is not None and good <= 0:
        return f"gen 0 scores {base:g}: nothing to retain,\nso no retention to project"
    counted = "finished" if v.get("with_rejected") else "promoted"
    if v["steps"] == 0:
        return f"no {counted} generation after gen 0 yet:\nno retention to project"
    return "retention undefined at every step:\nno retention to project"


def alignment(rows: list[dict], with_rejected: bool = False, items: Items | None = None) -> dict[str, Figure]:
    """alignment_<metric>.png -> its figure, for every metric the compounding view measures."""
    out = {}
    for metric, v in view(rows, with_rejected=with_rejected, items=items).items():
        fig = Figure(figsize=(10, 4))
        ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        _plot_series(ax, _series(rows, metric), metric)  # every finished generation, rejected ones too
        ax.set_title(f"{metric} ({v['direction']} is better)")
        ax.set_xlabel("generation")
        ax.set_ylabel("score")
        ax.set_ylim(-0.05, 1.05)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        mean = v["mean_retention"]
        if mean is None:
            bx.text(0.5, 0.5, no_retention(v), ha="center", va="center", transform=bx.transAxes)
            bx.set_axis_off()
        else:
            ns = [1] + [round(10 ** (i / 20)) for i in range(1, 55)]
            ns = sorted(set(n for n in ns if n <= max(HORIZONS)))
            line, = bx.plot(ns, [mean ** n for n in ns], "-", label=f"mean retention {100 * mean:.2f}%/gen")
            band = v["mean_interval"]
            if band is not None and band.lo is not None and band.hi is not None:
                bx.fill_between(ns, [band.lo ** n for n in ns], [min(band.hi ** n, 1.05) for n in ns],
                                color=line.get_color(), alpha=0.15, label="95% interval")
            cum = [(g, c, iv) for g, c, iv in zip(v["gens"], v["cumulative"], v["cumulative_interval"])
                   if c is not None and g > 0]
            if cum:
                bx.plot([g for g, _, _ in cum], [c for _, c, _ in cum], "o", color="C1", label="measured (vs gen 0)")
                bars = [(g, c, iv) for g, c, iv in cum if iv is not None and iv.lo is not None and iv.hi is not None]
                if bars:
                    bx.errorbar([g for g, _, _ in bars], [c for _, c, _ in bars], linestyle="none", capsize=3, color="C1",
                                yerr=[[c - iv.lo for _, c, iv in bars], [iv.hi - c for _, c, iv in bars]])
            for n in HORIZONS:
                r = mean ** n
                bx.plot([n], [r], "s", color="C3")
                bx.annotate(f"{100 * r:.1f}% @ {n}", (n, r), textcoords="offset points", xytext=(-10, 8),
                            fontsize=8, ha="right")
            bx.set_xscale("log")
            bx.set_ylim(0, 1.05 * max([1.0] + [c for _, c, _ in cum]))
            bx.set_title(f"projected cumulative retention ({v['steps']} measured step(s))")
            bx.set_xlabel("generations (log)")
            bx.set_ylabel("share of gen 0 retained")
            bx.grid(alpha=0.3, which="both")
            bx.legend(fontsize=8, loc="upper right")
        fig.tight_layout()
        out[f"alignment_{metric.removeprefix('drift.')}.png"] = fig
    return out


def figures(rows: list[dict], with_rejected: bool = False, items: Items | None = None) -> dict[str, Figure]:
    """File name -> figure, for every plot the finished rows have data for. The retention panels use
    the promoted line unless `with_rejected`, with intervals where `items` gives per-item values."""
    rows = _finished(rows)
    made = {"capability.png": capability(rows), "kl.png": kl(rows), "diversity.png": diversity(rows)}
    return {name: fig for name, fig in made.items() if fig is not None} | alignment(rows, with_rejected, items)


def write_all(rows: list[dict], out_dir: Path, with_rejected: bool = False, items: Items | None = None
              ) -> list[Path]:
    """Write every plot the rows have data for; return the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_save(fig, out_dir / name) for name, fig in figures(rows, with_rejected, items).items()]
