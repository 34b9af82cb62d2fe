"""Shared test helpers, imported one way (`from tests.support import ...`); fixtures are in conftest.py.

- `ROOT`, `CONF`, `compose`: the checkout, its Hydra configs, the real config composed and validated.
- `ScriptedEngine`: the one scripted stand-in for an engine (`pipeline.engine.base.Engine`'s interface:
  `generate(prompts, params) -> [Output]`, `end_of_turn_id()`, `stats`, `close()`, a context manager).
  Give it a `rule(messages) -> reply` or subclass it and override `reply(messages, i, params)`; a reply
  is a text, a list of texts (one per sample), a `(text, finish_reason)` pair or an `Output`. Every call
  is recorded in `calls` as `(prompts, params)`.
- `BenchmarkEngine`: a scripted model that answers every `wrong_every`-th GSM8K question right (the
  rest "-1") and restates HumanEval's canonical solutions (the rest return None).
- `sgd_step_copy(src, dst)`: a copy of a model one SGD step away (a tiny training run's stand-in).
- `commands()`: every `python -m pipeline.X` command of the package.
- `gate_config(**kw)`: a small real gate config (capability and two refusal budgets).
- `engine_factory(engine, opened)`: the `open_engine(model_dir)` context manager the eval stage takes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Callable

from pipeline.config.compose import conf_dir
from pipeline.engine import GenStats, Output

ROOT = Path(__file__).resolve().parents[2]  # the checkout
CONF = conf_dir()


def compose(overrides: list[str] | None = None):
    """The real config from conf/, with overrides, as validated dataclasses (pipeline.config.Config)."""
    from pipeline.config.compose import compose as compose_config

    return compose_config(overrides)


class ScriptedEngine:
    backend = "scripted"
    supports_json_schema = False

    def __init__(self, rule: Callable | None = None, *, eot: int = 7, json_schema: bool = False) -> None:
        self.rule = rule
        self.eot = eot
        self.supports_json_schema = json_schema
        self.calls: list[tuple[list, object]] = []
        self.stats = GenStats()
        self.closed = False

    def end_of_turn_id(self) -> int:
        return self.eot

    def reply(self, messages, i: int, params):
        return self.rule(messages)

    def tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def output(self, r, params) -> Output:
        if isinstance(r, Output):
            return r
        if isinstance(r, tuple):
            text, finish = r
            return Output([text], [self.tokens(text)], [finish])
        texts = [r] if isinstance(r, str) else list(r)
        return Output(texts, [self.tokens(t) for t in texts], ["stop"] * len(texts))

    def generate(self, prompts, params) -> list[Output]:
        self.calls.append((list(prompts), params))
        outs = [self.output(self.reply(p, i, params), params) for i, p in enumerate(prompts)]
        self.stats.calls += 1
        self.stats.prompts += len(prompts)
        self.stats.completion_tokens += sum(sum(o.completion_tokens) for o in outs)
        return outs

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def gsm8k_answers() -> dict:
    """GSM8K question -> its reference final answer (test and validation)."""
    return _answers()[0]


@cache
def _answers() -> tuple[dict, dict]:
    from pipeline.evals.gsm8k import load as load_gsm8k
    from pipeline.evals.humaneval import load_problems as load_humaneval

    answers = {r["question"]: r["answer"].rsplit("#### ", 1)[1] for s in ("test", "validation", "selection")
               for r in load_gsm8k(s)}
    solutions = {p["prompt"]: p["prompt"] + p["canonical_solution"] for p in load_humaneval()}
    return answers, solutions


class BenchmarkEngine(ScriptedEngine):
    """Answers GSM8K right on every `wrong_every`-th prompt of a call (else "-1") and restates HumanEval's
    canonical solutions in a fenced block (else a body returning None); 7 tokens a completion."""

    EOT = 151645  # what it says its chat template's end-of-turn id is (Qwen3's)

    def __init__(self, wrong_every: int = 2) -> None:
        super().__init__(eot=self.EOT)
        self.wrong_every = wrong_every

    def tokens(self, text: str) -> int:
        return 7

    def reply(self, messages, i, params):
        answers, solutions = _answers()
        text = messages[-1]["content"]
        if "```python" in text:
            src = text.split("```python\n", 1)[1].rsplit("```", 1)[0]
            body = solutions[src] if i % self.wrong_every == 0 else src + "    return None\n"
            return f"Here is the function:\n```python\n{body}```"
        question = text.split("\n\n", 1)[0]
        n = answers[question] if i % self.wrong_every == 0 else "-1"
        return f"Let me think. The answer is {n}.\n#### {n}"


def engine_factory(engine, opened: list | None = None):
    """`open_engine(model_dir)` for the eval stage: yields `engine`, recording each model dir opened."""

    @contextmanager
    def open_(model_dir):
        if opened is not None:
            opened.append(model_dir)
        yield engine

    return open_


def sgd_step_copy(src, dst):
    """Copy the model and take one SGD step on a fixed token sequence, like a (tiny) training run."""
    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(src, dst)
    model = AutoModelForCausalLM.from_pretrained(str(dst), dtype=torch.float32)
    ids = torch.arange(100, 164).unsqueeze(0)
    model(input_ids=ids, labels=ids).loss.backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    model.save_pretrained(str(dst))
    return dst


NOT_COMMANDS = {"pipeline.sandbox.launcher", "pipeline.sandbox.checker"}  # the sandbox's own programs


def commands() -> list[str]:
    """Every `python -m pipeline.X`: a package with __main__.py, or a module with a __main__ block."""
    out = []
    for p in sorted((ROOT / "pipeline").rglob("*.py")):
        mod = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        if p.name == "__main__.py":
            out.append(mod.removesuffix(".__main__"))
        elif 'if __name__ == "__main__":' in p.read_text(encoding="utf-8") and mod not in NOT_COMMANDS:
            out.append(mod)
    return out


GATE_METRIC = "gsm8k_val.accuracy_flexible"


def gate_config(**kw):
    """A gate over capability and two refusal budgets (the real rules, a small config); `kw` set fields."""
    from pipeline.config import Budget, GateConfig

    g = GateConfig(metric=GATE_METRIC, epsilon=0.02, max_consecutive_rejections=3, on_max_rejections="stop",
                   require_synth_stats=True, min_verifier_precision=0.5,
                   budgets={"refusal_harmful": Budget("higher", 0.10, 0.05),
                            "over_refusal_benign": Budget("lower", 0.10, 0.05)})
    for k, v in kw.items():
        setattr(g, k, v)
    return g


def promote_two_job_sweep(lin, sweep_dir, cwd, env) -> None:
    """`promote --sweep` on a finished 2-job sweep (gen_001-j0, -j1): it exits 0, and when gen_001 is
    promoted exactly one job is, and it is the teacher."""
    res = subprocess.run([sys.executable, "-m", "pipeline.loop.promote", "--sweep", str(sweep_dir)], cwd=cwd,
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    statuses = {r["name"]: r["status"] for r in lin.rows()}
    assert statuses["gen_001"] in ("promoted", "rejected")
    if statuses["gen_001"] == "promoted":
        assert lin.teacher().name in ("gen_001-j0", "gen_001-j1")
        assert sorted(statuses[f"gen_001-j{i}"] for i in (0, 1)) == ["promoted", "rejected"]
