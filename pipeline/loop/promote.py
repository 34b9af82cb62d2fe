"""Choose the successor among candidates of one generation, on validation data only.

The one promotion path: used by the generation loop (one candidate, or `propose.candidates > 1`)
and after a sweep:

    python -m pipeline.loop.promote --sweep checkpoints/<lineage>/sweeps/<time>

Every candidate already has its own gate verdict (gen_NNN-<name>/gate/manifest.json). Among those
the gate promoted, the one with the best selection metric (`candidate.select_metric`) wins: it gets
status `promoted` and becomes the TEACHER; the others get `rejected` with the reason. The selection
metric reads a slice of its own (pipeline.evals.selection), never the items the gate judged: a
selection metric that read the gate's split, or any of its items, is refused, and `selection.json`
records both slices (split, version, item ids). Test-set scores are never read here: a selection
metric that read a test split is refused (pipeline.infra.metricspec).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipeline.evals.selection import SELECTION_SLICE, SELECTION_VERSION
from pipeline.gate.items import item_values
from pipeline.infra import cli, faults, metricspec
from pipeline.infra.io import atomic_write_json, read_json
from pipeline.lineage import GenerationDir, Lineage, LineageError
from pipeline.lineage.runner import read_manifest

log = logging.getLogger(__name__)
CANDIDATE_FILE = "candidate.json"  # written by each sweep job into its Hydra output dir


def select(candidates: list[dict], metric: str | None) -> str | None:
    """Pure choice: the gate-approved candidate with the highest `metric`; ties go to the first.
    Each item: {"name", "gate_status", "metrics"}. metric None: the gate's verdict alone (a ledger
    rebuilt from one candidate's manifests, where the gate already required the metric)."""
    ok = [c for c in candidates if c["gate_status"] == "promoted"
          and (metric is None or c["metrics"].get(metric) is not None)]
    if not ok:
        return None
    if metric is None:
        return ok[0]["name"]
    return max(ok, key=lambda c: (c["metrics"][metric], -candidates.index(c)))["name"]


def candidate_view(cand: GenerationDir) -> dict:
    verdict = read_manifest(cand, "gate").info if cand.is_done("gate") else {"status": "failed"}
    metrics = read_manifest(cand, "eval").metrics if cand.is_done("eval") else {}
    return {"name": cand.name, "gate_status": verdict["status"], "reasons": verdict.get("reasons", []),
            "metrics": metrics}


def outcomes(gen: GenerationDir, views: list[dict], metric: str | None) -> tuple[str | None, dict[str, dict]]:
    """Pure: the winner and the ledger fields of every candidate and of the generation (by name)."""
    best = select(views, metric)
    if [v["name"] for v in views] == [gen.name]:  # the generation is its own candidate
        v = views[0]
        return best, {gen.name: dict(status="promoted" if best else ("failed" if v["gate_status"] == "failed" else "rejected"),
                                     model=str(gen.model_dir), gate_reasons=v["reasons"])}
    out = {}
    for v in views:
        if v["name"] == best:
            out[v["name"]] = dict(status="promoted", gate_reasons=v["reasons"])
        elif v["gate_status"] == "promoted":
            out[v["name"]] = dict(status="rejected", gate_reasons=v["reasons"] + [
                f"not selected: {metric}={v['metrics'].get(metric)} below {best}'s"])
        else:
            out[v["name"]] = dict(status="rejected" if v["gate_status"] == "rejected" else "failed",
                                  gate_reasons=v["reasons"])
    out[gen.name] = dict(status="promoted" if best else "rejected", selected=best,
                         gate_reasons=([f"selected {best} on {metric}" if metric else f"{best}: the gate's verdict"]
                                       if best else ["no candidate passed the gate"]))
    return best, out


def _recorded(cand: GenerationDir) -> dict:
    return metricspec.manifest_splits(read_manifest(cand, "eval").info if cand.is_done("eval") else None, None, None)


def slice_record(candidates: list[GenerationDir], metric: str) -> dict:
    """What `metric` read, for `selection.json`: its splits (as the eval manifests recorded them), the
    selection slice's version where it read that slice, and the item ids (the same for every candidate:
    one seeded subset per lineage; the union, should a candidate's differ)."""
    splits = sorted({s for c in candidates for s in metricspec.splits_of(metric, None, _recorded(c)) or ()})
    ids = sorted({i for c in candidates for i in (item_values(c, metric) or {})})
    out = {"metric": metric, "splits": splits, "n": len(ids), "ids": ids}
    if any(s.endswith("/" + SELECTION_SLICE) for s in splits):
        out["version"] = SELECTION_VERSION
    return out


