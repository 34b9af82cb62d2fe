"""The quiet, readable run (issue 27): numbers rounded to their intervals, each stage's log.txt ending
with its done line, one progress count over every stage with an ETA from earlier generations' stage
times, the dry run that writes nothing, the `selfpost` command, `make help`, and lineage metrics in
W&B (offline) and MLflow (file store), read back with their own readers."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tomllib

import pytest

from pipeline.infra.numbers import compact_metrics, wide
from pipeline.infra import progress
from pipeline.loop import plan
from pipeline.lineage import Lineage
from pipeline.lineage.runner import Engines, Stage, StageContext, StageResult, run_stage
from tests.support import ROOT, commands, compose

METRICS = {"acc": 0.42134, "acc_lo": 0.3123, "acc_hi": 0.5311, "acc_n": 50, "loss": 1.23456789}


def test_numbers_are_rounded_to_two_digits_of_the_half_width():
    assert compact_metrics(METRICS) == "acc 0.42 [0.31, 0.53] n=50, loss 1.23"
    assert wide(0.912345, 0.9111, 0.9135) == "0.9123 [0.9111, 0.9135]"  # half-width 0.0012
    assert wide(153.7, 120.2, 187.9) == "154 [120, 188]"  # half-width 34: no decimals
    assert compact_metrics({"x": 16.0, "x_lo": 16.0, "x_hi": 16.0, "x_n": 18}) == "x 16 [16, 16] n=18"  # a point interval
    assert compact_metrics({"num_tokens": 4848.0, "lr": 7.5e-07}) == "num_tokens 4848, lr 7.50e-07"
    assert compact_metrics({f"m{i}": 1.0 for i in range(5)}, limit=2) == "m0 1, m1 1, ... and 3 more"


def lineage_with_times(tmp_path) -> tuple[object, Lineage]:
    """gen_000 and gen_001 rows with measured stage seconds (as the runner records them)."""
    cfg = compose(["model=tiny:qwen3", "experiment=smoke", f"paths.root={tmp_path / 'ck'}"])
    lin = Lineage(cfg.paths.root, cfg.paths.lineage)
    lin.init(cfg.model.spec, tmp_path / "base")
    lin.record(lin.gen(0), parent=None, teacher=None, status="promoted", seconds={"eval": 30.0, "drift": 20.0})
    lin.record(lin.gen(1), parent="gen_000", teacher="gen_000", status="rejected",
               seconds={"propose": 10.0, "synth": 100.0, "train": 300.0, "eval": 40.0, "drift": 25.0, "gate": 0.5})
    return cfg, lin


def test_stage_log_ends_with_its_done_line_and_the_run_counts_every_stage(tmp_path, caplog):
    cfg, lin = lineage_with_times(tmp_path)
    gen2, teacher = lin.gen(2), lin.gen(0)
    todo = plan.todo(cfg, lin)  # the baseline (no manifests here), then gen_002's stages
    assert todo == [("gen_000", "eval"), ("gen_000", "drift")] + [
        ("gen_002", s) for s in ("propose", "synth", "train", "eval", "drift", "gate")]
    fake = {s: Stage(s, lambda ctx: StageResult(metrics=METRICS)) for s in ("propose", "synth")}
    caplog.set_level(logging.INFO)
    with progress.tracking() as ticker:
        ticker.plan(todo, lin.rows())
        assert ticker.describe() == "stage 1/8, ETA 9 min"  # 30 + 20, then 10 + 100 + 300 + 40 + 25 + 0.5 s
        for stage in fake.values():
            run_stage(stage, StageContext(cfg, lin, gen2, teacher, stage.name, Engines(lambda d: None)))
        assert ticker.describe() == "stage 3/8, ETA 7 min" and progress.current() is ticker
    assert progress.current() is None
    assert "gen_002/synth: running (teacher gen_000, stage 2/8, ETA 9 min)" in caplog.text
    last = (gen2.path / "synth" / "log.txt").read_text().strip().splitlines()[-1]
    assert last.endswith("gen_002/synth: done in 0.0s: acc 0.42 [0.31, 0.53] n=50, loss 1.23")
    ticker.finished("gen_000", "synth")  # not planned (done before the run): strikes nothing off
    ticker.finished("gen_002-c1", "train")  # a candidate counts for its generation
    assert ticker.todo == [("gen_000", "eval"), ("gen_000", "drift"), ("gen_002", "eval"), ("gen_002", "drift"),
                           ("gen_002", "gate")]
    # a first generation has nothing to price its stages with, until the baseline's eval ran
    first = progress.Progress([("gen_000", "eval"), ("gen_001", "synth"), ("gen_001", "eval")], {})
    assert first.describe() == "stage 1/3, no ETA yet (first generation)"
    first.finished("gen_000", "eval", 120.0)
    assert first.describe() == "stage 2/3, ETA > 2 min (no earlier time for synth)"


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from pipeline.loop import generation

    root = tmp_path / "ck"
    monkeypatch.setattr(sys, "argv", ["pipeline.loop", "--dry-run", "model=tiny:qwen3", "experiment=smoke",
                                      f"paths.root={root}", "generations=2"])
    assert generation.cli() == 0
    out = capsys.readouterr().out
    assert "14 stage(s) to run" in out and "gen_000  eval" in out and "gen_002  gate" in out  # 2 + 2 x 6
    assert "math 6 problems x 48 tok, x 2 solutions x 48 tok" in out and "gsm8k_val 4 items x 1 x 32 tok" in out
    assert out.strip().endswith("nothing was written (dry run)")
    assert not root.exists()
    monkeypatch.setattr(sys, "argv", ["pipeline.loop", "--dry-run", "+unknown=1", f"paths.root={root}"])
    assert generation.cli() == 2
    assert capsys.readouterr().err.startswith("error: unknown config key 'unknown'")
    monkeypatch.setattr(sys, "argv", ["pipeline.loop", "--dry-run", "-m", "sweep=smoke"])
    assert generation.cli() == 2 and "takes overrides only, not -m" in capsys.readouterr().err
    # a lineage with earlier generations: the estimate from its stage times
    cfg, lin = lineage_with_times(tmp_path)
    text = plan.render(cfg, lin)
    assert re.search(r"gen_002  train +5 min  sft", text) and "estimated time: 9 min (from this lineage's 2 earlier" in text


def test_selfpost_dispatches_to_the_modules(capsys):
    from pipeline.__main__ import COMMANDS, main

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"selfpost": "pipeline.__main__:main"}
    assert {mod for mod, _ in COMMANDS.values()} <= set(commands())
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: selfpost") and all(f"  {name} " in out for name in COMMANDS)
    assert main(["nope"]) == 2 and capsys.readouterr().err.startswith("error: unknown command 'nope'")
    assert main(["ledger", "--help"]) == 0 and "rebuild" in capsys.readouterr().out


def test_make_help_lists_every_target():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    targets = [line.split(":")[0] for line in (ROOT / "Makefile").read_text().splitlines()
               if line and line[0].isalpha() and ": " in line + " " and "##" in line]
    assert len(targets) >= 12 and all(f"make {t} " in out for t in targets)
    assert "make generation     one generation" in out


def tracked_lineage(tmp_path) -> Lineage:
    lin = Lineage(tmp_path / "ck", "tracked")
    lin.init("tiny:qwen3", tmp_path / "base")
    m = {"gsm8k_val.accuracy": 0.25, "gsm8k_val.accuracy_lo": 0.1, "gsm8k_val.accuracy_hi": 0.5, "gsm8k_val.accuracy_n": 8}
    lin.record(lin.gen(0), parent=None, teacher=None, status="promoted", metrics=m, seconds={"eval": 3.0})
    lin.record(lin.gen(1), parent="gen_000", teacher="gen_000", status="rejected",
               metrics={**m, "gsm8k_val.accuracy": 0.125}, hparams={"learning_rate": 1e-4}, seconds={"train": 9.0})
    return lin


def test_lineage_metrics_to_wandb_offline_and_mlflow_file_store(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    mlflow = pytest.importorskip("mlflow")
    from pipeline.report import trackers

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3.x: the file store is opt-in
    lin = tracked_lineage(tmp_path)
    trackers.publish(["wandb", "mlflow"], lin)
    lin.record(lin.gen(2), parent="gen_000", teacher="gen_000", status="promoted", metrics={"gsm8k_val.accuracy": 0.5})
    trackers.publish(["wandb", "mlflow"], lin)  # sends gen_002 only, into the same runs
    state = json.loads((lin.path / "trackers.json").read_text())
    assert state["mlflow"]["sent"] == state["wandb"]["sent"] == ["gen_000", "gen_001", "gen_002"]

    client = mlflow.tracking.MlflowClient()
    hist = client.get_metric_history(state["mlflow"]["run_id"], "gsm8k_val.accuracy")
    assert sorted((h.step, h.value) for h in hist) == [(0, 0.25), (1, 0.125), (2, 0.5)]
    assert [h.value for h in client.get_metric_history(state["mlflow"]["run_id"], "promoted")] == [1.0, 0.0, 1.0]
    assert client.get_run(state["mlflow"]["run_id"]).data.tags["status.gen_001"] == "rejected"

    runs = sorted((lin.path / "wandb").glob(f"offline-run-*-{state['wandb']['run_id']}"))
    assert len(runs) == 2  # one W&B offline run directory per publish, one run id (wandb sync joins them)
    history = [h for run in runs for h in wandb_records(run / f"run-{state['wandb']['run_id']}.wandb", "history")]
    assert [(h["_step"], h["gsm8k_val.accuracy"], h["promoted"]) for h in history] == [(0, 0.25, 1), (1, 0.125, 0), (2, 0.5, 1)]
    assert history[1]["hp.learning_rate"] == 1e-4 and history[1]["gsm8k_val.accuracy_n"] == 8
    summaries = [u for run in runs for u in wandb_records(run / f"run-{state['wandb']['run_id']}.wandb", "summary")]
    assert {"status/gen_001": "rejected"} in summaries


def wandb_records(path, kind: str) -> list[dict]:
    """`kind` records (history, summary) of an offline run's `.wandb` file, decoded with W&B's own record
    schema (wandb.proto); the file is W&B's LevelDB-style log (a 7-byte `:W&B` header, 32 KiB blocks of
    records with a 7-byte crc/length/type header; types 1 full, 2 first, 3 middle, 4 last)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data, out = path.read_bytes(), []
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1
    pos, buf, block = 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind_ = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        buf = chunk if kind_ in (1, 2) else buf + chunk
        if kind_ in (1, 4):
            r = pb.Record()
            r.ParseFromString(buf)
            if r.WhichOneof("record_type") == kind:
                items = r.history.item if kind == "history" else r.summary.update
                out.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
    return out
