"""A training method from outside the package: plain causal-LM loss on the whole conversation.

    plugins: [plugins.toy_method]        # with tests/ on sys.path (pytest puts it there)
    train.method=toy_lm

Unlike `sft` (trl, loss on the answer only) it renders each chat row to one text with the chat
template, trains every token of it, prompt included, with a bare transformers `Trainer`, and applies
LoRA itself. tests/test_method_registry.py trains it through the train stage.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Config, HParams
from pipeline.infra.io import read_jsonl
from pipeline.train.data import TrainDataError
from pipeline.train.methods import register_method
from pipeline.train.methods.base import CHAT, Method, Phase, Schedule


class ToyLM(Method):
    name = "toy_lm"
    title = "Toy LM"
    data = CHAT
    metrics = {"train.toy_lm_loss_first": "loss_first", "train.toy_lm_loss_last": "loss_last"}
    report_columns = ("train.toy_lm_loss_last",)
    tags = ("toy-lm",)

    def prepare(self, path: Path, tokenizer, cfg: Config, hp: HParams) -> tuple[list[dict], dict]:
        if not path.exists():
            raise TrainDataError(f"{path} does not exist: training method {self.name!r} reads it")
        rows = read_jsonl(path)
        out, dropped = [], 0
        for row in rows:
            text = tokenizer.apply_chat_template(row["messages"], tokenize=False, **cfg.model.chat_template_kwargs)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) > hp.max_seq_length:
                dropped += 1
                continue
            out.append({"input_ids": ids})
        if len(out) < cfg.train.min_examples:
            raise TrainDataError(f"{path}: {len(out)} usable rows; train.min_examples={cfg.train.min_examples}")
        return out, {"read": len(rows), "used": len(out), "dropped_too_long": dropped}

    def schedule(self, cfg: Config, hp: HParams) -> Schedule:
        return Schedule(hp.learning_rate, hp.epochs, cfg.train.max_steps)

    def build_trainer(self, phase: Phase):
        from peft import get_peft_model
        from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

        model = phase.model if phase.peft_config is None else get_peft_model(phase.model, phase.peft_config)
        tok = phase.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return Trainer(model=model, args=TrainingArguments(**phase.args), train_dataset=phase.train_dataset,
                       data_collator=DataCollatorForLanguageModeling(tok, mlm=False), processing_class=tok,
                       callbacks=phase.callbacks)

    def card_method(self, cfg: Config, hp: HParams) -> str:
        return "toy_lm, a plain causal-LM loss on the whole conversation (transformers Trainer)"


METHOD = register_method(ToyLM())
