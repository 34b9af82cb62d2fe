"""`pip install .` ships the Hydra configs inside the package: an installed pipeline composes its
configs outside the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT


@pytest.mark.slow
def test_installed_package_composes_its_configs_outside_the_checkout(tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(ROOT)], check=True, capture_output=True, timeout=600)
    assert (site / "pipeline" / "conf" / "config.yaml").is_file()
    assert (site / "bin" / "selfpost").is_file()  # the console script ([project.scripts])
    code = ("import json; from pipeline.config.compose import compose; from pipeline.infra.locate import conf_dir; "
            "c = compose(['model=tiny:qwen3', 'experiment=smoke']); "
            "print(json.dumps({'conf': str(conf_dir()), 'profile': c.profile, 'tasks': sorted(c.eval.tasks)}))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(site)},
                         check=True, capture_output=True, text=True, timeout=300)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["conf"].startswith(str(site)) and got["profile"] == "smoke"
    assert got["tasks"] == ["gsm8k_sel", "gsm8k_test", "gsm8k_val", "humaneval"]
