"""Reward functions for RL training (the `grpo` method), built on the eval's own checkers.

    train.grpo.rewards=[{name:math_majority,weight:1.0},{name:math_format,weight:0.5}]
    register_reward(Reward("mine", ("math",), build))   # a plugin's or a test's reward

Every reward has trl's signature `f(prompts, completions, **columns) -> list[float | None]`: one value
per completion, None where it does not judge (trl turns None into NaN and leaves it out of the sums).
The columns are those of `synth/prompts.jsonl` (pipeline.synth.prompts): `kind` (math|code), `gold`
(a number for GSM8K pool questions, never shown to the model), `tests`, `entry_point`, `header`.
A reward scores only the rows of its `kinds`; the others get None, so math and code rewards share
one dataset. trl hands the completions of one prompt over together (num_generations of them).

- `math_majority` (label-free): a completion whose answer (the math domain's checker, pipeline.synth.mathgen.checker: strict `#### N`
  first, flexible last number second, as the synth vote reads samples) equals its group's majority
  answer gets 1, another answer 0, no answer None. The majority needs two agreeing samples and no tie
  (one sample cannot agree with itself), else the group has none and every answer gets 0. It logs
  `majority_gold_agreement`: the share of groups with a known gold whose majority is that gold.
- `math_format`: 1 for a strict-extractable final answer (`#### N`, the checker's extract_strict), else 0.
- `code_tests`: the share of the teacher's verified asserts the completion's function passes. Each
  completion is one GuardedProgram (pipeline.synth.codegen.check_program) whose asserts are judged
  one by one, all served by one sandbox session; the asserts run in a sandboxed checker with the
  task's header as context, so the reward depends only on the values the policy's function returns
  (a rigged object, tampering with the tests or the checker, forged channel bytes: 0 for that
  assert or the whole completion). The batch runs in one `run_programs` call, never in the trainer.
- `random`: a uniform number in [0, 1) from (train.seed, step, completion): the control arm
  `ablation=random_reward`; a hash, so a resumed run draws what the uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from functools import wraps
from typing import Callable

from pipeline.config import Config
from pipeline.infra.registry import Registry

KINDS = ("math", "code")
RewardFn = Callable[..., list]


@dataclass(frozen=True)
class Reward:
    name: str
    kinds: tuple[str, ...]  # prompt kinds it scores (rows of other kinds get None)
    build: Callable[[Config], RewardFn]  # the config -> the reward function
    # A control (the random reward of `ablation=random_reward`): configured without a GRPO phase it
    # would train nothing, and the control arm would silently run another recipe; the grpo method refuses.
    control: bool = False


REWARDS: Registry[Reward] = Registry("reward")


def register_reward(reward: Reward, replace: bool = False) -> Reward:
    """Add a reward; `train.grpo.rewards` can then name it."""
    return REWARDS.register(reward, replace=replace)


def text_of(completion) -> str:
    """A completion's text: trl hands conversational completions as `[{"role": "assistant", "content": ...}]`."""
    return completion[-1]["content"] if isinstance(completion, list) else str(completion)


# -- math -------------------------------------------------------------------------------------------

def math_answer(text: str) -> str | None:
    """The normalized final answer as the eval reads it (strict first, flexible second), or None."""
    from pipeline.synth.mathgen import checker  # the checker of the benchmark the math domain is modelled on

    g = checker()
    return g.normalize_number(g.extract_strict(text)) or g.normalize_number(g.extract_flexible(text))


def groups(prompts: list) -> list[list[int]]:
    """Indices of the completions of each distinct prompt, in order of first appearance."""
    out: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        out.setdefault(json.dumps(p, sort_keys=True), []).append(i)
    return list(out.values())


def majority(answers: list[str | None]) -> str | None:
    """The answer at least two samples share and no other answer matches in count, or None."""
    top = Counter(a for a in answers if a is not None).most_common(2)
    if not top or top[0][1] < 2 or (len(top) > 1 and top[1][1] == top[0][1]):
        return None
    return top[0][0]


