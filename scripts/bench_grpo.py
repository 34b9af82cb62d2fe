"""GRPO throughput: completions sampled per second, and the share of a step spent inside the rewards.

    .venv/bin/python -m scripts.bench_grpo             # prints the dict `bench()` returns
    python -m scripts.bench --only grpo

Our `grpo` method (pipeline/train/methods/grpo.py) on the smoke profile, its default rewards
(math_majority + math_format on GSM8K-style questions, code_tests in the sandbox on a code task),
built by the worker as the train stage would and trained for STEPS steps in this process. Each
reward function is wrapped in a timer; trl logs every optimizer step's wall time (`step_time`,
generation included). Figures: samples/s = completions per step * steps / sum(step_time);
reward_share = seconds inside the reward functions / sum(step_time) (the sandbox is most of it).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from functools import wraps
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = os.environ.get("BENCH_GRPO_MODEL", "tiny:qwen3")
STEPS = 8
HPARAMS = {"learning_rate": 1e-3, "epochs": 1, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "batch_size": 4,
           "max_seq_length": 512, "warmup_ratio": 0.0, "num_examples": 16, "math_fraction": 1.0,
           "synth_temperature": 0.8}
CODE_HEADER = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'


def timed(fns: list) -> tuple[list, dict]:
    """`fns` wrapped to add their wall seconds to the returned {name: seconds} (names kept for trl's logs)."""
    seconds = {f.__name__: 0.0 for f in fns}

    def wrap(f):
        @wraps(f)
        def inner(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                seconds[f.__name__] += time.perf_counter() - t0
        return inner

    return [wrap(f) for f in fns], seconds


def summarize(log_history: list[dict], reward_seconds: dict, completions_per_step: int) -> dict:
    """The bench's figures from trl's log history (one `step_time` per optimizer step) and the reward timers."""
    steps = [h["step_time"] for h in log_history if "step_time" in h]
    total = sum(steps)
    inside = sum(reward_seconds.values())
    return {"steps": len(steps), "step_time_mean_s": round(total / len(steps), 3),
            "samples_per_s": round(completions_per_step * len(steps) / total, 2),
            "reward_share": round(inside / total, 4),
            "reward_seconds": {k: round(v, 3) for k, v in reward_seconds.items()}}


def _rows() -> list[dict]:
    from pipeline.synth.prompts import math_row

    rows = [math_row(f"Tom has {i} apples and buys {i + 3} more. How many apples does he have now?",
                     'Solve this math problem step by step. Write the final answer on the last line as "#### <number>".',
                     2 * i + 3, f"m{i}", "pool") for i in range(12)]
    code = {"prompt": [{"role": "user", "content": f"Complete the following Python function.\n\n```python\n{CODE_HEADER}```"}],
            "kind": "code", "gold": None, "tests": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
            "entry_point": "add", "header": CODE_HEADER, "source": "teacher"}
    return rows + [{**code, "id": f"c{i}"} for i in range(4)]


def bench() -> dict:
    from hydra import compose, initialize_config_dir

    from pipeline.engine import models
    from pipeline.config import to_config
    from pipeline.config.compose import prepare
    from pipeline.infra.io import atomic_write_json, write_jsonl
    from pipeline.lineage import Lineage
    from pipeline.lineage.runner import StageContext
    from pipeline.train.stage import prepare_job
    from pipeline.train.worker import build_trainer

    prepare()  # the built-in methods' knobs in the schema
    with tempfile.TemporaryDirectory() as d, initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = to_config(compose("config", [
            f"model={MODEL}", "experiment=smoke", f"paths.root={d}", "train.method=grpo", "train.isolate=false",
            f"train.grpo.max_steps={STEPS}", f"train.save_steps={STEPS}", "train.report_to=none",
            "train.logging_steps=1", "train.per_device_batch_size=8", "train.grpo.max_completion_length=64",
        ]))
        lineage = Lineage(cfg.paths.root, cfg.paths.lineage)
        lineage.init(cfg.model.spec, models.resolve(cfg.model.spec, cfg.paths.models))
        gen = lineage.gen(1)
        atomic_write_json(gen.path / "propose" / "accepted.json", {"hparams": HPARAMS})
        write_jsonl(gen.path / "synth" / "prompts.jsonl", _rows())
        ctx = StageContext(cfg=cfg, lineage=lineage, gen=gen, teacher=lineage.gen(0), stage="train")
        _, job, _ = prepare_job(ctx)
        trainer = build_trainer(job)
        trainer.reward_funcs, seconds = timed(list(trainer.reward_funcs))
        trainer.train()
        g = cfg.train.grpo
        return {"name": "grpo", "model": MODEL, "max_completion_length": g.max_completion_length,
                **summarize(trainer.state.log_history, seconds, g.prompts_per_step * g.num_generations)}


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    print(json.dumps(bench(), indent=2))
