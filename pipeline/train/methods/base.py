"""The training-method contract: everything the train stage, its worker, the export and the report
need to know about one way of training, declared in one place.

A method (an instance of a `Method` subclass, registered in `pipeline.train.methods.METHODS`) says:

- `config`: the dataclass of its own knobs (documented fields; `validate()` naming `train.<name>.<key>`),
  in its module; the schema merges it under `train.<name>`, and `knobs(cfg)` reads this run's values;

- `data`: the dataset it reads, one of the declared kinds (`CHAT`: verified synth rows, `PAIRS`:
  preference pairs, `PROMPTS`: bare prompts with what a reward checks against, for RL);
- `prepare()`: how it checks that data and converts it into the rows its trl trainer takes;
- `prepare_val()`: the same conversion of its held-out validation file (`val_data`), for checkpoint
  choice on eval loss; None when it has none (the worker then trains without evaluation);
- `schedule()`: where its learning rate, epochs and max_steps come from;
- `build_trainer()`: its trainer, from the `Phase` the worker hands it (start model, tokenizer,
  rows, shared TrainingArguments, LoRA config, callbacks, reward functions);
- `rewards()`, `needs_reference`, `generation`: reward functions, whether it trains against a
  reference model (the phase's start model: LoRA with the adapter disabled, or a frozen copy), and
  the generation backend it needs while training (`none`; RL methods sample: `transformers`|`vllm`);
  `uses_reference(cfg)` / `generation_backend(cfg)` when the config decides them (grpo's beta, use_vllm);
- `phase_stats()`: extra result.json keys from the trainer's log history (grpo: rewards per step);
- `metrics`, `report_columns`, `hparam_keys`: the ledger metrics it reports (from its phase's
  result.json), the summary-table columns it contributes and the proposal's hyperparameters shown;
- `tags`, `card_method()`, `card_phase()`, `card_data()`: its model-card text.

Heavy imports (trl, transformers, peft) belong inside the methods, so importing the registry is cheap.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipeline.config import Config, ConfigError, HParams

GENERATION_BACKENDS = ("none", "transformers", "vllm")


@dataclass(frozen=True)
class DataKind:
    """A dataset a method can train on: a file the synth stage writes in the generation dir."""

    name: str
    file: str  # relative to gen_NNN/
    unit: str  # what one row is, for the model card ("examples", "pairs")
    schema: str


CHAT = DataKind("chat", "synth/train.jsonl", "examples",
                '{"messages": [..., user, assistant], "meta": {...}}: verified chat rows')
CHAT_VAL = DataKind("chat_val", "synth/val.jsonl", "examples",
                    '{"messages": [...], "meta": {...}}: verified chat rows of held-out problems')
PAIRS = DataKind("pairs", "synth/pairs.jsonl", "pairs",
                 '{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}: preference pairs')
PROMPTS = DataKind("prompts", "synth/prompts.jsonl", "prompts",
                   '{"prompt": [user], "kind": "math"|"code", "gold": number|null, "tests": [assert, ...], '
                   '"entry_point": str, "header": str}: bare prompts and what the rewards check against')


@dataclass(frozen=True)
class Schedule:
    learning_rate: float
    epochs: float
    max_steps: int  # -1: from epochs


@dataclass
class Phase:
    """What the worker hands `Method.build_trainer` for one phase of a job."""

    cfg: Config
    hp: HParams
    model: Any  # the start model: the init model, or the previous phase's result (LoRA adapters merged)
    tokenizer: Any
    train_dataset: Any  # datasets.Dataset of the rows `prepare` returned
    eval_dataset: Any | None  # datasets.Dataset of the rows `prepare_val` returned; None: no evaluation
    args: dict  # TrainingArguments fields every method shares (output dir, schedule, batch, saving, precision)
    peft_config: Any | None  # None: full fine-tuning
    callbacks: list
    rewards: list[Callable] = field(default_factory=list)
    world: int = 1  # training processes (a method that splits batches itself needs it)


class Method:
    """Base of every training method; subclasses set the attributes and implement the four hooks."""

    name: str = ""
    title: str = ""  # how the model card names a phase of it ("SFT")
    config: type | None = None  # its knobs dataclass, `train.<name>.*` (None: it has none of its own)
    data: DataKind = CHAT
    val_data: DataKind | None = None  # held-out rows for checkpoint choice (eval loss), if the method uses any
    needs_reference: bool = False
    generation: str = "none"  # GENERATION_BACKENDS
    metrics: dict[str, str] = {}  # ledger metric -> key of the phase's result.json
    report_columns: tuple[str, ...] = ()  # ledger metrics shown in the report's summary table
    hparam_keys: tuple[str, ...] = ()  # proposal hyperparameters it trains with, shown as hp.<name>
    tags: tuple[str, ...] = ()  # model-card tags (the library it trains with, its own name)

    def knobs(self, cfg: Config) -> Any:
        """This run's `train.<name>` knobs (an instance of `config`)."""
        return getattr(cfg.train, self.name)

    def prepare(self, path: Path, tokenizer, cfg: Config, hp: HParams) -> tuple[list[dict], dict]:
        """Check `path` (a `self.data` file) and convert it: (rows for the trainer, stats with read/used)."""
        raise NotImplementedError

    def prepare_val(self, path: Path, tokenizer, cfg: Config, hp: HParams) -> tuple[list[dict], dict] | None:
        """`prepare` for the `val_data` file, with no minimum size; None when the method has no validation."""
        return None

    def schedule(self, cfg: Config, hp: HParams) -> Schedule:
        raise NotImplementedError

    def build_trainer(self, phase: Phase):
        """A transformers Trainer (trl's or not) ready to `.train()`."""
        raise NotImplementedError

    def rewards(self, cfg: Config) -> list[Callable]:
        """Reward functions, trl's signature `f(prompts, completions, **columns) -> list[float]`."""
        return []

    def check_config(self, cfg: Config) -> None:
        """What this method needs of the config and the installation (ConfigError naming the key)."""
        if self.generation not in GENERATION_BACKENDS:
            raise ConfigError(f"invalid config value for 'train.method': method {self.name!r} declares generation "
                              f"{self.generation!r}, not one of {GENERATION_BACKENDS}")
        if self.generation == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ConfigError(f"invalid config value for 'train.method': method {self.name!r} generates with vLLM "
                              f"while training, and vllm is not installed")

    def check_unused(self, cfg: Config) -> None:
        """What this method refuses when `train.method` leaves it out (a knob set that only it reads and
        that would otherwise be silently ignored); ConfigError naming the key."""

    def uses_reference(self, cfg: Config) -> bool:
        """Whether this run trains against a reference model (`needs_reference` unless the config decides)."""
        return self.needs_reference

    def generation_backend(self, cfg: Config) -> str:
        """The generation backend this run uses while training (`generation` unless the config decides)."""
        return self.generation

    def samples_per_row(self, cfg: Config) -> int:
        """Training samples one dataset row yields per epoch (the step budget counts samples; grpo: its group)."""
        return 1

    def phase_stats(self, log_history: list[dict], cfg: Config) -> dict:
        """Extra keys of the phase's result.json, from the trainer's log history (e.g. rewards per step)."""
        return {}

    def ledger_metrics(self, result: dict) -> dict:
        return {metric: result[key] for metric, key in self.metrics.items()}

    def card_method(self, cfg: Config, hp: HParams) -> str:
        """One clause for the card's "Method:" line."""
        raise NotImplementedError

    def card_phase(self, result: dict) -> str:
        s = result["schedule"]
        return (f"- {self.title} (learning rate {s['learning_rate']:g}, epochs {s['epochs']:g}, max_steps "
                f"{s['max_steps']}): {result['steps']} steps, loss {result['loss_first']:.4f} -> "
                f"{result['loss_last']:.4f}, {result['tokens']} tokens, {result['tokens_per_s']:.1f} tokens/s.")

    def card_data(self, stats: dict, file: str, sha256: str, hp: HParams) -> str:
        return (f"- `{file}`: {stats['read']} {self.data.unit} read, {stats['used']} used, "
                f"{stats['dropped_too_long']} dropped as longer than {hp.max_seq_length} tokens. sha256 {sha256}.")
