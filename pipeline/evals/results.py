"""`results.json` in lm-evaluation-harness's layout, so tools that read lm-eval output read ours.

Written by the eval stage beside `summary.json`, from the same per-item records:

    {"results": {"gsm8k_test": {"alias": "gsm8k_test",
                                "exact_match,strict-match": 0.34,          # our accuracy_strict
                                "exact_match_stderr,strict-match": 0.067,  # lm-eval's slot: sd(ddof=1)/sqrt(n)
                                "exact_match_ci_lo,strict-match": 0.22,    # our 95% interval, beside it
                                "exact_match_ci_hi,strict-match": 0.48, ...}},
     "configs": {...}, "versions": {...}, "n-shot": {...}, "higher_is_better": {...},
     "n-samples": {"gsm8k_test": {"original": 1319, "effective": 50}}, "config": {...}, "date": ...,
     "intervals": {"gsm8k_test": {"exact_match,strict-match": {estimate, lo, hi, n, method, level}}}}

Task names are the eval's own (`gsm8k_test`, `gsm8k_val`, `humaneval`); metric names and filters are
lm-eval's where it has the metric (`exact_match,strict-match` / `exact_match,flexible-extract` for
GSM8K, `pass@1,create_test` for HumanEval; MetricSpec.lm_eval), `<name>,none` otherwise.
The standard error is lm-eval's `mean_stderr` (sample standard deviation over items / sqrt(n)); the
interval is the one our tables print (Wilson for 0/1 items, else bootstrap; pipeline.stats).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from statistics import stdev

from pipeline.evals import BENCHMARKS
from pipeline.infra.io import atomic_write_json

FILE = "results.json"


def mean_stderr(values: list[float]) -> float | str:
    """lm-eval's `mean_stderr`: sample sd (ddof 1) / sqrt(n); "N/A" for fewer than two items, as lm-eval writes."""
    return stdev(values) / math.sqrt(len(values)) if len(values) > 1 else "N/A"


def task_block(name: str, spec, records: list[dict], intervals: dict) -> tuple[dict, dict, dict]:
    """(results entry, higher_is_better entry, intervals entry) of one task."""
    bench = BENCHMARKS.get(spec.benchmark)
    res: dict = {"alias": name}
    hib: dict = {}
    ivs: dict = {}
    for metric in bench.metrics:
        for m in metric.names(spec):
            key, filt = metric.lm_eval_key(m)
            values = [float(r["metrics"][m]) for r in records]
            iv = intervals[f"{name}.{m}"]
            res[f"{key},{filt}"] = sum(values) / len(values)
            res[f"{key}_stderr,{filt}"] = mean_stderr(values)
            res[f"{key}_ci_lo,{filt}"] = iv.lo
            res[f"{key}_ci_hi,{filt}"] = iv.hi
            hib[key] = metric.direction == "higher"
            ivs[f"{key},{filt}"] = {**iv.as_dict(), "pipeline_metric": f"{name}.{m}"}
    return res, hib, ivs


def results(tasks: dict[str, dict], intervals: dict, model_dir: Path, engine: dict, seed: int) -> dict:
    """The whole file. `tasks`: name -> {"spec", "records", "n_total"} (n_total: the split's size)."""
    out: dict = {"results": {}, "group_subtasks": {name: [] for name in tasks}, "configs": {}, "versions": {},
                 "n-shot": {}, "higher_is_better": {}, "n-samples": {}, "intervals": {}}
    for name, t in tasks.items():
        spec, records = t["spec"], t["records"]
        bench = BENCHMARKS.get(spec.benchmark)
        res, hib, ivs = task_block(name, spec, records, intervals)
        out["results"][name] = res
        out["higher_is_better"][name] = hib
        out["intervals"][name] = ivs
        out["versions"][name] = spec.version
        out["n-shot"][name] = spec.few_shot
        out["n-samples"][name] = {"original": t["n_total"], "effective": len(records)}
        out["configs"][name] = {
            "task": name, "dataset_path": bench.dataset or bench.name, "dataset_name": bench.dataset_config or None,
            "test_split": spec.split, "num_fewshot": spec.few_shot, "output_type": "generate_until",
            "generation_kwargs": {"until": list(spec.stop), "max_gen_toks": spec.max_tokens,
                                  "temperature": spec.temperature, "do_sample": spec.temperature > 0},
            "repeats": spec.n_samples,
            "metric_list": [{"metric": k, "aggregation": "mean", "higher_is_better": v} for k, v in hib.items()],
            "metadata": {"version": spec.version, "protocol": spec.prompt, "pipeline_task": dataclasses.asdict(spec)},
        }
    out["config"] = {"model": engine.get("backend") or "pipeline", "model_args": f"pretrained={model_dir}",
                     "batch_size": "auto", "random_seed": seed, "numpy_seed": seed, "torch_seed": seed}
    out["model_name"] = str(model_dir)
    out["date"] = time.time()
    return out


def write(out_dir: Path, tasks: dict[str, dict], intervals: dict, model_dir: Path, engine: dict, seed: int) -> Path:
    return atomic_write_json(Path(out_dir) / FILE, results(tasks, intervals, model_dir, engine, seed))
