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


def _hydra_main() -> int:
    import hydra
    from omegaconf import DictConfig

    from pipeline.infra import cli, logs
    from pipeline import evals
    from pipeline.engine import models
    from pipeline.config.compose import EXPECTED, config_path, load_config
    from pipeline.config import register
    from pipeline.engine import open_engine
    from pipeline.evals.stage import evaluate_model

    register()
    status = {"code": 0}

    @hydra.main(config_path=config_path(), config_name="config", version_base=None)
    def main(dcfg: DictConfig) -> float | None:
        try:
            cfg = load_config(dcfg)
            logs.configure(cfg.log.level)
            evals.check_inputs(cfg)
            model_dir = models.resolve(cfg.model.spec, cfg.paths.models)
        except EXPECTED as e:
            status["code"] = cli.fail(e)
            return None
        out = Path(cfg.paths.root) / "evals" / re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.model.spec).strip("_")
        result = evaluate_model(cfg, model_dir, out,
                                lambda d: open_engine(d, cfg.model, cfg.engine, seed=cfg.seed))
        print(f"wrote {out}", file=sys.stderr)
        print(json.dumps(result.metrics))
        return result.metrics.get(cfg.gate.metric)

    main()
    return status["code"]


def cli() -> int:
    from pipeline.config.compose import hydra_entry
    from pipeline.evals import check_inputs

    return hydra_entry(_hydra_main, __doc__, "pipeline.evals", inputs=check_inputs)
