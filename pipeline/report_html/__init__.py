"""One self-contained HTML page per lineage: inline CSS and SVG, no script, no network.

    python -m pipeline.report --format html --lineage checkpoints/<lineage> -o report.html
    python -m pipeline.report --format html --compare checkpoints/a checkpoints/b -o compare.html

The page shows the per-generation table (the text table's columns, with `0.32 [0.21, 0.46]` where
the ledger has `<metric>_lo/_hi/_n`), capability and drift plots with error bars, the retention
view, the lineage tree when candidates or sweeps branched, the same eval and probe items across
generations with the items gained and lost against gen 0, then per generation the gate's verdict
and reasons, hyperparameters and their source, synthesis statistics with kept and rejected
examples, optimizer steps and wall time per stage. Model text is always escaped.

Modules: `markup` (escaping HTML builders), `disk` (per-item files), `summary` (table, plots,
retention, tree), `items` (items across generations), `generations` (per-generation details),
`page` (assembly). `pipeline.report` imports `page` only; this package's root holds what needs
report's column logic, so the import graph has no cycle.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import report
from pipeline.report_html.page import REPORT_FILE, write_report
from pipeline.report_html.summary import Table

__all__ = ["REPORT_FILE", "REPORT_TABLE", "write_lineage_report"]

REPORT_TABLE = Table(flatten=report.flatten, columns=report.columns, summary_columns=report.summary_columns,
                     fmt=report._fmt)


def write_lineage_report(lineage_path: str | Path) -> Path:
    """(Re)write `checkpoints/<lineage>/report.html` (the loop calls this after every generation)."""
    return write_report(lineage_path, REPORT_TABLE)
