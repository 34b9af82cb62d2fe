"""What the HTML report reads besides the ledger: each generation's per-item files, when present.

A stage that has not run leaves no file, so every reader returns None or [] for a missing file;
a file that exists but does not parse raises the io module's error, which names the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from pipeline.infra.io import iter_jsonl, read_json

EXAMPLES = 3  # kept and rejected synthetic rows shown per generation


def json_or_none(path: Path) -> Any:
    return read_json(path) if path.exists() else None


def head(path: Path, n: int) -> list[dict]:
    return list(islice(iter_jsonl(path), n)) if path.exists() else []


def jsonl(path: Path) -> list[dict]:
    return list(iter_jsonl(path)) if path.exists() else []


@dataclass
class GenFiles:
    """The files of one generation (or candidate) directory the report shows."""

    name: str
    decision: dict | None = None  # gate/decision.json
    accepted: dict | None = None  # propose/accepted.json
    synth_stats: dict | None = None  # synth/stats.json (None for a candidate sharing its generation's)
    synth_shared: str | None = None  # the generation whose synth/ a candidate links to
    kept: list[dict] = field(default_factory=list)  # synth/new.jsonl, first EXAMPLES
    rejected: list[dict] = field(default_factory=list)  # synth/rejected.jsonl, first EXAMPLES
    train: dict | None = None  # train/summary.json
    drift_summary: dict | None = None  # drift/summary.json
    eval_items: dict[str, list[dict]] = field(default_factory=dict)  # task -> eval/<task>.jsonl rows
    probes: list[dict] = field(default_factory=list)  # drift/probes.jsonl rows

    @property
    def gained_lost(self) -> dict[str, dict]:
        """task -> {"gained": [ids], "lost": [ids], "n"} against gen 0 (drift summary)."""
        beh = (self.drift_summary or {}).get("behaviour") or {}
        return ((beh.get("gen0") or {}).get("eval")) or {}


def read_gen(path: Path) -> GenFiles:
    """Everything the report shows from `checkpoints/<lineage>/<name>/`."""
    path = Path(path)
    eval_dir = path / "eval"
    eval_items = {p.stem: jsonl(p) for p in sorted(eval_dir.glob("*.jsonl"))} if eval_dir.is_dir() else {}
    synth = path / "synth"
    if synth.is_symlink():  # a candidate trains on its generation's data (pipeline.loop.candidates)
        return GenFiles(name=path.name, synth_shared=synth.resolve().parent.name, **_common(path, eval_items))
    return GenFiles(
        name=path.name,
        synth_stats=json_or_none(synth / "stats.json"),
        kept=head(synth / "new.jsonl", EXAMPLES),
        rejected=head(synth / "rejected.jsonl", EXAMPLES),
        **_common(path, eval_items),
    )


def _common(path: Path, eval_items: dict[str, list[dict]]) -> dict[str, Any]:
    return dict(
        decision=json_or_none(path / "gate" / "decision.json"),
        accepted=json_or_none(path / "propose" / "accepted.json"),
        train=json_or_none(path / "train" / "summary.json"),
        drift_summary=json_or_none(path / "drift" / "summary.json"),
        eval_items=eval_items,
        probes=jsonl(path / "drift" / "probes.jsonl"),
    )