def apart_from_gate(candidates: list[GenerationDir], metric: str, gate_metric: str) -> dict:
    """{"selection": ..., "gate": ...} slice records, after refusing a selection that read the gate's
    split or any item the gate read (the winner's inflated score would pass into the gate)."""
    sel, gate = slice_record(candidates, metric), slice_record(candidates, gate_metric)
    shared = sorted(set(sel["splits"]) & set(gate["splits"]))
    overlap = set(sel["ids"]) & set(gate["ids"])
    if shared or overlap:
        what = f"the gate's split {shared[0]}" if shared else f"{len(overlap)} of the gate's items"
        raise LineageError(f"selection among {[c.name for c in candidates]}: {metric} read {what} ({gate_metric}); "
                           "rank candidates on a disjoint slice (candidate.select_metric, pipeline.evals.selection)")
    return {"selection": sel, "gate": gate}


def apply(lineage: Lineage, gen: GenerationDir, candidates: list[GenerationDir], metric: str,
          gate_metric: str | None = None) -> str | None:
    """The one promotion path, for one candidate and for many: record each candidate's status and
    the generation's, then move the TEACHER pointer to the winner. With several candidates the winner
    is the gate-approved one with the best `metric` (the selection metric), which must read other
    items than `gate_metric` when that is given; the choice and both slices go to the generation's
    `selection.json`. A lone candidate is the gate's verdict alone. A metric that read a test split
    (by the splits each candidate's eval manifest records, else its task name) is refused, whatever its name."""
    for c in candidates:
        recorded = _recorded(c)
        if any(map(metricspec.is_test_split, metricspec.splits_of(metric, None, recorded) or ())):
            raise LineageError(f"selection among {[x.name for x in candidates]}: "
                               f"{metricspec.decision_refusal(metric, None, recorded)}")
    slices = apart_from_gate(candidates, metric, gate_metric) if gate_metric and len(candidates) > 1 else {}
    views = [candidate_view(c) for c in candidates]
    best, fields = outcomes(gen, views, metric if len(candidates) > 1 else None)
    if best:  # the pointer first: a kill before the statuses below is finished by the resumed run
        lineage.set_teacher(lineage.gen_by_name(best))
        faults.point("promote:teacher-set")
    for name, f in fields.items():
        if name != gen.name:
            lineage.record(lineage.gen_by_name(name), **f)
    if len(fields) > 1:
        atomic_write_json(gen.path / "selection.json",
                          {"metric": metric, "selected": best, "candidates": views, "slices": slices})
    lineage.record(gen, **fields[gen.name])
    return best


def repair_teacher(lineage: Lineage) -> None:
    """Make TEACHER agree with the ledger: the newest promoted generation (or the candidate it
    selected) is the teacher. Run when a loop starts, so a crash between the two writes heals."""
    promoted = [r for r in lineage.generation_rows() if r.get("status") == "promoted"]
    if not promoted:
        return
    newest = max(promoted, key=lambda r: r["gen"])
    want = newest.get("selected") or newest["name"]
    if lineage.teacher().name != want:
        log.warning("TEACHER said %s but the ledger's newest promotion is %s: repaired", lineage.teacher().name, want)
        lineage.set_teacher(lineage.gen_by_name(want))


def promote_sweep(sweep_dir: Path) -> str | None:
    found = sorted(sweep_dir.rglob(CANDIDATE_FILE))
    if not found:
        raise LineageError(f"{sweep_dir} holds no {CANDIDATE_FILE}: not a sweep of pipeline.loop.generation jobs")
    infos = [read_json(p) for p in found]
    # a job file from before selection had its own metric ranked on the gate's (refused by apply)
    keys = {(i["lineage_root"], i["lineage"], i["generation"], i["metric"], i.get("select_metric", i["metric"]))
            for i in infos}
    if len(keys) != 1:
        raise LineageError(f"{sweep_dir} mixes lineages, generations, gate or selection metrics: {sorted(keys)}")
    root, name, gen_name, gate_metric, metric = keys.pop()
    lineage = Lineage(root, name)
    lineage.rows()  # a lost or corrupt ledger is an error naming its rebuild, not a fresh partial ledger
    with lineage.lock():
        gen = lineage.gen_by_name(gen_name)
        cands = [lineage.gen_by_name(i["candidate"]) for i in infos]
        return apply(lineage, gen, cands, metric, gate_metric)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.loop.promote", description=__doc__.split("\n")[0])
    ap.add_argument("--sweep", required=True, type=Path, help="the Hydra sweep directory (multirun dir)")
    args = ap.parse_args(argv)
    try:
        best = promote_sweep(args.sweep)
    except (LineageError, OSError, ValueError, KeyError) as e:
        return cli.fail(e)
    print(f"promoted {best}" if best else "no candidate passed the gate; the teacher stays")
    return 0


if __name__ == "__main__":
    sys.exit(main())
