"""The `grpo` method and its rewards: rewards scored on literal completions (fast, no model), the
prompt data, config checks; GRPO on tiny models (slow): a learnable toy reward rises, and a killed
worker resumes from its complete checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config import ConfigError
from pipeline.infra.io import read_json, read_jsonl, write_jsonl
from pipeline.train.rewards import REWARDS, majority, register_reward, reward_functions
from pipeline.train.methods.grpo import METHOD as GRPO, micro_batch
from pipeline.train.stage import TrainDataError, prepare_job, run
from tests.support.synth import GOOD
from tests.support.train import LORA, make_ctx

ROOT = Path(__file__).resolve().parents[1]


def msgs(texts: list[str]) -> list[list[dict]]:
    return [[{"role": "assistant", "content": t}] for t in texts]


def prompt(q: str) -> list[dict]:
    return [{"role": "user", "content": q}]


def by_name(cfg) -> dict:
    return {f.__name__: f for f in reward_functions(cfg)}


def math_row(i: int, gold=None) -> dict:
    return {"prompt": prompt(f"What is {i} + {i}?"), "kind": "math", "gold": gold, "tests": [], "entry_point": "",
            "header": "", "id": f"m{i}"}


HEADER = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'
CODE_ROW = {"prompt": prompt(f"Complete the following Python function.\n\n```python\n{HEADER}```"), "kind": "code",
            "gold": None, "tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(0, 0) == 0",
                                    "assert add(-1, 1) == 0"], "entry_point": "add", "header": HEADER, "id": "c0"}


# -- rewards on literal completions ---------------------------------------------------------------

def test_majority_needs_two_votes_and_no_tie():
    assert majority(["5", "5", "6", None]) == "5"
    assert majority(["5", "6", "6", "5"]) is None and majority(["5", None, None, None]) is None
    assert majority([None, None]) is None


def test_math_majority_rewards_agreement_within_each_group(smoke_cfg):
    fn = by_name(smoke_cfg())["math_majority"]
    prompts = [prompt("q1")] * 4 + [prompt("q2")] * 4
    completions = msgs(["so #### 5", "The answer is 5.", "#### 6", "no idea",  # q1: majority 5
                        "#### 3", "#### 3", "#### 4", "#### 4"])  # q2: a tie, no majority
    logged = {}
    out = fn(prompts, completions, kind=["math"] * 8, gold=[5] * 4 + [None] * 4,
             log_metric=lambda k, v: logged.update({k: v}))
    assert out == [1.0, 1.0, 0.0, None, 0.0, 0.0, 0.0, 0.0]
    assert logged == {"majority_gold_agreement": 1.0}  # one group with a gold, its majority right
    fn(prompts[:4], completions[:4], kind=["math"] * 4, gold=[7] * 4, log_metric=lambda k, v: logged.update({k: v}))
    assert logged == {"majority_gold_agreement": 0.0}
    # groups are found by prompt, wherever the completions sit; code rows are not judged
    out = fn([prompt("a"), prompt("b"), prompt("a"), prompt("b")], msgs(["#### 1", "#### 2", "#### 1", "x"]),
             kind=["math", "code", "math", "code"], gold=[None] * 4)
    assert out == [1.0, None, 1.0, None]


def test_math_format_wants_a_strict_final_answer(smoke_cfg):
    fn = by_name(smoke_cfg())["math_format"]
    out = fn([prompt("q")] * 4, msgs(["2 + 3 = 5\n#### 5", "it is 5", "#### five", "The final answer is $1,000."]),
             kind=["math"] * 4)
    assert out == [1.0, 0.0, 0.0, 1.0]


def test_code_tests_scores_the_share_of_asserts_passed_in_the_sandbox(smoke_cfg):
    fn = by_name(smoke_cfg())["code_tests"]
    rigged = ("```python\nclass Any(int):\n    def __eq__(self, other):\n        return True\n\n"
              f"{HEADER}    return Any(0)\n```")
    completions = msgs([
        f"```python\n{HEADER}    return a + b\n```",  # all 4 pass
        "    return a * b",  # body only: 2*2 == 4 and 0*0 == 0 pass, 1*2 and -1*1 fail
        rigged,  # __eq__ always true: the guard rejects the int subclass
        "I cannot do this.",  # no code
    ])
    n = len(completions)
    cols = {k: [CODE_ROW[k]] * n for k in ("kind", "gold", "tests", "entry_point", "header")}
    out = fn([CODE_ROW["prompt"]] * n, completions, **cols)
    assert out == [1.0, 0.5, 0.0, 0.0]
    assert fn([prompt("m")], msgs(["#### 1"]), kind=["math"], tests=[[]], entry_point=[""], header=[""]) == [None]


def test_random_reward_is_seeded_and_resume_safe(smoke_cfg):
    class State:
        global_step = 3

    comps = msgs(["a", "b", "c", "d"])
    draw = by_name(smoke_cfg("train.method=grpo", "train.grpo.rewards=[{name:random,weight:1.0}]"))["random"]
    first = draw([prompt("q")] * 4, comps, kind=["math", "code", "math", "code"], trainer_state=State())
    assert first == draw([prompt("q")] * 4, comps, kind=["math", "code", "math", "code"], trainer_state=State())
    assert all(0 <= x < 1 for x in first) and len(set(first)) == 4
    other = by_name(smoke_cfg("train.method=grpo", "train.seed=1", "train.grpo.rewards=[{name:random,weight:1.0}]"))["random"]
    assert other([prompt("q")] * 4, comps, kind=["math"] * 4, trainer_state=State()) != first


# -- config and data ------------------------------------------------------------------------------

def test_grpo_config_is_checked(smoke_cfg):
    with pytest.raises(ConfigError, match=r"'train.grpo.rewards'.*unknown reward 'nope'"):
        smoke_cfg("train.method=sft+grpo", "train.grpo.rewards=[{name:nope,weight:1.0}]")
    with pytest.raises(ConfigError, match="'train.grpo.num_generations'"):
        smoke_cfg("train.grpo.num_generations=1")
    with pytest.raises(ConfigError, match="'train.grpo.prompts_per_step'.*num_gpus=3"):
        smoke_cfg("train.method=grpo", "train.num_gpus=3", "train.isolate=true")
    cfg = smoke_cfg("train.method=grpo", "ablation=random_reward")
    assert cfg.train.method == "grpo" and [r.name for r in cfg.train.grpo.rewards] == ["random"]
    # the control keeps the recipe's chain: without a GRPO phase it would train the main recipe unchanged
    with pytest.raises(ConfigError, match=r"'train.method': 'sft' has no grpo phase.*\['random'\]"):
        smoke_cfg("ablation=random_reward")


def test_experiment_grpo_is_the_gpu_recipe():
    from tests.support import compose

    cfg = compose(["experiment=grpo"])
    assert cfg.train.method == "sft+grpo" and cfg.train.grpo.use_vllm and cfg.profile == "gpu"
    assert "Qwen3-1.7B-Base" in cfg.model.spec


def test_micro_batches_split_the_step_exactly():
    assert micro_batch(8, 8, 1) == (8, 1) and micro_batch(8, 3, 1) == (2, 4) and micro_batch(64, 16, 2) == (16, 2)


def test_prompts_are_checked_and_counted(smoke_cfg):
    cfg = smoke_cfg("train.method=grpo", "train.grpo.min_prompts=2", "train.grpo.max_completion_length=16")
    rows = [math_row(1), math_row(2, gold=4), CODE_ROW, {**math_row(3), "prompt": prompt("long " * 2100)}]
    ctx = make_ctx(cfg, None, hparams={})
    write_jsonl(ctx.gen.path / "synth" / "prompts.jsonl", rows)
    _, job, data = prepare_job(ctx)
    assert data["grpo"] == {**data["grpo"], "read": 4, "used": 3, "dropped_too_long": 1, "other_kinds": 0,
                            "by_kind": {"math": 2, "code": 1}, "with_gold": 1}
    # math-only rewards leave the code task out (nothing would judge it)
    cfg = smoke_cfg("train.method=grpo", "train.grpo.min_prompts=2", "train.grpo.max_completion_length=16",
                    "train.grpo.rewards=[{name:math_format,weight:1.0}]")
    ctx2 = make_ctx(cfg, None, hparams={}, gen_index=2)
    write_jsonl(ctx2.gen.path / "synth" / "prompts.jsonl", rows[:3])
    assert prepare_job(ctx2)[2]["grpo"]["other_kinds"] == 1
    write_jsonl(ctx2.gen.path / "synth" / "prompts.jsonl", [{**CODE_ROW, "tests": []}])
    with pytest.raises(TrainDataError, match="prompts.jsonl:1: a code prompt needs 'tests'"):
        prepare_job(ctx2)


def test_synth_prompt_rows_carry_the_eval_instruction_and_hidden_gold(smoke_cfg):
    from pipeline.synth.decontaminate import BenchmarkIndex
    from pipeline.synth.prompts import prompt_rows
    from pipeline.synth.record import Group

    cfg = smoke_cfg("synth.prompts.pool_questions=3")
    groups = [Group("p1", "math", "Ann has 3 apples and buys 2 more. How many does she have?", [], []),
              Group("t1", "code", CODE_ROW["prompt"][0]["content"], [], [],
                    task={"prompt": HEADER, "tests": "assert add(1, 2) == 3\nassert (add(2, 2)\n        == 4)",
                          "entry_point": "add"})]
    rows = prompt_rows(cfg, groups, seed=0, index=BenchmarkIndex([], 8, 13, 0.5), with_pool=True)
    assert [(r["kind"], r["source"]) for r in rows] == [("math", "teacher")] + [("math", "pool")] * 3 + [("code", "teacher")]
    instruction = cfg.eval.tasks["gsm8k_val"].instruction
    assert rows[0]["prompt"][0]["content"].endswith(instruction) and rows[0]["gold"] is None
    assert all(isinstance(r["gold"], (int, float)) and str(r["gold"]) not in r["prompt"][0]["content"].split(".")[-1]
               for r in rows[1:4])
    assert rows[4]["tests"] == ["assert add(1, 2) == 3", "assert (add(2, 2)\n        == 4)"]
    assert rows[4]["header"] == HEADER and rows[4]["entry_point"] == "add"
    # a pool question that matches a benchmark item is skipped (GSM8K train overlaps test for ~1%)
    question = rows[1]["prompt"][0]["content"][:-len(instruction)].strip()
    clean = prompt_rows(cfg, groups, seed=0, index=BenchmarkIndex([("gsm8k", "t0", question)], 8, 13, 0.5), with_pool=True)
    assert rows[1] not in clean and clean[1:3] == rows[2:4] and len(clean) == len(rows)


# -- training on tiny models ----------------------------------------------------------------------

@pytest.fixture
def toy_reward():
    """The plugin's toy reward, registered through the public API for one test."""
    from plugins import toy_reward

    reward = register_reward(toy_reward.REWARD, replace=True)
    yield reward
    REWARDS.unregister(reward.name)


