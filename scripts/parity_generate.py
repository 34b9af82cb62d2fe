"""The embedded model's real outputs behind the frozen parity corpus and the synthesis keep-rate sample.

Runs once, with the project's own engine and prompt code on CPU (vLLM, eager), and writes the raw
outputs; `scripts.make_parity_corpus` turns them into corpus rows and `scripts.synth_keep_rate`
verifies the saved synthesis sample. Nothing here scores anything.

    PYTHONPATH=$PWD .venv/bin/python -m scripts.parity_generate [--out tests/data] [--tasks 32] [--runs 2]

writes
  <out>/humaneval_parity/model_outputs.jsonl.gz  {task_id, protocol, sample, text, finish}: the HumanEval
      raw and chat protocols greedy on all 164 problems (--runs 3 adds the chat protocol sampled at
      temperature 0.8 on the eval's seeded 40-problem subset), as the eval builds them
      (pipeline.evals.stage build_prompts / gen_params on conf/eval/cpu.yaml's `humaneval` task);
  <out>/synth_keep/code_tasks.jsonl.gz  the synth stage's `work/code_tasks.jsonl` (texts, finishes, tokens)
      for `--tasks` task-writing prompts (codegen.task_prompts, the synth.code temperature and token cap),
      generated through `pipeline.synth.steps.Job.generate`, as the stage does (then
      `python -m scripts.synth_keep_rate --make-sample` adds the HumanEval stand-in tasks).
A file already there is not made again (delete it to regenerate). The frozen files were made with
`VLLM_CPU_OMP_THREADS_BIND=nobind OMP_NUM_THREADS=1` on 2 cores shared with other jobs: vLLM's two
bound OpenMP threads spent most of their time in barrier waits there (raw greedy, 164 prompts: 28 min
with two threads, chat greedy 12 min with one).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "embedded:smollm2-135m-instruct"
SEED = 0


def write_gz(path: Path, rows: list[dict]) -> None:
    """Deterministic gzip (no mtime), so regenerating identical rows gives identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(data)
    os.replace(tmp, path)


RUNS = (("raw", "greedy", {}), ("chat", "greedy", {}), ("chat", "t0.8", {"temperature": 0.8, "n": 40}))


def read_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def humaneval_outputs(eng, cfg, protocol: str, sample: str, change: dict) -> list[dict]:
    """One run of the eval's HumanEval task under `protocol` (`change`: sampling temperature and
    subset size n; n <= 0 is all 164 problems, a smaller n the eval's own seeded subset)."""
    from pipeline.evals.stage import build_prompts, gen_params, load_items

    spec = dataclasses.replace(cfg.eval.tasks["humaneval"], prompt=protocol, **{"n": 0, **change})
    items = load_items(spec)
    t0 = time.perf_counter()
    outs = eng.generate(build_prompts(spec, items), gen_params(spec, eng, cfg))
    print(f"humaneval {protocol}/{sample}: {len(items)} prompts in {time.perf_counter() - t0:.0f} s", flush=True)
    return [{"task_id": it["id"], "protocol": protocol, "sample": sample, "text": o.texts[0],
             "finish": o.finish_reasons[0]} for it, o in zip(items, outs)]


def synth_outputs(eng, cfg, n_tasks: int, work: Path) -> list[dict]:
    from pipeline.engine import GenParams
    from pipeline.synth import codegen
    from pipeline.synth.steps import Job, Steps

    cc = cfg.synth.code
    job = Job(cfg=cfg, engine=eng, steps=Steps(work, {"parity_sample": n_tasks}), seed=SEED, gen=1, hp={}, index=None)
    reqs = codegen.task_prompts(n_tasks, job.seed + 10, cc.min_asserts)  # the seed offset synth_code uses
    t0 = time.perf_counter()
    rows = job.generate([r["messages"] for r in reqs], GenParams(temperature=cc.task_temperature,
                                                                 max_tokens=cc.max_tokens_task))
    print(f"synth code tasks: {len(rows)} prompts in {time.perf_counter() - t0:.0f} s", flush=True)
    return [{**r, "topic": q["topic"]} for r, q in zip(rows, reqs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "tests" / "data"))
    ap.add_argument("--tasks", type=int, default=32, help="synthesis task-writing prompts")
    ap.add_argument("--runs", type=int, default=2,
                    help="how many of RUNS: raw greedy, chat greedy (the frozen corpus), chat sampled")
    a = ap.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import tempfile

    from pipeline.engine import models
    from pipeline.config.compose import compose
    from pipeline.engine import open_engine

    cfg = compose([f"model={MODEL}", "experiment=cpu", f"seed={SEED}"])
    out = Path(a.out)
    model_dir = models.resolve(cfg.model.spec, cfg.paths.models)
    parts = out / "humaneval_parity" / "parts"
    with open_engine(model_dir, cfg.model, cfg.engine, seed=SEED) as eng, tempfile.TemporaryDirectory() as work:
        # Each piece is written as soon as it is done (on 2 shared cores the whole run takes long);
        # a piece already on disk is not made again.
        for protocol, sample, change in RUNS[:a.runs]:
            part = parts / f"{protocol}-{sample}.jsonl.gz"
            if not part.exists():
                write_gz(part, humaneval_outputs(eng, cfg, protocol, sample, change))
        if a.tasks and not (out / "synth_keep" / "code_tasks.jsonl.gz").exists():
            write_gz(out / "synth_keep" / "code_tasks.jsonl.gz", synth_outputs(eng, cfg, a.tasks, Path(work)))
    rows = [r for protocol, sample, _ in RUNS[:a.runs] for r in read_gz(parts / f"{protocol}-{sample}.jsonl.gz")]
    write_gz(out / "humaneval_parity" / "model_outputs.jsonl.gz", rows)

if __name__ == "__main__":
    main()
