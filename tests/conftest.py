"""Shared fixtures (plain helpers are in tests/support.py): the real Hydra config (composed and shrunk), tiny models, offline data, in-process vLLM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import ROOT, compose

# In-process vLLM engines (no spawned workers) and a small CPU KV cache: fast and test-friendly.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
_shared = ROOT.parent / "shared" / "data"
if "PIPELINE_DATA_DIR" not in os.environ and (_shared / "gsm8k").is_dir():
    os.environ["PIPELINE_DATA_DIR"] = str(_shared)
# Provisioned models are shared across tests (and with `make setup`) so each is built once.
os.environ.setdefault("PIPELINE_MODELS_DIR", str(ROOT / "checkpoints" / "_models"))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return Path(os.environ["PIPELINE_MODELS_DIR"])


@pytest.fixture(scope="session")
def tiny_qwen3(models_dir) -> Path:
    from pipeline.engine.models import resolve

    return resolve("tiny:qwen3", models_dir)


@pytest.fixture(scope="session")
def tiny_llama(models_dir) -> Path:
    from pipeline.engine.models import resolve

    return resolve("tiny:llama", models_dir)


@pytest.fixture
def smoke_cfg(tmp_path, models_dir):
    """Factory: the smoke profile on tiny:qwen3 writing into a temp checkpoints root."""

    def make(*extra: str):
        return compose([
            "model=tiny:qwen3", "experiment=smoke", f"paths.root={tmp_path / 'ckpt'}",
            f"paths.models={models_dir}", *extra,
        ])

    return make


@pytest.fixture
def synth_setup(tmp_path, monkeypatch, smoke_cfg, tiny_qwen3):
    """Returns make(gen_index, *overrides) -> (cfg, ctx); the fake engine replaces StageContext.engine."""
    from pipeline.infra.io import atomic_write_json
    from pipeline.lineage import Lineage
    from pipeline.lineage.runner import StageContext
    from tests.support.synth import SynthTeacher, problem_script, task_script

    holder = {"engine": SynthTeacher()}
    monkeypatch.setattr(StageContext, "engine", lambda self, model_dir: holder["engine"])

    def make(gen: int = 1, *overrides: str, math_fraction: float = 0.5):
        cfg = smoke_cfg(f"synth.math.n_problems={len(problem_script())}", f"synth.code.n_tasks={len(task_script('x'))}",
                        "synth.math.k_solutions=4", "synth.math.max_solutions_per_problem=2", "synth.code.k_solutions=2",
                        "synth.val_fraction=0.0", "synth.min_anchor_examples=3", *overrides)
        lin = Lineage(cfg.paths.root, cfg.paths.lineage)
        lin.init("tiny:qwen3", tiny_qwen3)
        g = lin.gen(gen)
        atomic_write_json(g.path / "propose" / "accepted.json",
                          {"hparams": {"synth_temperature": 0.7, "num_examples": 50, "math_fraction": math_fraction}})
        return cfg, StageContext(cfg=cfg, lineage=lin, gen=g, teacher=lin.gen(0), stage="synth")

    return make, holder


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real one-node SLURM cluster with accounting (tests/slurm_cluster.py) for this session; skips
    without root or without Debian's packages (make setup-slurm). SLURM_CONF points clients at it."""
    from tests.slurm_cluster import SlurmCluster, unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    with SlurmCluster() as cluster:
        old = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = cluster.env["SLURM_CONF"]
        try:
            yield cluster
        finally:
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old
