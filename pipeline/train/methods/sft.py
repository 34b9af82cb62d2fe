"""`sft`: supervised fine-tuning on the synth stage's verified chat rows, loss on the answer only.

    python -m pipeline.loop train.method=sft        # the default

Rows `{"messages": [user, assistant], "meta": {...}}` become trl's conversational prompt-completion
format `{"prompt": [user], "completion": [assistant]}`, so `SFTTrainer` computes the loss on the
completion only (`completion_only_loss`; our chat templates lack the `{% generation %}` markers that
`assistant_only_loss` needs). The completion is everything the chat template renders after the
generation prompt, so the end-of-turn token (`<|im_end|>`) is a trained label even where the
tokenizer's pad token is that same token (SmolLM2): trl pads labels with -100, it does not mask
pad-id labels. Fewer than `train.min_examples` usable rows is an error. The learning rate and
epochs are the teacher's proposal; `train.min_steps`/`train.max_steps` bound the step count
(pipeline.train.budget). The synthetic validation split (`synth/val.jsonl`, whole problems held
out) is the eval set: the checkpoint with the lowest eval loss is the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import Config, HParams
from pipeline.train.data import TrainDataError, chat_token_ids, check_turn, read_rows
from pipeline.train.methods.base import CHAT, CHAT_VAL, Method, Phase, Schedule


class SFT(Method):
    name = "sft"
    title = "SFT"
    data = CHAT
    val_data = CHAT_VAL
    metrics = {"train.loss_first": "loss_first", "train.loss_last": "loss_last", "train.tokens_per_s": "tokens_per_s"}
    report_columns = ("train.loss_last",)
    hparam_keys = ("learning_rate", "epochs", "lora_r")
    tags = ("trl", "sft")

    def prepare(self, path: Path, tokenizer, cfg: Config, hp: HParams) -> tuple[list[dict], dict]:
        """Rows for SFTTrainer plus stats (read, used, dropped_too_long, tokens, prompt/completion tokens)."""
        out, stats = self._convert(path, tokenizer, cfg, hp)
        if len(out) < cfg.train.min_examples:
            raise TrainDataError(
                f"{path}: {len(out)} usable training examples (read {stats['read']}, dropped "
                f"{stats['dropped_too_long']} longer than max_seq_length={hp.max_seq_length} tokens); "
                f"train.min_examples={cfg.train.min_examples}. Synthesize more data or raise max_seq_length"
            )
        return out, stats

    def prepare_val(self, path: Path, tokenizer, cfg: Config, hp: HParams) -> tuple[list[dict], dict] | None:
        return self._convert(path, tokenizer, cfg, hp) if path.exists() else None

    def _convert(self, path: Path, tokenizer, cfg: Config, hp: HParams) -> tuple[list[dict], dict]:
        rows, kwargs, max_len = read_rows(path, self.name), dict(cfg.model.chat_template_kwargs), hp.max_seq_length
        out, dropped, tokens, completion_tokens, not_prefix = [], 0, 0, 0, 0
        for i, row in enumerate(rows, 1):
            msgs = row.get("messages")
            where = f"{path}:{i}"
            if not isinstance(msgs, list) or len(msgs) < 2:
                raise TrainDataError(f"{where}: expected 'messages' with a user and an assistant turn")
            prompt = [check_turn(m, m.get("role") if isinstance(m, dict) else None, where) for m in msgs[:-1]]
            if prompt[-1]["role"] != "user":
                raise TrainDataError(f"{where}: the turn before the answer must be 'user', got {prompt[-1]['role']!r}")
            completion = [check_turn(msgs[-1], "assistant", where)]
            full = chat_token_ids(tokenizer, prompt + completion, kwargs)
            if len(full) > max_len:
                dropped += 1
                continue
            head = chat_token_ids(tokenizer, prompt, kwargs, generation_prompt=True)
            not_prefix += full[:len(head)] != head
            tokens += len(full)
            completion_tokens += len(full) - len(head)
            ex: dict[str, Any] = {"prompt": prompt, "completion": completion}
            if kwargs:  # trl passes a per-row `chat_template_kwargs` to apply_chat_template
                ex["chat_template_kwargs"] = dict(kwargs)
            out.append(ex)
        stats = {"read": len(rows), "used": len(out), "dropped_too_long": dropped, "max_seq_length": max_len,
                 "tokens": tokens, "completion_tokens": completion_tokens, "prompt_not_prefix": not_prefix}
        return out, stats

    def schedule(self, cfg: Config, hp: HParams) -> Schedule:
        return Schedule(hp.learning_rate, hp.epochs, cfg.train.max_steps)

    def build_trainer(self, phase: Phase):
        from trl import SFTConfig, SFTTrainer

        t = phase.cfg.train
        args = SFTConfig(**{
            **phase.args, "max_length": phase.hp.max_seq_length,
            "completion_only_loss": True, "packing": t.packing, "packing_strategy": "bfd",
            # packed rows are padding-free (no attention mask): count all their tokens, pad-id ones included
            **({"include_num_input_tokens_seen": "all"} if t.packing else {}),
        })
        return SFTTrainer(model=phase.model, args=args, train_dataset=phase.train_dataset,
                          eval_dataset=phase.eval_dataset, processing_class=phase.tokenizer, peft_config=phase.peft_config, callbacks=phase.callbacks)

    def card_method(self, cfg: Config, hp: HParams) -> str:
        return "trl SFT with loss on the assistant completion only"

    def card_data(self, stats: dict, file: str, sha256: str, hp: HParams) -> str:
        return (f"- `{file}`: {stats['read']} examples read, {stats['used']} used, {stats['dropped_too_long']} dropped "
                f"as longer than {hp.max_seq_length} tokens; {stats['tokens']} tokens ({stats['completion_tokens']} "
                f"in answers). sha256 {sha256}.")


METHOD = SFT()
