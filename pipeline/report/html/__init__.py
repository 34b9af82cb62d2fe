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
`page` (assembly). It never imports `pipeline.report.text`: report hands its column logic in as a
`Table` (`pipeline.report.text.html_table`), so the import graph has no cycle.
"""

from __future__ import annotations

from pipeline.report.html.page import REPORT_FILE, render, write, write_report
from pipeline.report.html.summary import Table

__all__ = ["REPORT_FILE", "Table", "render", "write", "write_report"]