def math_majority(prompts, completions, gold=None, log_metric=None, **_) -> list[float | None]:
    from pipeline.synth.mathgen import checker

    is_correct = checker().is_correct
    answers = [math_answer(text_of(c)) for c in completions]
    out: list[float | None] = [None if a is None else 0.0 for a in answers]
    agree = []
    for idx in groups(prompts):
        maj = majority([answers[i] for i in idx])
        for i in idx:
            if maj is not None and answers[i] == maj:
                out[i] = 1.0
        g = gold[idx[0]] if gold is not None else None
        if g is not None:
            agree.append(float(maj is not None and is_correct(maj, g)))
    if agree and log_metric is not None:
        log_metric("majority_gold_agreement", sum(agree) / len(agree))
    return out


def math_format(prompts, completions, **_) -> list[float]:
    from pipeline.synth.mathgen import checker

    g = checker()
    return [float(g.normalize_number(g.extract_strict(text_of(c))) is not None) for c in completions]


# -- code -------------------------------------------------------------------------------------------

def code_tests(cfg: Config) -> RewardFn:
    from pipeline.sandbox import run_programs
    from pipeline.synth.codegen import check_program, completion_code

    def score(prompts, completions, tests, entry_point, header, **_) -> list[float]:
        codes = [completion_code(text_of(c), {"entry_point": e, "prompt": h})
                 for c, e, h in zip(completions, entry_point, header)]
        # One sandbox session per completion serves all of its asserts, each judged on its own.
        progs = [(i, check_program(code, list(ts), e, h)) for i, (code, ts, e, h)
                 in enumerate(zip(codes, tests, entry_point, header)) if code is not None and ts]
        passed = [0] * len(completions)
        for (i, _), r in zip(progs, run_programs([p for _, p in progs], cfg.sandbox)):
            passed[i] = sum(r.cases)
        return [passed[i] / len(ts) if ts else 0.0 for i, ts in enumerate(tests)]

    return score


# -- control ----------------------------------------------------------------------------------------

def random_reward(cfg: Config) -> RewardFn:
    seed = cfg.train.seed

    def draw(prompts, completions, trainer_state=None, **_) -> list[float]:
        step = trainer_state.global_step if trainer_state is not None else 0
        out = []
        for i, c in enumerate(completions):
            h = hashlib.sha256(f"{seed}:{step}:{i}:{text_of(c)}".encode()).digest()
            out.append(int.from_bytes(h[:8], "big") / 2**64)
        return out

    return draw


register_reward(Reward("math_majority", ("math",), lambda cfg: math_majority))
register_reward(Reward("math_format", ("math",), lambda cfg: math_format))
register_reward(Reward("code_tests", ("code",), code_tests))
register_reward(Reward("random", KINDS, random_reward, control=True))


# -- what the trainer gets --------------------------------------------------------------------------

def _only_kinds(fn: RewardFn, reward: Reward) -> RewardFn:
    """`fn` on the rows of `reward.kinds` only (per-completion columns subset alike), None elsewhere."""

    @wraps(fn)
    def scoped(prompts, completions, kind=None, **columns):
        n = len(completions)
        idx = [i for i in range(n) if kind is None or kind[i] in reward.kinds]
        out: list = [None] * n
        if idx:
            sub = {k: [v[i] for i in idx] if isinstance(v, list) and len(v) == n else v for k, v in columns.items()}
            for i, r in zip(idx, fn([prompts[i] for i in idx], [completions[i] for i in idx], **sub)):
                out[i] = r
        return out

    scoped.__name__ = reward.name  # trl logs rewards/<__name__>/mean
    return scoped


def reward_functions(cfg: Config) -> list[RewardFn]:
    """The functions of `train.grpo.rewards`, in order (their weights: `reward_weights`)."""
    return [_only_kinds(r.build(cfg), r) for r in (REWARDS.get(s.name) for s in cfg.train.grpo.rewards)]


def reward_weights(cfg: Config) -> list[float]:
    return [float(s.weight) for s in cfg.train.grpo.rewards]


def kinds_scored(cfg: Config) -> set[str]:
    """The prompt kinds at least one configured reward judges (other prompts would teach nothing)."""
    return {k for s in cfg.train.grpo.rewards for k in REWARDS.get(s.name).kinds}
