"""Bad input at the front door: a clear message, a non-zero exit, and nothing written to the lineage."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def generation(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pipeline.generation", f"paths.root={tmp_path}", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_missing_model_is_named_and_nothing_is_written(tmp_path):
    res = generation(tmp_path, f"model.spec={tmp_path / 'no-such-model'}")
    assert res.returncode == 2
    assert "no-such-model does not exist" in res.stderr
    assert not (tmp_path / "default").exists()


def test_config_typo_and_bad_value_are_named(tmp_path):
    res = generation(tmp_path, "train.lerning_rate=1e-4")
    assert res.returncode != 0 and "train.lerning_rate" in res.stderr
    res = generation(tmp_path, "train.init_from=grandparent")
    assert res.returncode == 2 and "train.init_from" in res.stderr
    assert not (tmp_path / "default").exists()
