"""The page: one lineage in full, or several lineages' tables side by side; written atomically.

`pipeline.report --format html` calls `write`; the generation loop calls
`pipeline.report.write_lineage_report`, which supplies report's column logic (`Table`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.io import atomic_write_text
from pipeline.lineage import Lineage
from pipeline.report_html.disk import read_gen
from pipeline.report_html.generations import section
from pipeline.report_html.items import items_block
from pipeline.report_html.markup import Raw, document, el, join
from pipeline.report_html.summary import Table, generation_table, lineage_block

REPORT_FILE = "report.html"


def _lineage(path: str | Path) -> tuple[Lineage, dict, list[dict]]:
    path = Path(path)
    lineage = Lineage(path.parent, path.name)
    meta = lineage.meta()  # a clear LineageError when this is not a lineage
    return lineage, meta, lineage.rows()


def lineage_body(path: str | Path, spec: Table) -> list[Raw]:
    lineage, meta, rows = _lineage(path)
    teacher = lineage.teacher().name
    files = {r["name"]: read_gen(lineage.path / r["name"]) for r in rows}
    answered = [files[r["name"]] for r in rows if files[r["name"]].eval_items or files[r["name"]].probes]
    out = [el("h1", f"Lineage {lineage.name}"),
           el("p", f"{lineage.path}: base model {meta.get('base_model_spec')}, created {meta.get('created')}, "
                   f"{len(rows)} ledger row(s), current teacher {teacher}", class_="muted")]
    out += lineage_block(rows, spec)
    out += items_block(answered)
    out += [el("h2", "Per generation")] + [section(r, files[r["name"]]) for r in rows]
    return out


def render_lineage(path: str | Path, spec: Table) -> str:
    """The whole page for one lineage directory."""
    return document(f"lineage {Path(path).name}", lineage_body(path, spec))


def render_compare(paths: list[str | Path], spec: Table) -> str:
    """Several lineages' per-generation tables side by side in one page."""
    cols = []
    for p in paths:
        lineage, _, rows = _lineage(p)
        cols.append(el("div", el("h2", lineage.name), el("p", str(lineage.path), class_="muted"),
                       generation_table(rows, spec), class_="lineage"))
    return document("compare " + ", ".join(Path(p).name for p in paths),
                    [el("h1", "Lineages side by side"), el("div", join(cols), class_="side")])


def render(paths: list[str | Path], spec: Table) -> str:
    """One lineage: its full page; several: the comparison."""
    return render_lineage(paths[0], spec) if len(paths) == 1 else render_compare(paths, spec)


def write(paths: list[str | Path], output: str | Path | None, spec: Table) -> None:
    """The page for `paths` into `output` (atomically), or to stdout when output is None."""
    page = render(paths, spec)
    if output is None:
        sys.stdout.write(page)
        return
    atomic_write_text(output, page)
    print(f"wrote {output}", file=sys.stderr)


def write_report(lineage_path: str | Path, spec: Table) -> Path:
    """(Re)write `<lineage>/report.html`; returns its path."""
    return atomic_write_text(Path(lineage_path) / REPORT_FILE, render_lineage(lineage_path, spec))
