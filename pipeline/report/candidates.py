"""Generations with several candidates, as the lineage-wide views (TensorBoard run, `--compare`) see them.

With `propose.candidates > 1` or a sweep, a generation's own ledger row holds only what its
candidates share (propose, synth); each candidate `gen_NNN-<name>` has its own row with its eval,
drift and gate metrics and its own records. A generation then stands for its selected candidate
(the model that continued the lineage): `generation_rows` lays that candidate's metrics into the
generation's row, and `records_dir` names the directory whose per-item records stand for it.
"""

from __future__ import annotations

from pipeline.lineage import GenerationDir, Lineage, is_generation_row


def candidate_rows(rows: list[dict]) -> list[dict]:
    """The candidates' own rows (`gen_NNN-<name>`), by generation then name."""
    return sorted((r for r in rows if not is_generation_row(r)), key=lambda r: (r["gen"], r["name"]))


def generation_rows(rows: list[dict]) -> list[dict]:
    """Each generation's own row, its selected candidate's metrics laid under its own (a generation
    that selected none keeps its row as it is)."""
    by_name = {r["name"]: r for r in rows}
    out = []
    for r in sorted(filter(is_generation_row, rows), key=lambda r: r["gen"]):
        chosen = by_name.get(r.get("selected") or "")
        if chosen is not None:
            r = {**r, "metrics": {**(chosen.get("metrics") or {}), **(r.get("metrics") or {})}}
        out.append(r)
    return out


def records_dir(lineage: Lineage, row: dict) -> GenerationDir:
    """The directory whose records stand for the generation of `row`: its selected candidate's, else its own."""
    return lineage.gen_by_name(row.get("selected") or row["name"])
