"""pipeline.loop.study: arms x seeds as whole lineages, sequential on CPU, one device slot each in parallel."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.report import text as report
from pipeline.loop import study
from pipeline.config import ConfigError
from pipeline.infra.io import read_json


def common(tmp_path, models_dir, *extra):
    return ["model=tiny:qwen3", "experiment=smoke", f"paths.root={tmp_path / 'ckpt'}", f"paths.models={models_dir}",
            *extra]


def test_every_packaged_study_loads_and_plans_arms_by_seeds(tmp_path):
    assert {"seeds", "accumulate", "init_from"} <= set(study.known_studies())
    s = study.load_study("accumulate", ["study.seeds=[3,4]"])
    assert s.seeds == [3, 4] and set(s.arms) == {"accumulate", "fresh"}
    plan = study.plan(s, ["generations=2"], tmp_path / "studies" / "accumulate")
    assert [(m.arm, m.seed, m.lineage) for m in plan] == [
        ("accumulate", 3, "accumulate-accumulate-s3"), ("accumulate", 4, "accumulate-accumulate-s4"),
        ("fresh", 3, "accumulate-fresh-s3"), ("fresh", 4, "accumulate-fresh-s4")]
    assert plan[2].overrides == ["generations=2", "synth.accumulate=false", "seed=3",
                                 f"paths.root={tmp_path / 'studies' / 'accumulate'}",
                                 "paths.lineage=accumulate-fresh-s3"]


@pytest.mark.parametrize("argv, msg", [
    (["model=tiny:qwen3"], "exactly one study"),
    (["study=nosuch"], "known: .*seeds"),
    (["study=seeds", "seed=3"], "set what the study sets"),
    (["study=seeds", "study.seeds=[]"], "study.seeds"),
    (["study=seeds", "study.seeds=[1,1]"], "distinct"),
    (["study=seeds", "study.arms={x: [seed=1]}"], "study.arms.x"),
    (["study=seeds", "study.nope=1"], "nope"),
])
def test_bad_studies_name_the_key(argv, msg):
    with pytest.raises(ConfigError, match=msg):
        study.run(argv)


def test_a_bad_arm_fails_before_any_lineage_runs(tmp_path, models_dir, monkeypatch):
    ran = []
    monkeypatch.setattr(study, "_run_here", lambda m: ran.append(m))
    with pytest.raises(ConfigError, match="init_from"):
        study.run(["study=init_from", "study.arms={bad: [train.init_from=nowhere]}", *common(tmp_path, models_dir)])
    assert ran == []


def test_sequential_without_devices_records_every_lineage(tmp_path, models_dir, monkeypatch):
    ran = []

    def fake(m):
        if m.seed == 1:
            raise RuntimeError("boom")
        ran.append((m.arm, m.seed))

    monkeypatch.setattr(study, "_run_here", fake)
    root, members = study.run(["study=seeds", "study.seeds=[0,1,2]", *common(tmp_path, models_dir, "candidate.devices=0")])
    assert ran == [("base", 0), ("base", 2)]  # one lineage failing leaves the others running
    rec = read_json(root / "study.json")
    assert root == (tmp_path / "ckpt" / "studies" / "seeds").resolve() and rec["devices"] == 0
    assert [(m["seed"], m["status"]) for m in rec["lineages"]] == [(0, "done"), (1, "failed"), (2, "done")]
    assert "boom" in rec["lineages"][1]["error"] and rec["finished"]
    assert rec["lineages"][0]["dir"] == str(root / "seeds-base-s0")


def test_fake_device_sets_run_lineages_in_parallel_on_disjoint_slots(tmp_path, models_dir, monkeypatch):
    running, seen, lock = set(), [], threading.Lock()
    overlap = threading.Event()

    def launch(cmd, env, log_path):
        devices = env["CUDA_VISIBLE_DEVICES"]
        with lock:
            assert devices not in running
            running.add(devices)
            seen.append((cmd, devices, env.get("VLLM_CPU_OMP_THREADS_BIND")))
            if len(running) > 1:
                overlap.set()
        overlap.wait(timeout=30)  # both slots busy at once: the lineages ran side by side
        with lock:
            running.discard(devices)
        return 0

    monkeypatch.setattr(study, "launch", launch)
    root, members = study.run(["study=init_from", "study.seeds=[0]",
                               *common(tmp_path, models_dir, "candidate.devices=2", "candidate.gpus=1")])
    assert overlap.is_set() and all(m.status == "done" for m in members)
    assert sorted(d for _, d, _ in seen) == ["0", "1"]
    cmd = seen[0][0]
    assert cmd[1:3] == ["-m", "pipeline.loop"] and any(a.startswith("paths.lineage=init_from-") for a in cmd)
    rec = read_json(root / "study.json")
    assert rec["devices"] == 2 and sorted(m["devices"] for m in rec["lineages"]) == ["0", "1"]


@pytest.mark.slow
def test_two_seed_study_of_the_tiny_model_is_compared(tmp_path, models_dir, capsys):
    """One generation per lineage, HF backend, smoke sizes; then `report --compare` on the study."""
    assert study.main(["study=seeds", "study.seeds=[0,1]", "engine.backend=hf", "generations=1",
                       *common(tmp_path, models_dir, "candidate.devices=0")]) == 0
    root = tmp_path / "ckpt" / "studies" / "seeds"
    rec = read_json(root / "study.json")
    assert [(m["seed"], m["status"]) for m in rec["lineages"]] == [(0, "done"), (1, "done")]
    for m in rec["lineages"]:
        man = read_json(root / m["lineage"] / "gen_001" / "train" / "manifest.json")
        assert man["seed"] == m["seed"]
    capsys.readouterr()
    assert report.main(["--compare", str(root), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.count("## ") == 2 and "Mean over seeds" in out and "student-t over seeds" in out
    assert "gsm8k_val.accuracy_flexible" in out


# -- controls that change one thing (pipeline.loop.arms) -----------------------------------------------

def test_random_reward_under_grpo_differs_from_the_main_arm_only_in_the_rewards():
    from pipeline.loop import arms
    from pipeline.config.compose import compose

    main, control = compose(["experiment=grpo"]), compose(["experiment=grpo", "ablation=random_reward"])
    diff = arms.differences(main, control)
    assert list(diff) == ["train.grpo.rewards"] and diff["train.grpo.rewards"][1] == [{"name": "random", "weight": 1.0}]
    assert control.train.method == main.train.method == "sft+grpo"
    assert arms.named_keys(["ablation=random_reward"]) == {"train.grpo.rewards"}
    assert {"train.method", "eval", "model", "profile"} <= arms.named_keys(["experiment=grpo"])  # defaults followed
    assert arms.check_arm("random_reward", "main", diff, ["ablation=random_reward"], []) == diff


def test_a_study_records_each_arms_difference_from_the_main_arm(tmp_path, models_dir, monkeypatch):
    monkeypatch.setattr(study, "_run_here", lambda m: None)
    root, _ = study.run(["study=accumulate", "study.seeds=[0]", "study.main=fresh",
                         *common(tmp_path, models_dir, "candidate.devices=0")])
    rec = read_json(root / "study.json")
    assert rec["version"] == 2 and rec["main"] == "fresh"
    assert rec["differences"] == {"fresh": {}, "accumulate": {"synth.accumulate": [False, True]}}
    with pytest.raises(ConfigError, match="study.main"):
        study.load_study("accumulate", ["study.main=nosuch"])


def test_a_study_refuses_an_arm_that_changes_an_unnamed_key(tmp_path, models_dir, monkeypatch, capsys):
    """An arm whose resolved config moves a key its overrides do not name (here a stand-in for a
    plugin or code default that moves with the arm) is refused before anything is written."""
    from pipeline.config import compose as compose_mod

    real = compose_mod.compose
    monkeypatch.setattr(compose_mod, "compose", lambda o=None, name="config": real(
        [*(o or []), *(["train.min_steps=3"] if any("-fresh-" in x for x in o or []) else [])], name))
    monkeypatch.setattr(study, "_run_here", lambda m: pytest.fail("ran"))
    argv = ["study=accumulate", "study.seeds=[0]", *common(tmp_path, models_dir, "candidate.devices=0")]
    assert study.main(argv) == 2
    err = capsys.readouterr().err
    assert "study.arms.fresh" in err and "['train.min_steps']" in err and "accumulate" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ckpt" / "studies").exists()
