"""`make gpu-check`'s dry run: argument parsing, the check list, and the checks that need no GPU."""

from __future__ import annotations

import pytest

from scripts import gpu_check


def test_dry_run_runs_the_cpu_checks_and_lists_the_rest(capsys):
    assert gpu_check.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[1]: ln.split()[0] for ln in out.splitlines() if ln.split()[:1] in (["PASS"], ["FAIL"], ["SKIP"])}
    assert list(lines) == [c.name for c in gpu_check.CHECKS]  # every check is reported, in order
    assert lines["engine-plan"] == "PASS" and lines["bf16-train-step"] == "PASS"
    gpu_only = {"cuda", "vllm-engine", "ddp", "tensor-parallel", "replicas", "sleep-wake", "smoke-generation"}
    assert {n for n, s in lines.items() if s == "SKIP"} == gpu_only
    assert "tensor_parallel_size=1, replicas=1" in out


def test_only_and_unknown_names():
    assert gpu_check.parse_args(["--only", "ddp,cuda"]).only == "ddp,cuda"
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--only", "nope"])


def test_a_failure_is_reported_and_fails_the_run(tmp_path):
    def boom(env):
        raise AssertionError("broken")

    def skip(env):
        env.need_gpus(4)

    lines = []
    env = gpu_check.Env(dry_run=False, gpus=1, model_dir=tmp_path)
    res = gpu_check.run_checks([gpu_check.Check("a", boom, ""), gpu_check.Check("b", skip, ""),
                                gpu_check.Check("c", lambda e: "fine", "")], env, 60, out=lines.append)
    assert res == {"a": "FAIL", "b": "SKIP", "c": "PASS"}
    assert "AssertionError: broken" in lines[0] and "needs 4 GPU(s), 1 visible" in lines[1]


def test_the_deadline_stops_a_check():
    import time

    lines = []
    res = gpu_check.run_checks([gpu_check.Check("slow", lambda e: time.sleep(30) or "", ""),
                                gpu_check.Check("next", lambda e: "x", "")],
                               gpu_check.Env(False, 0, None), 0.2, out=lines.append)
    assert res == {"slow": "FAIL", "next": "SKIP"} and "deadline" in lines[0]
