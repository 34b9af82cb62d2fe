"""What every training method's data check shares: the error type, turn and chat-template checks,
and token counting (the end-of-turn token the export needs is pipeline.engine.end_of_turn_id).

The methods' own conversions live with them (pipeline/train/methods/sft.py, dpo.py). They all DROP
and count examples longer than `max_seq_length` tokens rather than truncating them: a truncated
solution loses its final answer and its end-of-turn token, so it would teach the model to ramble.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.infra.io import read_jsonl


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
