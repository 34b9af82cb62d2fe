"""The lineage-wide parts of the HTML report: the per-generation table, plots, retention, tree.

The table has the same columns as `pipeline.report.text.render(rows, "table")` (the report's own column
functions decide them, passed in as a `Table`); a cell whose ledger row also carries `<metric>_lo`
and `<metric>_hi` reads `0.32 [0.21, 0.46]` (rounded to two significant digits of the interval's
half-width), with `<metric>_n` in its tooltip. Plots are
`pipeline.report.plots.figures` as inline SVG, captioned with their titles. Every column keeps its
place; the first one (gen) stays in view while the table scrolls sideways, each header tells its
direction and meaning on hover (pipeline.report.columns), and a last column gives each headline
metric's change from the parent's value.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any, Callable

from matplotlib import rc_context

from pipeline.infra import numbers
from pipeline.stats.ledger import bounds
from pipeline.report import plots
from pipeline.report import compounding
from pipeline.report.columns import describe, tooltip
from pipeline.report.html.markup import Raw, el, join, status, table


@dataclass(frozen=True)
class Table:
    """pipeline.report.text's column logic, handed in by its callers (report imports this package for
    `--format html`, so this package cannot import report back without an import cycle)."""

    flatten: Callable[[dict], dict]  # ledger row -> flat row
    columns: Callable[[list[dict]], list[str]]  # every column of the flat rows
    summary_columns: Callable[[list[dict]], tuple[str, ...]]  # the readable table's metric columns
    fmt: Callable[[Any], Any]  # a cell's value as the text table prints it
    headline: Callable[[list[dict]], tuple[str, ...]] | None = None  # the compact table's columns: their change

    def summary(self, flat: list[dict]) -> list[str]:
        """The text table's columns in its order (as `report.render(rows, "table")` picks them)."""
        have = self.columns(flat)
        return [c for c in ("gen", "status", "parent") + self.summary_columns(flat) + ("wall_s", "tokens")
                if c in have]


def cell(spec: Table, flat_row: dict, col: str) -> Raw | str | int | float:
    v = flat_row.get(col)
    if col == "status":
        return status(v)
    lo, hi, n = bounds(flat_row, col) if isinstance(v, (int, float)) else (None, None, None)
    if lo is None or hi is None:
        return spec.fmt(v)
    tip = f"n = {n}" if n is not None else "interval"
    # rounded to two significant digits of the interval's half-width (pipeline.infra.numbers)
    return el("span", numbers.wide(v, lo, hi, trim=True), class_="ci", title=tip)


CHANGE = "change from parent"


def change(flat_row: dict, parent: dict | None, keys: list[str]) -> Raw | str:
    """Each headline metric's change from the parent's value, to the precision of this row's interval,
    coloured by its direction (unchanged ones counted); "" for a row without a parent."""
    if parent is None:
        return ""
    parts, same = [], 0
    for k in keys:
        a, b = parent.get(k), flat_row.get(k)
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or k == "wall_s":
            continue
        lo, hi, _ = bounds(flat_row, k)
        d = float(b) - float(a)
        if d == 0:
            same += 1
            continue
        direction = describe(k)[0]
        tone = None if d == 0 or direction is None else ("better" if (d > 0) == (direction == "higher") else "worse")
        text = numbers.signed(d, (hi - lo) / 2 if lo is not None and hi is not None else None)
        parts.append(join([f"{k} ", el("span", text, class_=tone)]))
    if same:
        parts.append(el("span", f"{same} unchanged", class_="muted"))
    return el("span", join(join([", " if i else "", p]) for i, p in enumerate(parts)), class_="change")


def generation_table(rows: list[dict], spec: Table) -> Raw:
    flat = [spec.flatten(r) for r in rows]
    cols = spec.summary(flat)
    selected = {r.get("selected") for r in rows if r.get("selected")}
    by_name = {f["gen"]: f for f in flat}
    heads = spec.headline(flat) if spec.headline else ()
    keys = [k for k in heads if k in cols]
    body = ([cell(spec, f, c) for c in cols] + ([change(f, by_name.get(f.get("parent")), keys)] if keys else [])
            for f in flat)
    headers = cols + ([CHANGE] if keys else [])
    titles = [tooltip(c) for c in cols] + (["each headline metric minus the parent's (+ is a rise; green: better)"]
                                           if keys else [])
    return el("div", table(headers, body, ["selected" if f["gen"] in selected else None for f in flat],
                           titles=titles, class_="gens"), class_="scroll")


