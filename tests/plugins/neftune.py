"""A training method with its own knobs, from outside the package: SFT with NEFTune embedding noise.

    plugins: [plugins.neftune]        # with tests/ on sys.path (pytest puts it there)
    train.method=neftune train.neftune.noise_alpha=5 train.neftune.max_rows=64

NEFTune (Jain et al. 2023) adds uniform noise of scale alpha / sqrt(sequence length * hidden size) to
the input embeddings while fine-tuning (trl's `neftune_noise_alpha`). The method is the built-in `sft`
(same rows, loss on the answer only, same schedule) plus that noise; its knobs are `NEFTuneConfig`
below, which the schema merges under `train.neftune` because `config = NEFTuneConfig` (their values
are the defaults here: a plugin has no block in conf/, `train.neftune.<knob>=...` overrides them).
tests/test_method_registry.py composes, validates and trains it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Config, HParams, check
from pipeline.train.methods import register_method
from pipeline.train.methods.base import Phase
from pipeline.train.methods.sft import SFT


@dataclass
class NEFTuneConfig:
    """`train.neftune.*`: the noise and how much of the SFT data it sees."""

    noise_alpha: float = 5.0  # NEFTune's alpha: noise scale alpha / sqrt(L * d) on the input embeddings
    max_rows: int = 0  # the first rows of synth/train.jsonl it trains on (0: all of them)

    def validate(self) -> None:
        check(self.noise_alpha > 0, "train.neftune.noise_alpha", "must be > 0 (0 is plain sft)")
        check(self.max_rows >= 0, "train.neftune.max_rows", "must be >= 0 (0: all rows)")


class NEFTune(SFT):
    name = "neftune"
    title = "NEFTune SFT"
    config = NEFTuneConfig
    metrics = {"train.neftune_loss_first": "loss_first", "train.neftune_loss_last": "loss_last"}
    report_columns = ()
    hparam_keys = ()
    tags = ("trl", "sft", "neftune")

    def prepare(self, path: Path, tokenizer, cfg: Config, hp: HParams) -> tuple[list[dict], dict]:
        rows, stats = super().prepare(path, tokenizer, cfg, hp)
        keep = self.knobs(cfg).max_rows or len(rows)
        return rows[:keep], {**stats, "used": min(keep, len(rows))}

    def build_trainer(self, phase: Phase):
        # a TrainingArguments field: the trainer hooks the input embeddings with it for train()
        args = {**phase.args, "neftune_noise_alpha": self.knobs(phase.cfg).noise_alpha}
        return super().build_trainer(dataclasses.replace(phase, args=args))

    def card_method(self, cfg: Config, hp: HParams) -> str:
        return f"trl SFT with NEFTune embedding noise (alpha={self.knobs(cfg).noise_alpha:g}), loss on the answer only"


METHOD = register_method(NEFTune())
