"""Model cards in the Hugging Face format, with the lineage and (after eval) the results.

The train stage writes a generation's card (`gen_NNN/model/README.md`, pipeline.train.export) with
front matter built by huggingface_hub's `ModelCardData`:
- `base_model`: the resolved base model's Hub id (`HuggingFaceTB/SmolLM2-135M-Instruct` for the
  embedded model, `Qwen/Qwen3-1.7B-Base` for `auto` on a GPU node; pipeline.engine.models.hub_id), omitted
  for the random test models; a generation trained from its teacher names the same base (the
  teacher is not on the Hub), its parent is in `self_post_training`;
- `self_post_training`: the lineage (name, generation, parent, teacher, init), the method, the
  data files with their sha256 and rows, the hyperparameters and where they came from; every path
  relative to the lineage directory.

The eval stage then adds its results as `model-index` (`add_results`): one entry per task and
metric (task, dataset, split, metric, value), the interval, n and the lm-eval standard error (read
from the eval's `results.json`) in the metric's `args`. The model dir's manifest never hashes the card (pipeline.engine.models.CARD), so adding
results keeps the dir valid; a manifest from before that rule is rewritten without the card first,
so a crash between the two writes leaves a valid dir either way.

    from huggingface_hub import ModelCard
    ModelCard.load("checkpoints/default/gen_001/model/README.md").data.eval_results
"""

from __future__ import annotations

from pathlib import Path

from pipeline.engine import models
from pipeline.config import EvalTask
from pipeline.evals import BENCHMARKS, card_metrics
from pipeline.evals.results import FILE as RESULTS_FILE
from pipeline.infra.io import atomic_write_json, atomic_write_text, read_json

TASK_TYPE = "text-generation"


def front_matter(*, base_model: str | None, tags: list[str], datasets: list[str], lineage: dict) -> str:
    """The card's YAML block (with its `---` fences) for a freshly trained generation."""
    from huggingface_hub import ModelCardData

    data = ModelCardData(base_model=base_model, library_name="transformers", pipeline_tag=TASK_TYPE,
                         tags=list(dict.fromkeys(tags)), datasets=datasets or None, metrics=card_metrics(),
                         model_name=f"{lineage['lineage']}/{lineage['generation']}",
                         **({"base_model_relation": "finetune"} if base_model else {}), self_post_training=lineage)
    return f"---\n{data.to_yaml()}\n---"


def eval_results(summary: dict, lm_eval: dict) -> list:
    """huggingface_hub `EvalResult`s of an eval summary: each task's metrics, in lm-eval's names, with
    the standard error the eval's `results.json` (`lm_eval`, pipeline.evals.results) computed."""
    from huggingface_hub import EvalResult

    out = []
    for name, task in summary.get("tasks", {}).items():
        spec = summary["specs"][name]
        bench = BENCHMARKS.get(task["benchmark"])
        lm = lm_eval.get("results", {}).get(name, {})
        for metric in bench.metrics:
            for m in metric.names(EvalTask(**spec)):
                iv = summary["intervals"].get(f"{name}.{m}")
                if iv is None or iv.get("estimate") is None:
                    continue
                key, filt = metric.lm_eval_key(m)
                stderr = lm.get(f"{key}_stderr,{filt}")
                out.append(EvalResult(
                    task_type=TASK_TYPE, task_name=f"{bench.title} ({name})",
                    dataset_type=bench.dataset or bench.name, dataset_name=bench.title,
                    dataset_config=bench.dataset_config or None, dataset_split=task["split"],
                    dataset_args={"n": task["n"], "seed": spec["seed"], "protocol": task["protocol"],
                                  "num_fewshot": spec["few_shot"], "version": task["version"]},
                    metric_type=key, metric_value=round(float(iv["estimate"]), 6), metric_name=f"{name}.{m}",
                    metric_config=filt,
                    metric_args={"ci_low": iv["lo"], "ci_high": iv["hi"], "ci_level": 1 - iv.get("alpha", 0.05),
                                 "ci_method": iv["method"], "n": iv["n"],
                                 **({"stderr": stderr} if stderr is not None else {})},
                    verified=False))
    return out


def _unhash_card(model_dir: Path) -> None:
    """A manifest written before the card was left out of the hashed set: rewrite it without the card."""
    path = model_dir / models.MANIFEST
    if not path.exists():
        return
    manifest = read_json(path)
    if models.CARD in manifest.get("files", {}):
        manifest["files"] = {k: v for k, v in manifest["files"].items() if k != models.CARD}
        atomic_write_json(path, manifest)


def add_results(model_dir: Path, summary_path: Path) -> Path | None:
    """Put the eval summary's results into the card's `model-index` (replacing earlier ones); the
    model dir stays valid. Returns the card's path, or None when the dir has no card."""
    from huggingface_hub import ModelCard

    card_path = Path(model_dir) / models.CARD
    if not card_path.exists():
        return None
    summary = read_json(summary_path)
    lm_path = Path(summary_path).parent / RESULTS_FILE
    lm_eval = read_json(lm_path) if lm_path.exists() else {}
    card = ModelCard.load(card_path)
    if not card.data.model_name:
        card.data.model_name = Path(model_dir).parent.name
    card.data.eval_results = eval_results(summary, lm_eval) or None
    _unhash_card(Path(model_dir))
    atomic_write_text(card_path, str(card))
    models.check_model_dir(Path(model_dir))  # still valid: the manifest does not cover the card
    return card_path