def retention_table(rows: list[dict], items: compounding.Items | None = None) -> Raw | None:
    """The compounding view as an HTML table (tabulate's "html" escapes its cells), with its intervals
    where `items` gives per-item probe values (`compounding.lineage_items`); None when unmeasured."""
    text = compounding.render(rows, "html", items=items)
    return Raw(text) if text else None


_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')  # HTML5 puts inline <svg> in its namespace itself


def svg(fig, salt: str) -> Raw:
    """A matplotlib figure as inline SVG: text stays text, marker ids are unique per figure (`salt`),
    and the XML prolog, metadata and namespace URLs (which a reader might take for links) are left out."""
    buf = io.StringIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={k: None for k in ("Creator", "Date", "Format", "Type")})
    text = _PROLOG.sub("", buf.getvalue(), count=1)
    end = text.index(">")
    return Raw(_XMLNS.sub("", text[:end]) + text[end:])


def caption(fig) -> str:
    """What a plot shows, from its own titles, and how to read its marks."""
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    return "; ".join(titles) + ". Dots: promoted generations, crosses: rejected; bars: 95% intervals."


def plot_section(rows: list[dict], items: compounding.Items | None = None) -> list[Raw]:
    out = []
    for name, fig in plots.figures(rows, items=items).items():  # items: the retention panels' bands
        title = name.removesuffix(".png")
        out.append(el("figure", svg(fig, title), el("figcaption", caption(fig)), class_="plot", id=f"plot-{title}"))
    return out


def lineage_tree(rows: list[dict]) -> Raw | None:
    """Generations with their candidates (gen_NNN-c<k>, sweep jobs gen_NNN-<name>) under them, each
    with its parent (the teacher it was trained from); None when nothing branched."""
    if not any("-" in r["name"] for r in rows):
        return None
    items = []
    for gen in sorted({r["gen"] for r in rows}):
        group = [r for r in rows if r["gen"] == gen]
        base = next((r for r in group if "-" not in r["name"]), None)
        sel = (base or {}).get("selected")
        kids = join(el("li", _node(c), " \u2190 selected" if c["name"] == sel else "",
                       class_="selected" if c["name"] == sel else None) for c in group if c is not base)
        head = _node(base) if base else el("b", f"gen_{gen:03d}", el("span", " (no ledger row yet)", class_="muted"))
        items.append(el("li", head, el("ul", kids, class_="tree") if kids else ""))
    return el("ul", join(items), class_="tree")


def _node(r: dict) -> Raw:
    teacher = r.get("teacher") or r.get("parent")
    return join([el("b", r["name"]), " ", status(r.get("status")),
                 el("span", f" parent {r.get('parent') or '-'}, teacher {teacher or '-'}", class_="muted")])


def lineage_block(rows: list[dict], spec: Table, items: compounding.Items | None = None) -> list[Raw]:
    """Table, tree, plots and retention: what one lineage shows above its per-generation details
    (`items`: per-item probe values, for the retention intervals in the table and the plots)."""
    out = [el("h2", "Generations", id="generations"), generation_table(rows, spec)]
    tree = lineage_tree(rows)
    if tree is not None:
        out += [el("h2", "Lineage tree", id="tree"), tree]
    figs = plot_section(rows, items)
    if figs:
        out += [el("h2", "Plots", id="plots"), el("div", join(figs), class_="side")]
    ret = retention_table(rows, items)
    if ret is not None:
        out += [el("h2", "Retention (compounding view)", id="retention"),
                el("p", "Per-step retention of each alignment property and its projection, 95% intervals "
                        "in brackets (pipeline.report.compounding).", class_="muted"), ret]
    return out