TINY = ["train.isolate=false", "train.grpo.num_generations=4", "train.grpo.prompts_per_step=2",
        "train.grpo.max_completion_length=16", "train.grpo.temperature=0.3", "train.logging_steps=1",
        "train.report_to=none", "train.per_device_batch_size=8", "train.grpo.min_prompts=4"]
GRPO_LORA = {**LORA, "lora_r": 16, "lora_alpha": 32}


def grpo_ctx(cfg, n: int = 32, gen_index: int = 1):
    ctx = make_ctx(cfg, None, GRPO_LORA, gen_index=gen_index)
    write_jsonl(ctx.gen.path / "synth" / "prompts.jsonl", [math_row(i, gold=2 * i) for i in range(n)])
    return ctx


@pytest.mark.slow
def test_grpo_raises_a_learnable_reward_and_changes_the_weights(smoke_cfg, toy_reward):
    import torch
    from safetensors.torch import load_file

    from pipeline.engine.models import check_model_dir

    cfg = smoke_cfg("train.method=grpo", *TINY, "train.grpo.max_steps=20", "train.save_steps=20",
                    "train.grpo.learning_rate=2e-2", "train.grpo.rewards=[{name:toy_projection,weight:1.0}]")
    ctx = grpo_ctx(cfg)
    res = run(ctx)
    result = read_json(ctx.out / "grpo" / "final" / "result.json")
    steps = result["reward_per_step"]
    assert result["steps"] == 20 and len(steps) == 20 and result["generation"] == "transformers"
    assert result["reference"] is False and result["rewards"] == ["toy_projection"]
    assert sum(steps[-5:]) / 5 > sum(steps[:5]) / 5  # the reward rose
    assert res.metrics["train.reward_first"] == steps[0] and res.metrics["train.reward_last"] == steps[-1]
    assert "train.majority_gold_agreement" not in res.metrics  # no math_majority reward ran
    assert result["reward_functions"]["toy_projection"]["last"] == steps[-1] and result["tokens"] > 0
    base = load_file(str(ctx.base_model_dir / "model.safetensors"))
    merged = load_file(str(check_model_dir(ctx.gen.model_dir) / "model.safetensors"))
    assert any(not torch.equal(base[k], merged[k]) for k in base)
    card = (ctx.gen.model_dir / "README.md").read_text()
    assert "- grpo" in card.split("---")[1] and "trl GRPO with label-free rewards 1*toy_projection" in card
    assert "- GRPO (learning rate 0.02" in card and "32 prompts read, 32 used (32 math" in card


