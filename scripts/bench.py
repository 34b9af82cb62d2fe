"""make bench: every figure is a ratio measured side by side in one run, written to bench/.

    python -m scripts.bench                    # all benchmarks
    python -m scripts.bench --only stages      # just one (eval, train, grpo, synth, stages)

- eval:   sandbox scoring of the 164 canonical HumanEval solutions vs the official harness;
          generation tokens/s through vLLM vs HF (scripts/bench_eval.py)
- train:  our training stage's tokens/s vs a bare trl SFTTrainer script (scripts/bench_train.py)
- grpo:   GRPO completions/s and the share of a step spent in the reward functions (scripts/bench_grpo.py)
- synth:  verified examples per minute (scripts/bench_synth.py)
- stages: wall time of each stage of one smoke generation, and how it grows when its input doubles

Results: bench/results.json (raw) and bench/results.md (a table).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench"

# What "doubling the input" means for each stage of the smoke profile.
DOUBLED = {
    "synth": ["synth.math.n_problems=12"],
    "train": ["train.max_steps=8"],
    "eval": ["eval.tasks.gsm8k_test.n=8", "eval.tasks.gsm8k_val.n=8", "eval.tasks.humaneval.n=6"],
}


def _smoke_generation(extra: list[str]) -> dict:
    from pipeline import generation
    from pipeline.config import register, to_config
    from pipeline.lineage import Lineage

    from hydra import compose, initialize_config_dir

    register()
    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = to_config(compose("config", ["model=tiny:qwen3", "experiment=smoke", f"paths.root={tmp}",
                                           "generations=1", *extra]))
        generation.run(cfg)
        return Lineage(cfg.paths.root, cfg.paths.lineage).rows()[-1]["seconds"]


def bench_stages() -> dict:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    base = _smoke_generation([])
    doubled = _smoke_generation([o for opts in DOUBLED.values() for o in opts])
    growth = {s: round(doubled[s] / base[s], 2) for s in DOUBLED if base.get(s)}
    return {"name": "stages", "seconds": base, "seconds_doubled_input": doubled, "growth_when_doubled": growth}


def run(only: str | None) -> dict:
    results: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": {}}
    names = ["eval", "train", "grpo", "synth", "stages"]
    for name in names if only is None else [only]:
        t0 = time.time()
        try:
            res = bench_stages() if name == "stages" else importlib.import_module(f"scripts.bench_{name}").bench()
        except Exception as e:  # one broken bench must not hide the others' numbers
            traceback.print_exc()
            res = {"name": name, "error": f"{type(e).__name__}: {e}"}
        res["bench_seconds"] = round(time.time() - t0, 1)
        results["results"][name] = res
        print(json.dumps(res, default=str), flush=True)
    return results


def to_markdown(results: dict) -> str:
    lines = ["| bench | figure | value |", "| --- | --- | --- |"]
    for name, res in results["results"].items():
        for k, v in res.items():
            if k != "name":
                lines.append(f"| {name} | {k} | {json.dumps(v, default=str) if isinstance(v, dict | list) else v} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["eval", "train", "grpo", "synth", "stages"])
    args = ap.parse_args(argv)
    results = run(args.only)
    OUT.mkdir(exist_ok=True)
    from pipeline.io import atomic_write_json, atomic_write_text

    atomic_write_json(OUT / "results.json", results)
    atomic_write_text(OUT / "results.md", to_markdown(results))
    print(to_markdown(results))
    return 1 if any("error" in r for r in results["results"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
