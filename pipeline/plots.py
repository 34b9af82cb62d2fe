"""PNG plots of a lineage from its ledger rows (matplotlib, Agg; no display needed).

    python -m pipeline.report --lineage checkpoints/<lineage> --plots plots/

- capability.png         eval metrics (GSM8K, HumanEval; test and validation) vs generation
- alignment_<metric>.png each alignment metric vs generation, and its mean per-step retention
                         compounded to 10, 50 and 500 generations (pipeline.drift.compounding)
- kl.png                 teacher-forced KL from gen 0 and from the parent vs generation
- diversity.png          distinct-n of free generations and of the synthetic data vs generation

Rejected generations are drawn as crosses, promoted ones as dots; a metric whose ledger row also
carries `<metric>_lo` and `<metric>_hi` gets an error bar (matplotlib gid `errorbar-<metric>`, an
element id in the inline SVG of `pipeline.report_html`). A plot with no data is skipped.
`figures(rows)` returns the figures without writing them (the HTML report embeds them as SVG).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from pipeline.drift.compounding import HORIZONS, view
from pipeline.drift.metrics import DISTINCT, KL, SYNTH_DISTINCT

CAPABILITY_MARKERS = ("accuracy", "pass@")
STYLE = {"promoted": dict(marker="o"), "rejected": dict(marker="x", markersize=9)}
INTERVAL_SUFFIXES = ("_lo", "_hi", "_n")  # `<metric>_lo/_hi/_n`: a metric's interval and sample size


def is_interval_key(key: str) -> bool:
    return key.endswith(INTERVAL_SUFFIXES)


def interval(metrics: dict, key: str) -> tuple[float, float, int | None] | None:
    """(lo, hi, n) when `metrics` carries `<key>_lo` and `<key>_hi`, else None."""
    lo, hi = metrics.get(f"{key}_lo"), metrics.get(f"{key}_hi")
    if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)):
        return None
    n = metrics.get(f"{key}_n")
    return float(lo), float(hi), n if isinstance(n, int) else None


def _finished(rows: list[dict]) -> list[dict]:
    return sorted((r for r in rows if r.get("status") in ("promoted", "rejected")), key=lambda r: (r["gen"], r["name"]))


def _series(rows: list[dict], key: str) -> list[tuple]:
    """(gen, value, status, interval or None) for every row that measured `key`."""
    return [(r["gen"], float(r["metrics"][key]), r["status"], interval(r["metrics"], key)) for r in rows
            if isinstance((r.get("metrics") or {}).get(key), (int, float))]


def _plot_series(ax, pts: list[tuple], label: str, color=None) -> None:
    line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", alpha=0.6, label=label, color=color)
    for status, style in STYLE.items():
        sel = [p for p in pts if p[2] == status]
        if sel:
            ax.plot([p[0] for p in sel], [p[1] for p in sel], linestyle="none", color=line.get_color(), **style)
    bars = [p for p in pts if p[3] is not None]
    if bars:
        err = [[max(0.0, p[1] - p[3][0]) for p in bars], [max(0.0, p[3][1] - p[1]) for p in bars]]
        eb = ax.errorbar([p[0] for p in bars], [p[1] for p in bars], yerr=err, fmt="none", capsize=4,
                         color=line.get_color(), alpha=0.8)
        for bar in eb.lines[2]:
            bar.set_gid(f"errorbar-{label}")


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _lines_plot(rows: list[dict], keys: list[str], title: str, ylabel: str) -> Figure | None:
    series = {k: _series(rows, k) for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    for k, pts in series.items():
        _plot_series(ax, pts, k)
    ax.set_title(title)
    ax.set_xlabel("generation")
    ax.set_ylabel(ylabel)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="dot: promoted, x: rejected", title_fontsize=7)
    fig.tight_layout()
    return fig


def capability(rows: list[dict]) -> Figure | None:
    keys = sorted({k for r in rows for k in (r.get("metrics") or {}) if not is_interval_key(k)
                   and not k.startswith(("drift.", "gate.")) and any(m in k for m in CAPABILITY_MARKERS)})
    return _lines_plot(rows, keys, "Capability by generation (val: gated on; test: reported only)", "score")


def kl(rows: list[dict]) -> Figure | None:
    return _lines_plot(rows, list(KL.keys()), "Teacher-forced KL on reference text", "nats / token")


def diversity(rows: list[dict]) -> Figure | None:
    keys = sorted({k for r in rows for k in (r.get("metrics") or {}) if not is_interval_key(k)
                   and (DISTINCT.matches(k) or SYNTH_DISTINCT.matches(k))})
    return _lines_plot(rows, keys, "Diversity (falling distinct-n is a collapse signal)", "distinct-n")


def alignment(rows: list[dict]) -> dict[str, Figure]:
    """alignment_<metric>.png -> its figure, for every metric the compounding view measures."""
    out = {}
    by_name = {r["name"]: r for r in rows}
    for metric, v in view(rows).items():
        fig = Figure(figsize=(10, 4))
        ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        bounds = [interval(by_name[n].get("metrics") or {}, metric) for n in v["names"]]
        _plot_series(ax, list(zip(v["gens"], v["scores"], v["status"], bounds)), metric)
        ax.set_title(f"{metric} ({v['direction']} is better)")
        ax.set_xlabel("generation")
        ax.set_ylabel("score")
        ax.set_ylim(-0.05, 1.05)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        mean = v["mean_retention"]
        if mean is None:
            bx.text(0.5, 0.5, "no generation after gen 0 yet:\nno retention to project", ha="center",
                    va="center", transform=bx.transAxes)
            bx.set_axis_off()
        else:
            ns = [1] + [round(10 ** (i / 20)) for i in range(1, 55)]
            ns = sorted(set(n for n in ns if n <= max(HORIZONS)))
            bx.plot(ns, [mean ** n for n in ns], "-", label=f"mean retention {100 * mean:.2f}%/gen")
            cum = [(g, c) for g, c in zip(v["gens"], v["cumulative"]) if c is not None and g > 0]
            if cum:
                bx.plot([g for g, _ in cum], [c for _, c in cum], "o", label="measured (vs gen 0)")
            for n in HORIZONS:
                r = mean ** n
                bx.plot([n], [r], "s", color="C3")
                bx.annotate(f"{100 * r:.1f}% @ {n}", (n, r), textcoords="offset points", xytext=(-10, 8),
                            fontsize=8, ha="right")
            bx.set_xscale("log")
            bx.set_ylim(0, 1.05 * max([1.0] + [c for _, c in cum]))
            bx.set_title(f"projected cumulative retention ({v['steps']} measured step(s))")
            bx.set_xlabel("generations (log)")
            bx.set_ylabel("share of gen 0 retained")
            bx.grid(alpha=0.3, which="both")
            bx.legend(fontsize=8, loc="upper right")
        fig.tight_layout()
        out[f"alignment_{metric.removeprefix('drift.')}.png"] = fig
    return out


def figures(rows: list[dict]) -> dict[str, Figure]:
    """File name -> figure, for every plot the finished rows have data for."""
    rows = _finished(rows)
    made = {"capability.png": capability(rows), "kl.png": kl(rows), "diversity.png": diversity(rows)}
    return {name: fig for name, fig in made.items() if fig is not None} | alignment(rows)


def write_all(rows: list[dict], out_dir: Path) -> list[Path]:
    """Write every plot the rows have data for; return the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_save(fig, out_dir / name) for name, fig in figures(rows).items()]
