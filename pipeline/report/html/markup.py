"""HTML building blocks for the lineage report: every piece of text goes through `esc`.

Model completions, teacher rationales and synthetic rows are untrusted, so nothing is ever pasted
into the page unescaped: `el` escapes its text children and attribute values, and only `Raw`
(markup this package built itself, or matplotlib's SVG) passes through as is.
"""

from __future__ import annotations

import html
import re
from typing import Iterable

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; } h3 { margin-bottom: .3em; }
table { border-collapse: collapse; margin: .4em 0 1em; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tbody td:first-child { white-space: nowrap; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.promoted { color: #17692a; font-weight: 600; } .rejected { color: #a61b1b; font-weight: 600; }
.failed, .candidate { color: #8a6d00; font-weight: 600; }
span.ci { cursor: help; border-bottom: 1px dotted #888; } td:has(> span.ci) { text-align: right; }
pre { white-space: pre-wrap; word-break: break-word; max-height: 14em; overflow: auto; margin: 0;
      background: #f8f8f8; padding: 3px; font-size: 12px; max-width: 40em; }
.side { display: flex; gap: 1.5em; flex-wrap: wrap; align-items: flex-start; }
.scroll { overflow-x: auto; max-width: 100%; } div.lineage { flex: 1 1 600px; min-width: 0; }
figure.plot { margin: 0; flex: 1 1 560px; max-width: 760px; }
figure.plot svg { width: 100%; height: auto; } figcaption { color: #777; font-size: 12px; }
details { margin: .5em 0; } summary { cursor: pointer; font-weight: 600; }
.selected { background: #e7f5e9; } .muted { color: #777; }
table.gens th:first-child, table.gens td:first-child { position: sticky; left: 0; z-index: 1; background: #fff;
  box-shadow: 1px 0 0 #ccc; } table.gens th:first-child { background: #f3f3f3; } th[title] { cursor: help; }
.verdict { margin: .3em 0; padding: 4px 8px; border-left: 4px solid #bbb; background: #fafafa; }
.verdict.promoted-v { border-color: #17692a; } .verdict.rejected-v { border-color: #a61b1b; }
.verdict .part { color: #444; } span.change { display: inline-block; min-width: 30em; font-size: 12px; } .better { color: #17692a; } .worse { color: #a61b1b; }
nav.toc ul { columns: 3 14em; margin: .3em 0; } nav.toc { font-size: 13px; }
ul.tree { list-style: none; padding-left: 1.2em; } ul.tree li::before { content: "\\2514\\2500 "; color: #999; }
"""


class Raw(str):
    """Markup built by this package (already safe); `el` inserts it unescaped."""


def esc(x) -> Raw:
    if isinstance(x, Raw):
        return x
    return Raw(html.escape("" if x is None else str(x), quote=True))


def el(tag: str, *children, **attrs) -> Raw:
    """`<tag attrs>children</tag>`; `class_` sets class; a None/False attribute is left out."""
    at = "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items()
                 if v is not None and v is not False)
    return Raw(f"<{tag}{at}>{''.join(esc(c) for c in children)}</{tag}>")


def join(parts: Iterable) -> Raw:
    return Raw("".join(esc(p) for p in parts))


def table(headers: list, rows: Iterable[list], row_classes: Iterable[str | None] | None = None,
          titles: list[str | None] | None = None, class_: str | None = None) -> Raw:
    """A table; a cell is text (escaped), Raw markup, or a number (right-aligned); `titles`: each
    header's hover text (None or "" for none)."""
    rows = list(rows)
    classes = list(row_classes) if row_classes is not None else [None] * len(rows)
    tips = list(titles) if titles is not None else [None] * len(headers)
    head = el("tr", join(el("th", h, title=t or None) for h, t in zip(headers, tips)))
    body = join(el("tr", join(_cell(c) for c in r), class_=k) for r, k in zip(rows, classes))
    return el("table", el("thead", head), el("tbody", body), class_=class_)


def _cell(c) -> Raw:
    if isinstance(c, (int, float)) and not isinstance(c, bool):
        return el("td", c, class_="num")
    return el("td", c)


def status(s) -> Raw:
    return el("span", s or "-", class_=s if s in ("promoted", "rejected", "failed", "candidate") else None)


def clip(text, limit: int = 600) -> Raw:
    """Model text in a <pre>, cut to `limit` characters (the full text stays in the jsonl on disk).
    Runs of blank lines, common in a small model's output, are counted rather than drawn."""
    text = "" if text is None else str(text)
    if not text.strip():
        return el("pre", f"[{'empty' if not text else f'{len(text)} whitespace characters'}]", class_="muted")
    if len(text) > limit:
        text = text[:limit] + f"\u2026 [{len(text) - limit} more characters]"
    return el("pre", re.sub(r"\n{3,}", lambda m: f"\n[{len(m.group())} newlines]\n", text))


def document(title: str, body: Iterable) -> str:
    """One self-contained page: inline CSS, no script, no external resource."""
    return ("<!DOCTYPE html>\n" + el("html", el("head", Raw('<meta charset="utf-8">'), el("title", title),
                                               el("style", Raw(CSS))),
                                      el("body", join(body)), lang="en") + "\n")
