"""`dpo`: preference optimisation on the synth stage's correct-vs-wrong pairs (iterative RPO).

    python -m pipeline.loop train.method=sft+dpo    # SFT, then DPO on the SFT model

DPO plus an NLL term on the chosen answer (Pang et al. 2024, trl loss_type ["sigmoid", "sft"] with
weights [1, train.dpo.rpo_alpha]). The reference is the phase's start model (after `sft`: the SFT
model; LoRA: merged, adapter disabled). Rows are trl's conversational preference format, checked
like SFT rows; pairs longer than `max_seq_length` are dropped and counted, fewer than
`train.dpo.min_pairs` is an error. Learning rate, epochs and max_steps are `train.dpo.*` (`DPOConfig`,
values in conf/train/default.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from pipeline.config import Config, HParams, check
from pipeline.train.data import TrainDataError, chat_token_ids, check_turn, read_rows
from pipeline.train.methods.base import PAIRS, Method, Phase, Schedule


@dataclass
class DPOConfig:
    """The `dpo` method's knobs, `train.dpo.*` (`train.method=sft+dpo`: iterative RPO, DPO plus an NLL term
    on the chosen answer, after SFT)."""

    beta: float = MISSING  # strength of the pull towards the reference (the start model: after sft, the SFT model)
    rpo_alpha: float = MISSING  # weight of the NLL term on chosen answers (trl loss_type ["sigmoid", "sft"])
    learning_rate: float = MISSING
    epochs: float = MISSING
    max_steps: int = MISSING  # -1: from epochs
    min_pairs: int = MISSING  # fewer usable pairs is an error, not a silent skip

    def validate(self) -> None:
        check(self.beta > 0, "train.dpo.beta", "must be > 0")
        check(self.rpo_alpha >= 0, "train.dpo.rpo_alpha", "must be >= 0")
        check(self.learning_rate > 0, "train.dpo.learning_rate", "must be > 0")
        check(self.max_steps == -1 or self.max_steps > 0, "train.dpo.max_steps", "must be -1 or > 0")
        check(self.min_pairs >= 1, "train.dpo.min_pairs", "must be >= 1")


class DPO(Method):
    name = "dpo"
    title = "DPO"
    config = DPOConfig
    data = PAIRS
    needs_reference = True
    metrics = {"train.dpo_loss_first": "loss_first", "train.dpo_loss_last": "loss_last"}
    tags = ("trl", "dpo")

    def prepare(self, path: Path, tokenizer, cfg: Config, hp: HParams) -> tuple[list[dict], dict]:
        """Preference rows for DPOTrainer (prompt / chosen / rejected), overlong pairs dropped and counted."""
        rows, kwargs, max_len = read_rows(path, self.name), dict(cfg.model.chat_template_kwargs), hp.max_seq_length
        out, dropped = [], 0
        for i, row in enumerate(rows, 1):
            where = f"{path}:{i}"
            if not all(isinstance(row.get(k), list) and row[k] for k in ("prompt", "chosen", "rejected")):
                raise TrainDataError(f"{where}: expected non-empty 'prompt', 'chosen' and 'rejected' message lists")
            prompt = [check_turn(m, m.get("role") if isinstance(m, dict) else None, where) for m in row["prompt"]]
            chosen = [check_turn(row["chosen"][-1], "assistant", where)]
            rejected = [check_turn(row["rejected"][-1], "assistant", where)]
            if chosen[0]["content"] == rejected[0]["content"]:
                raise TrainDataError(f"{where}: chosen and rejected are the same answer")
            longest = max(len(chat_token_ids(tokenizer, prompt + c, kwargs)) for c in (chosen, rejected))
            if longest > max_len:
                dropped += 1
                continue
            ex: dict[str, Any] = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
            if kwargs:
                ex["chat_template_kwargs"] = dict(kwargs)
            out.append(ex)
        stats = {"read": len(rows), "used": len(out), "dropped_too_long": dropped}
        if len(out) < self.knobs(cfg).min_pairs:
            raise TrainDataError(
                f"{path}: {len(out)} usable preference pairs (read {len(rows)}, dropped {dropped} longer than "
                f"{max_len} tokens); train.dpo.min_pairs={self.knobs(cfg).min_pairs}"
            )
        return out, stats

    def schedule(self, cfg: Config, hp: HParams) -> Schedule:
        d = self.knobs(cfg)
        return Schedule(d.learning_rate, d.epochs, d.max_steps)

    def build_trainer(self, phase: Phase):
        from trl import DPOConfig as DPOArguments  # trl's trainer arguments (this module's DPOConfig: our knobs)
        from trl import DPOTrainer

        d = self.knobs(phase.cfg)
        args = DPOArguments(**phase.args, max_length=phase.hp.max_seq_length, beta=d.beta,
                            loss_type=["sigmoid", "sft"], loss_weights=[1.0, d.rpo_alpha])  # RPO = DPO + alpha * NLL(chosen)
        return DPOTrainer(model=phase.model, args=args, train_dataset=phase.train_dataset,
                          processing_class=phase.tokenizer, peft_config=phase.peft_config, callbacks=phase.callbacks)

    def card_method(self, cfg: Config, hp: HParams) -> str:
        d = self.knobs(cfg)
        return (f"DPO with an NLL term on the chosen answer (beta={d.beta}, rpo_alpha={d.rpo_alpha}), "
                f"the phase's start model as reference")


METHOD = DPO()