@pytest.mark.slow
def test_grpo_resumes_after_the_worker_is_killed(smoke_cfg):
    """The worker dies right after its first COMPLETE checkpoint (the fault point where main has it, else
    this test kills it), and the rerun continues from that checkpoint with the reward history."""
    cfg = smoke_cfg("train.method=grpo", *TINY, "train.grpo.max_steps=6", "train.save_steps=3",
                    "train.grpo.learning_rate=1e-2", "train.grpo.rewards=[{name:math_format,weight:1.0},"
                    "{name:math_majority,weight:1.0}]")
    ctx = grpo_ctx(cfg, n=8)
    job_path, job, _ = prepare_job(ctx)
    env = {**os.environ, "PIPELINE_FAULT": "train:checkpoint-saved",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.train", str(job_path)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = ctx.out / "grpo" / "checkpoints" / "checkpoint-3" / "COMPLETE"
    try:
        while proc.poll() is None and not marker.exists():
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    assert marker.exists() and not (ctx.out / "grpo" / "final" / "result.json").exists()
    from pipeline.train.worker import train

    result = train(job)["grpo"]
    assert result["resumed_from"] == "checkpoint-3" and result["steps"] == 6 and result["session"]["steps"] == 3
    assert len(result["reward_per_step"]) == 6  # the first three steps' rewards came back with the checkpoint
    assert set(result["reward_functions"]) == {"math_format", "math_majority"}
    assert result["majority_gold_agreement"] is not None  # the prompts carry gold: the statistic was logged


def test_grpo_bench_times_the_rewards_against_the_step_time():
    """scripts/bench_grpo on literal inputs: the timer keeps each reward's name and result, and the
    figures are read off trl's `step_time` log entries (the bench itself is not run here)."""
    from scripts.bench_grpo import summarize, timed

    def math_format(prompts, completions, **_):
        time.sleep(0.01)
        return [1.0] * len(completions)

    (fn,), seconds = timed([math_format])
    assert fn.__name__ == "math_format" and fn([prompt("q")], msgs(["#### 1"])) == [1.0]
    assert seconds["math_format"] >= 0.01
    history = [{"step_time": 2.0, "reward": 0.1}, {"loss": 0.0}, {"step_time": 6.0, "reward": 0.2}]
    out = summarize(history, {"math_format": 1.0, "code_tests": 1.0}, completions_per_step=8)
    assert out["steps"] == 2 and out["samples_per_s"] == 2.0 and out["reward_share"] == 0.25
    assert out["step_time_mean_s"] == 4.0


def test_the_synth_stage_writes_prompts_for_grpo(synth_setup):
    """prompts.jsonl from the scripted teacher of test_synth: the verified math problem (no gold), pool
    questions (gold), the verified code task with its asserts one by one; the GRPO method reads it."""
    from pipeline.synth import stage

    make, _ = synth_setup
    cfg, ctx = make(1, "synth.prompts.pool_questions=2")
    res = stage.run(ctx)
    rows = read_jsonl(ctx.out / "prompts.jsonl")
    assert res.info["counts"]["prompts"] == len(rows) and res.info["paths"]["prompts"].endswith("prompts.jsonl")
    assert [(r["kind"], r["source"]) for r in rows] == [("math", "teacher"), ("math", "pool"), ("math", "pool"),
                                                         ("code", "teacher")]
    assert rows[0]["prompt"][0]["content"].startswith(GOOD) and rows[0]["gold"] is None
    assert all(r["gold"] is not None for r in rows[1:3])
    code = rows[3]
    assert code["entry_point"] == "sum_of_squares" and len(code["tests"]) >= 3
    assert all(t.startswith("assert ") for t in code["tests"]) and code["header"].startswith("def sum_of_squares")
    assert by_name(cfg)["code_tests"]([code["prompt"]], msgs(
        ["```python\ndef sum_of_squares(nums):\n    return sum(n ** 2 for n in nums)\n```"]),
        **{k: [code[k]] for k in ("kind", "gold", "tests", "entry_point", "header")}) == [1.0]
