"""What every training method's data check shares: the error type, turn and chat-template checks,
token counting, and the end-of-turn token the export needs.

The methods' own conversions live with them (pipeline/train/methods/sft.py, dpo.py). They all DROP
and count examples longer than `max_seq_length` tokens rather than truncating them: a truncated
solution loses its final answer and its end-of-turn token, so it would teach the model to ramble.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.io import read_jsonl


class TrainDataError(ValueError):
    """Training data that cannot be used; the message names the file and what is wrong."""


def check_turn(turn: Any, role: str, where: str) -> dict:
    if not (isinstance(turn, dict) and turn.get("role") == role and isinstance(turn.get("content"), str)
            and turn["content"].strip()):
        raise TrainDataError(f"{where}: expected a non-empty {role!r} message, got {turn!r:.200}")
    return {"role": role, "content": turn["content"]}


def read_rows(path: Path, method: str) -> list[dict]:
    if not path.exists():
        raise TrainDataError(f"{path} does not exist: training method {method!r} reads it (the synth stage writes it)")
    return read_jsonl(path)


def require_chat_template(tokenizer, model_dir: Path) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise TrainDataError(
            f"the tokenizer of {model_dir} has no chat template; training uses chat-format data, so give the "
            f"model a chat_template.jinja (or start from a model that has one)"
        )


def chat_token_ids(tokenizer, messages: list[dict], kwargs: dict, generation_prompt: bool = False) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt, **kwargs)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def end_of_turn_id(tokenizer, template_kwargs: dict) -> int:
    """The special token the chat template closes an assistant turn with (`<|im_end|>` for ChatML).

    Generation must stop there, so the exported generation config lists it among the eos ids even
    when the tokenizer's own eos is another token (Qwen3 base: `<|endoftext|>`)."""
    marker = "Zq7"
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": marker}]
    text = tokenizer.apply_chat_template(msgs, tokenize=False, **template_kwargs)
    tail = text[text.rindex(marker) + len(marker):]
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    for tid in tokenizer(tail, add_special_tokens=False)["input_ids"]:
        if tid in special:
            return tid
    if tokenizer.eos_token_id is None:
        raise TrainDataError("the chat template closes assistant turns with no special token and the tokenizer has no eos")
    return tokenizer.eos_token_id
