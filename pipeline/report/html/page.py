"""The page: one lineage in full, or several lineages' tables side by side; written atomically.

`pipeline.report.text --format html` calls `write`; the generation loop calls
`pipeline.report.text.write_lineage_report`, which supplies report's column logic (`Table`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pipeline.report import compare, verdict
from pipeline.loop import ledger
from pipeline.engine import models
from pipeline.infra.io import atomic_write_text
from pipeline.lineage import Lineage
from pipeline.report.html.disk import read_gen
from pipeline.report.html.generations import section, verdict_line
from pipeline.report.html.items import items_block
from pipeline.report import compounding
from pipeline.report.html.markup import Raw, document, el, join, table
from pipeline.report.html.summary import Table, generation_table, lineage_block

REPORT_FILE = "report.html"


def _lineage(path: str | Path) -> tuple[Lineage, dict, list[dict]]:
    path = Path(path)
    lineage = Lineage(path.parent, path.name)
    meta = lineage.meta()  # a clear LineageError when this is not a lineage
    return lineage, meta, ledger.check(lineage)  # a corrupt manifest or ledger: an error, not a stale row


def _base(meta: dict) -> str:
    """The base model as it resolved: its Hub id (what `auto` or an embedded model stands for) with the
    spec that named it, else the resolved model directory's name, else the spec."""
    spec = str(meta.get("base_model_spec"))
    resolved = meta.get("base_model_dir")
    hub = models.hub_id(spec, resolved) if resolved else None
    if hub and hub != spec:
        return f"{hub} (spec {spec})"
    if spec == "auto" and resolved:
        return f"{Path(resolved).name} (spec auto)"
    return spec


def toc(rows: list[dict], body: list[Raw]) -> Raw:
    """Links to the page's sections (every h2 with an id) and to each generation's details."""
    heads = [(m.group(1), m.group(2)) for part in body for m in _H2.finditer(part)]
    gens = el("li", "Per generation: ", join(join([el("a", r["name"], href=f"#{r['name']}"), " "]) for r in rows))
    return el("nav", el("b", "Contents"), el("ul", join(el("li", el("a", t, href=f"#{i}")) for i, t in heads), gens),
              class_="toc")


_H2 = re.compile(r'<h2 id="([^"]+)">([^<]*)</h2>')


def verdict_block(rows: list[dict], path: Path) -> list[Raw]:
    """One verdict line per generation (its candidates are told within it), first on the page."""
    lines = [verdict_line(verdict.of(r, path, rows)) for r in rows if "-" not in r["name"]]
    return [el("h2", "Verdicts", id="verdicts"), join(lines)] if lines else []


def lineage_body(path: str | Path, spec: Table) -> list[Raw]:
    lineage, meta, rows = _lineage(path)
    teacher = lineage.teacher().name
    files = {r["name"]: read_gen(lineage.path / r["name"]) for r in rows}
    by_name = {r["name"]: r for r in rows}
    answered = [files[r["name"]] for r in rows if files[r["name"]].eval_items or files[r["name"]].probes]
    # paths on the page are relative to the lineage directory: the page moves with it
    out = [el("h1", f"Lineage {lineage.name}"),
           el("p", f"base model {_base(meta)}, created {meta.get('created')}, {len(rows)} ledger row(s), "
                   f"current teacher {teacher}; file paths below are relative to the lineage directory",
              class_="muted")]
    body = verdict_block(rows, lineage.path) + lineage_block(rows, spec, compounding.lineage_items(lineage.path)) + items_block(answered)
    body += [el("h2", "Per generation", id="per-generation")]
    body += [section(r, files[r["name"]], verdict.of(r, lineage.path, rows), by_name.get(r.get("parent") or ""))
             for r in rows]
    return out + [toc(rows, body)] + body


def render_lineage(path: str | Path, spec: Table) -> str:
    """The whole page for one lineage directory."""
    return document(f"lineage {Path(path).name}", lineage_body(path, spec))


def _ci(mean, lo, hi, n_label: str) -> Raw:
    if mean is None:
        return Raw("")
    if lo is None or hi is None:
        return el("span", f"{mean:.4g}", title=n_label)
    return el("span", f"{mean:.4g} [{lo:.4g}, {hi:.4g}]", class_="ci", title=n_label)


def aggregate_block(data: dict) -> list[Raw]:
    """pipeline.report.compare's result (the same numbers `--compare --format markdown` prints): means over
    seeds with their Student-t interval, and each arm's paired difference from the reference arm."""
    pct = round(100 * (1 - data["alpha"]))
    arms = ", ".join(f"{a} (seeds {', '.join(str(m['seed']) for m in mm)})" for a, mm in data["arms"].items())
    out = [el("h2", "Aggregate over seeds"), el("p", f"Arms: {arms}. Mean over seeds per generation with its "
                                                      f"{pct}% {data['interval']} interval (none with one seed).",
                                                class_="muted"),
           el("div", table(["arm", "gen", "metric", "seeds", "mean [interval]", "per seed"],
                           [[r["arm"], r["gen"], r["metric"], r["n_seeds"],
                             _ci(r["mean"], r["lo"], r["hi"], f"{r['n_seeds']} seed(s)"),
                             " ".join(f"{v:.4g}" for v in r["values"])] for r in data["means"]]), class_="scroll")]
    if data["differences"]:
        out += [el("h2", "Paired differences between arms"),
                el("p", f"Each arm minus the reference arm, seeds as the unit and the same items for every seed: "
                        f"{pct}% two-way bootstrap interval resampling seeds and items independently.",
                   class_="muted"),
                el("div", table(["gen", "metric", "arms", "seeds", "items", "difference [interval]", "per seed"],
                                [[d["gen"], d["metric"], f"{d['arm']} - {d['reference_arm']}", d["n_seeds"], d["n"],
                                  _ci(d["diff"], d["lo"], d["hi"], f"{d['n_seeds']} seed(s) x {d['n']} items"),
                                  " ".join(f"{x:+.4g}" for x in d["seed_diffs"])]
                                 for d in data["differences"]]), class_="scroll")]
        out += [el("p", f"Note: {n}", class_="muted") for n in dict.fromkeys(d["note"] for d in data["differences"])]
    elif len(data["arms"]) > 1:
        out.append(el("p", "Paired difference between arms: no per-item records shared by the arms.", class_="muted"))
    return out


def render_compare(paths: list[str | Path], spec: Table) -> str:
    """Lineages (or the lineages of study directories) side by side, then pipeline.report.compare's
    aggregate over seeds and between arms: one implementation with the text report's `--compare`."""
    members = compare.members(paths)
    cols = []
    for m in members:
        lineage, _, rows = _lineage(m.path)
        cols.append(el("div", el("h2", f"{lineage.name}"),
                       el("p", f"{lineage.path}: arm {m.arm}, seed {m.seed}", class_="muted"),
                       generation_table(rows, spec), class_="lineage"))
    return document("compare " + ", ".join(Path(p).name for p in paths),
                    [el("h1", "Lineages side by side"), el("div", join(cols), class_="side"),
                     *aggregate_block(compare.compare(paths))])


def render(paths: list[str | Path], spec: Table) -> str:
    """One lineage: its full page; several lineages, or a study directory: the comparison."""
    one = len(paths) == 1 and not (Path(paths[0]) / "study.json").exists()
    return render_lineage(paths[0], spec) if one else render_compare(paths, spec)


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
