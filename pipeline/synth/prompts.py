"""RL prompts (`gen_NNN/synth/prompts.jsonl`), what the `grpo` training method samples from.

    python -m pipeline.loop train.method=sft+grpo synth.prompts.pool_questions=64

One row per question, written by the synth stage with its other files (`stage.write`):
    {"prompt": [{"role": "user", "content": ...}], "kind": "math"|"code", "gold": number|null,
     "tests": [assert, ...], "entry_point": str, "header": str, "id": str, "source": "teacher"|"pool"}
- math: this generation's verified train-split problems (no gold: the rewards are label-free) and
  `synth.prompts.pool_questions` seeded, benchmark-clean questions of the GSM8K-train `pool` slice,
  whose `gold` only measures how often the group's majority answer is right (never in the prompt).
  The user turn is the question plus the GSM8K eval's instruction (the math checker's build_prompt),
  so the successor learns the format it is scored in.
- code: verified tasks, the user turn as in the SFT rows (the HumanEval chat instruction), with each
  of the teacher's verified asserts as its own test, the entry point and the function header the
  completion completes (pipeline.train.rewards.code_tests).
"""

from __future__ import annotations

import ast
import random

from pipeline.config import Config
from pipeline.evals import modelled_on
from pipeline.synth.decontaminate import BenchmarkIndex
from pipeline.synth.mathgen import DOMAIN, SOLVE_HEADER, checker, train_slice
from pipeline.synth.record import Group


def math_instruction(cfg: Config) -> str:
    """The instruction of the chat eval task of the benchmark the math domain is modelled on (the
    synth solve header when no such task is configured)."""
    bench = modelled_on(DOMAIN).name
    return next((t.instruction for t in cfg.eval.tasks.values() if t.benchmark == bench and t.prompt == "chat"),
                SOLVE_HEADER)


def asserts(tests: str) -> list[str]:
    """Each top-level assert of a task's test block, as source text (asserts may span lines)."""
    tree = ast.parse(tests)
    return [ast.get_source_segment(tests, n) for n in tree.body if isinstance(n, ast.Assert)]


def _number(text: str):
    n = checker().reference_number(text)
    return None if n is None else (int(n) if "." not in n else float(n))


def math_row(question: str, instruction: str, gold, rid: str, source: str) -> dict:
    return {"prompt": checker().build_prompt(question.strip(), instruction, []), "kind": "math", "gold": gold, "tests": [],
            "entry_point": "", "header": "", "id": rid, "source": source}


def pool_rows(n: int, seed: int, instruction: str, index: BenchmarkIndex) -> list[dict]:
    """`n` seeded GSM8K pool questions that match no benchmark item, gold kept."""
    if n <= 0:
        return []
    pool = train_slice("pool")
    out = []
    for r in random.Random(seed).sample(pool, len(pool)):
        if index.match(r["question"]) is None:
            out.append(math_row(r["question"], instruction, _number(r["answer"]), r["id"], "pool"))
        if len(out) == n:
            break
    return out


def prompt_rows(cfg: Config, groups: list[Group], seed: int, index: BenchmarkIndex, with_pool: bool) -> list[dict]:
    """prompts.jsonl rows from the kept train-split `groups` plus, `with_pool`, GSM8K pool questions."""
    instruction = math_instruction(cfg)
    rows = [math_row(g.text, instruction, None, g.id, "teacher") for g in groups if g.kind == "math"]
    if with_pool:
        rows += pool_rows(cfg.synth.prompts.pool_questions, seed + 7, instruction, index)
    for g in groups:
        if g.kind == "code" and g.task is not None:
            rows.append({"prompt": [{"role": "user", "content": g.text}], "kind": "code", "gold": None,
                         "tests": asserts(g.task["tests"]), "entry_point": g.task["entry_point"],
                         "header": g.task["prompt"], "id": g.id, "source": "teacher"})
    return rows
