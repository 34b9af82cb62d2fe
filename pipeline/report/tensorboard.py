"""The lineage over generations as one TensorBoard run, next to each generation's training curves.

    tensorboard --logdir checkpoints/<lineage>

shows `<lineage>/tensorboard/lineage/` (this run) beside `gen_NNN/train/...` (trl's training curves,
`train.report_to=tensorboard`). Step = generation index. For every generation's own ledger row
(promoted or rejected; a generation with several candidates carries its selected candidate's
metrics, and every candidate's own also appear under `candidates/<name>/`) each numeric metric
is a scalar tagged by its stage, `eval/gsm8k_val.format_rate`, `drift/drift.kl_to_gen0`,
`train/train.steps`, ... (metrics without a stage prefix are eval's); a metric with an interval
also gets `<tag>/ci_lo` and `<tag>/ci_hi`, and the custom-scalars layout draws the three as one
margin chart (the value inside its 95% band) in the "Custom Scalars" tab. `status/promoted` is 1 for
a promoted generation, 0 for a rejected one.

The loop rewrites the run after every generation (pipeline.report.text.write_lineage_report): built in a
temp dir and swapped in, so a resumed or re-recorded generation never leaves a duplicate point.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.infra.io import temp_dir
from pipeline.lineage import Lineage, is_generation_row
from pipeline.report.candidates import candidate_rows, generation_rows
from pipeline.stats.ledger import bounds, points

RUN = Path("tensorboard") / "lineage"
STAGES = ("drift", "train", "synth", "gate", "propose")


def tag(metric: str) -> str:
    stage = metric.split(".", 1)[0]
    return f"{stage if stage in STAGES else 'eval'}/{metric}"


def _add(out: dict, prefix: str, r: dict) -> None:
    metrics = dict(r.get("metrics") or {})
    for k, v in points(metrics).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        out.setdefault(prefix + tag(k), []).append((r["gen"], float(v)))
        lo, hi, _ = bounds(metrics, k)
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)):
            out.setdefault(f"{prefix}{tag(k)}/ci_lo", []).append((r["gen"], float(lo)))
            out.setdefault(f"{prefix}{tag(k)}/ci_hi", []).append((r["gen"], float(hi)))
    if r.get("status") in ("promoted", "rejected"):
        out.setdefault(f"{prefix}status/promoted", []).append((r["gen"], float(r["status"] == "promoted")))


def scalars(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(generation, value)] (pure data; what the run holds): each generation's row, with its
    selected candidate's metrics where it had several (pipeline.report.candidates), and every
    candidate's own under `candidates/<name>/...` (`gen_003-c1` -> `candidates/c1/eval/...`)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for r in generation_rows(rows):
        _add(out, "", r)
    for r in candidate_rows(rows):
        _add(out, f"candidates/{r['name'].split('-', 1)[1]}/", r)
    return out


def layout(tags: dict) -> dict:
    """Custom-scalars layout: a margin chart per metric with an interval, grouped by stage."""
    charts: dict[str, dict] = {}
    for t in tags:
        if f"{t}/ci_lo" in tags:
            group, name = t.split("/", 1)
            charts.setdefault(group, {})[name] = ["Margin", [t, f"{t}/ci_lo", f"{t}/ci_hi"]]
    return charts


def write(lineage_path: str | Path) -> Path:
    """(Re)write `<lineage>/tensorboard/lineage/`; returns its path."""
    from torch.utils.tensorboard import SummaryWriter

    path = Path(lineage_path)
    lineage = Lineage(path.parent, path.name)
    data = scalars(lineage.rows())
    target = lineage.path / RUN
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(target)
    try:
        w = SummaryWriter(log_dir=str(tmp))
        for t, points_ in data.items():
            for step, v in points_:
                w.add_scalar(t, v, global_step=step)
        charts = layout(data)
        if charts:
            w.add_custom_scalars(charts)
        w.close()
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
