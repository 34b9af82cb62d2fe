"""Selecting among candidates on validation data, and giving each sweep job its own devices."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.loop import promote
from pipeline.infra.devices import claim_slot
from pipeline.infra.io import atomic_write_json
from pipeline.lineage import Lineage
from pipeline.lineage.runner import Manifest, StageResult, write_manifest
from tests.support import compose

M = "gsm8k_val.accuracy_flexible"


def cand(name, status, val, test=0.0):
    return {"name": name, "gate_status": status, "metrics": {M: val, "gsm8k_test.accuracy_flexible": test}}


def test_select_uses_validation_and_gate_only():
    cs = [cand("a", "promoted", 0.30, test=0.9), cand("b", "promoted", 0.35, test=0.1), cand("c", "rejected", 0.9)]
    assert promote.select(cs, M) == "b"  # not a (best test score), not c (gate said no)
    assert promote.select([cand("a", "promoted", 0.3), cand("b", "promoted", 0.3)], M) == "a"  # tie: first
    assert promote.select([cand("a", "rejected", 0.5)], M) is None
    assert promote.select([], M) is None


def _finished_candidate(lin, gen, name, status, val):
    c = lin.gen_by_name(f"{gen.name}-{name}")
    write_manifest(c, Manifest("eval", StageResult(metrics={M: val})))
    write_manifest(c, Manifest("gate", StageResult(info={"status": status, "reasons": [f"{name} checked"]})))
    lin.record(c, status="candidate", parent="gen_000")
    return c


def test_apply_records_statuses_and_moves_teacher(tmp_path):
    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    gen = lin.gen(1)
    lin.record(gen, status="candidate", parent="gen_000", teacher="gen_000")
    cs = [_finished_candidate(lin, gen, "j0", "promoted", 0.2), _finished_candidate(lin, gen, "j1", "promoted", 0.4),
          _finished_candidate(lin, gen, "j2", "rejected", 0.9)]
    assert promote.apply(lin, gen, cs, M) == "gen_001-j1"
    status = {r["name"]: r["status"] for r in lin.rows()}
    assert status == {"gen_001": "promoted", "gen_001-j0": "rejected", "gen_001-j1": "promoted",
                      "gen_001-j2": "rejected"}
    assert lin.teacher().name == "gen_001-j1" and lin.teacher().index == 1
    assert any("not selected" in r for r in lin.row(cs[0])["gate_reasons"])


def test_promote_cli_errors_clearly(tmp_path, capsys):
    assert promote.main(["--sweep", str(tmp_path)]) == 2
    assert "holds no candidate.json" in capsys.readouterr().err


def test_sweep_configs_compose():
    from hydra import compose as hcompose
    from hydra import initialize_config_dir

    from pipeline.config.compose import prepare
    from tests.support import CONF

    prepare()  # the built-in methods registered, their knobs in the schema
    for name in ("lr_rank", "data_size", "smoke", "optuna_lr"):
        with initialize_config_dir(str(CONF), version_base=None):
            c = hcompose("config", [f"sweep={name}"], return_hydra_config=True)
        assert c.hydra.mode.name == "MULTIRUN" and c.hydra.sweeper.params
    assert compose(["candidate.name=j0", "candidate.hparams.learning_rate=1e-3"]).candidate.hparams.learning_rate == 1e-3
    with pytest.raises(Exception, match="lerning_rate"):
        compose(["candidate.hparams.lerning_rate=1e-3"])


def test_each_job_gets_a_distinct_device_set(tmp_path):
    held, lock = [], threading.Lock()

    def job():
        with claim_slot(tmp_path, n_devices=4, per_job=2, poll=0.01) as devices:
            with lock:
                held.append(devices)
                assert len(set(held)) == len(held)  # nobody else holds these devices now
            time.sleep(0.05)
            with lock:
                held.remove(devices)
                seen.append(devices)

    seen: list[str] = []
    threads = [threading.Thread(target=job) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(seen)) == ["0,1", "2,3"] and len(seen) == 5
    with pytest.raises(RuntimeError, match="only 1 GPU"):
        with claim_slot(tmp_path, n_devices=1, per_job=2):
            pass


def test_loop_refuses_to_resume_a_sweep_generation_awaiting_promotion(tmp_path):
    from pipeline.loop.candidates import refuse_pending_sweep
    from pipeline.lineage import LineageError

    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    lin.record(lin.gen(0), status="promoted", parent=None)
    gen = lin.gen(1)
    lin.record(gen, status="candidate", parent="gen_000", teacher="gen_000")
    atomic_write_json(gen.stage_dir("propose") / "accepted.json", {"candidates": [{"hparams": {}}, {"hparams": {}}]})
    lin.record(lin.gen_by_name("gen_001-c0"), status="candidate", parent="gen_000")
    refuse_pending_sweep(lin)  # the loop's own candidates (-c<k> of the teacher's 2): it resumes them itself
    lin.record(lin.gen_by_name("gen_001-j0"), status="candidate", parent="gen_000")
    with pytest.raises(LineageError, match=r"gen_001 is a sweep generation \(gen_001-j0\).*pipeline.loop.promote --sweep"):
        refuse_pending_sweep(lin)
    lin.record(gen, status="promoted")
    refuse_pending_sweep(lin)  # once promoted, the loop goes on to gen 2
