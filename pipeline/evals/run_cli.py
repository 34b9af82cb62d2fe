"""python -m pipeline.evals [hydra overrides]: evaluate any model on every task of `eval.tasks`.

    python -m pipeline.evals model=embedded:smollm2-135m-instruct            # -> checkpoints/evals/<model>/
    python -m pipeline.evals model=tiny:qwen3 experiment=smoke engine.backend=hf
    python -m pipeline.evals model.spec=/path/to/hf_model_dir eval=full   # any model dir or hub id
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def main(cfg) -> float | None:
    """The Hydra task of `python -m pipeline.evals`: every task of `eval.tasks` on `model.spec`;
    returns `gate.metric`, what a sweeper optimises."""
    from pipeline import evals
    from pipeline.engine import models, open_engine
    from pipeline.evals.stage import evaluate_model

    evals.check_inputs(cfg)
    model_dir = models.resolve(cfg.model.spec, cfg.paths.models)
    out = Path(cfg.paths.root) / "evals" / re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.model.spec).strip("_")
    result = evaluate_model(cfg, model_dir, out, lambda d: open_engine(d, cfg.model, cfg.engine, seed=cfg.seed))
    print(f"wrote {out}", file=sys.stderr)
    print(json.dumps(result.metrics))
    return result.metrics.get(cfg.gate.metric)


def cli() -> int:
    from pipeline.config.compose import hydra_entry, hydra_main
    from pipeline.evals import check_inputs

    # "run_cli": the job name (and `<job>.log`) it had when its Hydra function was defined here
    return hydra_entry(lambda: hydra_main(main, job="run_cli"), __doc__, "pipeline.evals", inputs=check_inputs)
