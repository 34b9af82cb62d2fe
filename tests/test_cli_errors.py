"""Bad input at the front door: one line `error: ...`, exit 2, and nothing written to the lineage;
`--help` on every command exits 0."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import warnings

import pytest

from tests.support import ROOT, commands

# The harness's own child program (it runs inside the sandbox, started by pipeline.sandbox), not a command.
def generation(tmp_path, *args, env=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipeline.loop", f"paths.root={tmp_path}", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_missing_model_is_named_and_nothing_is_written(tmp_path):
    res = generation(tmp_path, f"model.spec={tmp_path / 'no-such-model'}")
    assert res.returncode == 2
    assert "no-such-model does not exist" in res.stderr
    assert not (tmp_path / "default").exists()


def test_config_typo_and_bad_value_are_named(tmp_path):
    res = generation(tmp_path, "train.lerning_rate=1e-4")
    assert res.returncode == 2 and "train.lerning_rate" in res.stderr
    res = generation(tmp_path, "train.init_from=grandparent")
    assert res.returncode == 2 and "train.init_from" in res.stderr
    assert not (tmp_path / "default").exists()


def test_unknown_key_and_empty_data_dir_are_refused_before_anything_is_written(tmp_path):
    res = generation(tmp_path, "+unknown=1")
    assert res.returncode == 2 and res.stderr.startswith("error: unknown config key 'unknown'")
    assert res.stderr.count("\n") == 1  # one line, not Hydra's page
    empty = tmp_path / "data"
    empty.mkdir()
    res = generation(tmp_path, "model=tiny:qwen3", env={"PIPELINE_DATA_DIR": str(empty)})
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "eval.tasks.gsm8k_test" in res.stderr and "gsm8k/test.jsonl does not exist" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no lineage, no Hydra run dir


def test_commands_are_found():
    found = set(commands())
    assert {"pipeline.loop", "pipeline.loop.study", "pipeline.report", "pipeline.engine.models", "pipeline.train",
            "pipeline.evals.humaneval", "pipeline.loop.ledger", "pipeline.evals"} <= found


@pytest.mark.parametrize("command", commands())
def test_help_exits_0(command, monkeypatch, capsys):
    """As `python -m <command> --help`, run in this process (runpy) to keep it cheap."""
    monkeypatch.setattr(sys, "argv", [command, "--help"])
    with warnings.catch_warnings(), pytest.raises(SystemExit) as e:
        warnings.simplefilter("ignore", RuntimeWarning)  # "found in sys.modules": already imported by other tests
        runpy.run_module(command, run_name="__main__", alter_sys=True)
    out = capsys.readouterr().out
    assert e.value.code in (0, None) and "usage" in out.lower()


def test_empty_samples_file_is_an_error(tmp_path, capsys):
    from pipeline.evals import gsm8k, humaneval

    empty = tmp_path / "samples.jsonl"
    empty.write_text("")
    assert humaneval.main(["--samples", str(empty)]) == 2
    assert gsm8k.main(["--completions", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 2 and "no rows to score" in err and "note:" not in err
    assert not (tmp_path / "samples.jsonl_results.jsonl").exists()
