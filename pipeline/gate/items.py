"""Per-item values of a generation's metrics, from the records its stages left on disk.

    from pipeline.gate.items import item_values
    item_values(lineage.gen(2), "gsm8k_val.accuracy_flexible")   # {"gsm8k-train-17": 1.0, ...} or None

- eval metrics `<task>.<metric>`: `gen_NNN/eval/<task>.jsonl`, each record's `metrics[<metric>]` by `id`;
- probe-suite metrics `drift.<name>`: `gen_NNN/drift/probes.jsonl` through the suite registry
  (the suite's `Metric.item_values` over that suite's records);
- KL `drift.kl_<ref>`: `gen_NNN/drift/kl.jsonl`, each record's `kl_<ref>`; gen 0 is its own gen 0
  and parent, so its KL is 0 on every item (`ids`: the items to give it, the other side's).

None when the generation has no such records (the caller falls back to the point estimate); the
drift stage's other metrics (agreement, distinct-n, ...) are not per-item means and give None.

`counted_values` gives a probe metric on EVERY item of its suite as `(value, 1)` where the metric
counts the record and `(0, 0)` where not: a rate over items the model's own outputs select
(sycophancy flips among correct first answers) is then tested as the ratio it is reported as, on
the same items for both generations (`pipeline.stats.paired_ratio`), not on the items both happened
to count.
The gate and `pipeline.report.compare` read per-item values only through here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipeline import probes
from pipeline.drift.metrics import KL, REFS
from pipeline.infra.io import JsonlError, read_jsonl
from pipeline.lineage import GenerationDir


def _rows(path: Path) -> list[dict] | None:
    if not path.exists():
        return None
    try:
        return read_jsonl(path)
    except (JsonlError, ValueError, OSError):
        return None  # unreadable records: the manifest's point estimate still stands


def _suite_metric(key: str):
    for s in probes.SUITES:
        for m in s.all_metrics():
            if m.key == key:
                return s, m
    return None


def item_values(gen: GenerationDir, key: str, ids: Iterable[str] | None = None) -> dict[str, float] | None:
    """id -> value of metric `key` for generation `gen`, or None when it has no per-item records."""
    if key.startswith("drift."):
        kl_ref = next((r for r in REFS if key == KL.expand(ref=r)), None)
        if kl_ref is not None:
            if gen.index == 0:
                return {i: 0.0 for i in ids} if ids is not None else None
            rows = _rows(gen.path / "drift" / "kl.jsonl")
            field = f"kl_{kl_ref}"
            out = {r["id"]: float(r[field]) for r in rows or [] if "id" in r and r.get(field) is not None}
            return out or None
        found = _suite_metric(key)
        rows = _rows(gen.path / "drift" / "probes.jsonl") if found else None
        if not rows:
            return None
        suite, metric = found
        try:
            out = metric.item_values([r for r in rows if r.get("suite") == suite.name])
        except (KeyError, TypeError):  # records without the field a metric reads (no judge verdicts)
            return None
        return out or None
    task, _, name = key.partition(".")
    rows = _rows(gen.path / "eval" / f"{task}.jsonl")
    if not rows:
        return None
    try:
        return {r["id"]: float(r["metrics"][name]) for r in rows}
    except (KeyError, TypeError, ValueError):  # records from before per-item metrics were kept
        return None


def counted_values(gen: GenerationDir, key: str) -> dict[str, tuple[float, int]] | None:
    """id -> (value, 1) for every record of the probe metric `key`'s suite that the metric counts,
    (0.0, 0) for the others; None for any other metric or without records (see the module doc)."""
    found = _suite_metric(key) if key.startswith("drift.") else None
    rows = _rows(gen.path / "drift" / "probes.jsonl") if found else None
    if not rows:
        return None
    suite, metric = found
    try:
        return {r["id"]: ((float(metric.value(r)), 1) if metric.select(r) else (0.0, 0))
                for r in rows if r.get("suite") == suite.name} or None
    except (KeyError, TypeError):
        return None
