"""Lineage-level metrics to W&B or MLflow: after each generation, the report table's row of every
generation not sent yet, one step per generation (step = the generation's index), in one run per
lineage (`log.trackers=[wandb]`, `[mlflow]` or both).

    python -m pipeline.loop log.trackers=[wandb,mlflow]        # needs: pip install -e '.[tracking]'
    WANDB_MODE=offline python -m pipeline.loop log.trackers=[wandb]    # then: wandb sync <lineage>/wandb/offline-run-*
    MLFLOW_TRACKING_URI=file:///abs/mlruns python -m pipeline.loop log.trackers=[mlflow]

Where they write is each tracker's own setting (WANDB_PROJECT, WANDB_MODE, MLFLOW_TRACKING_URI,
MLFLOW_EXPERIMENT_NAME); the run is named after the lineage, the project/experiment defaults to
`self-post-train`, and W&B's local files go under `<lineage>/wandb/`. `<lineage>/trackers.json` (this
module its one writer) keeps each tracker's run id and the generations already sent, so a resumed
or re-run lineage continues the same run and sends no step twice. Training curves reach the same
trackers separately, through `train.report_to` (transformers' callbacks, per training run).

A tracker that fails (offline host, bad credentials) is logged as an error: the generation's own
files are already safe, so it is not a failed generation.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from pipeline.infra.io import atomic_write_json, read_json
from pipeline.lineage import Lineage
from pipeline.report.text import flatten

log = logging.getLogger(__name__)
PROJECT = "self-post-train"


def numbers(row: dict) -> dict[str, float]:
    """A ledger row's table row, numbers only (a tracker plots numbers), plus `promoted` as 0/1."""
    flat = flatten(row)
    out = {k: float(v) for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out["promoted"] = float(row.get("status") == "promoted")
    return out


def _wandb(lineage: Lineage, rows: list[dict], state: dict) -> dict:
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")  # the quiet log: no W&B banner lines
    run = wandb.init(project=os.environ.get("WANDB_PROJECT", PROJECT), name=lineage.name, dir=str(lineage.path),
                     id=state.get("run_id"), resume="allow", config={"lineage": str(lineage.path)},
                     settings=wandb.Settings(console="off", silent=True))
    try:
        for r in rows:
            run.log(numbers(r), step=r["gen"])
            run.summary[f"status/{r['name']}"] = r.get("status")
    finally:
        run.finish()
    return {"run_id": run.id}


def _mlflow(lineage: Lineage, rows: list[dict], state: dict) -> dict:
    import mlflow

    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT))
    with mlflow.start_run(run_id=state.get("run_id"), run_name=None if state.get("run_id") else lineage.name) as run:
        mlflow.set_tag("lineage", str(lineage.path))
        for r in rows:
            mlflow.log_metrics(numbers(r), step=r["gen"])
            mlflow.set_tag(f"status.{r['name']}", r.get("status"))
        return {"run_id": run.info.run_id}


# one writer per tracker; the config's allowed names (pipeline.config.runtime.TRACKERS) are these keys
PUBLISHERS: dict[str, Callable[[Lineage, list[dict], dict], dict]] = {"wandb": _wandb, "mlflow": _mlflow}


def publish(names: list[str], lineage: Lineage) -> None:
    """Send the finished generations' rows not sent yet to each tracker in `names`."""
    if not names:
        return
    path = lineage.path / "trackers.json"
    state = read_json(path) if path.exists() else {}
    rows = [r for r in lineage.generation_rows() if r.get("status") != "candidate"]
    for name in names:
        mine = state.get(name, {})
        new = [r for r in rows if r["name"] not in mine.get("sent", [])]
        if not new:
            continue
        try:
            got = PUBLISHERS[name](lineage, new, mine)
        except Exception as e:  # an offline host, credentials, a tracker's own bug: the generation stands
            log.error("could not send %d generation row(s) to %s: %s: %s", len(new), name, type(e).__name__, e)
            continue
        state[name] = {**got, "sent": mine.get("sent", []) + [r["name"] for r in new]}
        atomic_write_json(path, state)
        log.info("%s: sent %s", name, ", ".join(r["name"] for r in new))
