"""The per-generation table, from the ledger: one row per generation, a column per metric.

    python -m pipeline.report                                   # checkpoints/default, text table
    python -m pipeline.report --lineage checkpoints/mylineage --format markdown
    python -m pipeline.report --format csv|json                 # every column; table shows a summary
    python -m pipeline.report --all                             # every column in the table too
    python -m pipeline.report --compare checkpoints/a checkpoints/b

Every number comes from the ledger, which the stages fill from their per-item records on disk
(eval/*.jsonl, drift/*.jsonl), so each cell can be traced back to the completions behind it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from tabulate import tabulate

from pipeline import probes
from pipeline.drift import metrics as drift_metrics
from pipeline.evals import headline_columns
from pipeline.lineage import Lineage, LineageError
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


def alignment_columns(rows: list[dict]) -> tuple[str, ...]:
    """Alignment and drift columns: every registered suite's metrics (built-ins first, then plugins'),
    then the drift stage's own summary columns (KL from gen 0, eval items gained and lost)."""
    return tuple(probes.alignment_metrics()) + drift_metrics.COLUMNS


SYNTH_COLUMNS = ("synth.kept", "synth.keep_rate", "synth.distinct_2")


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


def columns(rows: list[dict]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    head = [k for k in ("gen", "status", "parent") if k in keys]
    lead = [k for k in eval_columns(rows) if k in keys]
    tail = [k for k in ("wall_s", "tokens") if k in keys]
    rest = sorted(k for k in keys if k not in head + lead + tail)
    return head + lead + rest + tail


def _fmt(v):
    return round(v, 4) if isinstance(v, float) else ("" if v is None else v)


def render(ledger_rows: list[dict], fmt: str = "table", all_columns: bool = False) -> str:
    """csv and json always carry every column; table and markdown show SUMMARY unless all_columns."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
    rows = [flatten(r) for r in ledger_rows]
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str)
    cols = columns(rows)
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
    table = [[_fmt(r.get(c)) for c in cols] for r in rows]
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
    path = Path(path)
    lineage = Lineage(path.parent, path.name)
    lineage.meta()  # clear error if this is not a lineage, or a newer schema
    return lineage.rows()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.report", description=__doc__.split("\n")[0])
    ap.add_argument("--lineage", default="checkpoints/default", help="lineage directory")
    ap.add_argument("--format", default="table", choices=FORMATS)
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two lineage directories side by side")
    ap.add_argument("--plots", metavar="DIR", help="also write PNG plots into DIR")
    ap.add_argument("--all", action="store_true", help="every metric as a column in table/markdown too")
    args = ap.parse_args(argv)
    try:
        if args.compare:
            parts = []
            for p in args.compare:
                parts.append(f"## {p}\n\n{render(load(p), args.format, args.all)}")
            print("\n\n".join(parts))
            return 0
        rows = load(args.lineage)
    except (LineageError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(render(rows, args.format, args.all))
    if args.format in ("table", "markdown") and proposal_sources(rows):
        print(f"\n{proposal_sources(rows)}")
    if args.format in ("table", "markdown"):  # the compounding view of the alignment metrics (issue 7)
        from pipeline.drift import compounding

        retention = compounding.render(rows, "github" if args.format == "markdown" else "simple")
        if retention:
            print(f"\nRetention per generation and its projection (pipeline.drift.compounding):\n{retention}")
    if args.plots:
        from pipeline import plots

        for f in plots.write_all(rows, Path(args.plots)):
            print(f"wrote {f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
