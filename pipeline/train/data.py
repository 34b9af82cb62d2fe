"""Turn the synth stage's chat rows into what trl trains on, and refuse data that would train nothing.

SFT rows `{"messages": [user, assistant], "meta": {...}}` become trl's conversational
prompt-completion format `{"prompt": [user], "completion": [assistant]}`, so `SFTTrainer` computes
the loss on the completion only (`completion_only_loss`; our chat templates lack the
`{% generation %}` markers that `assistant_only_loss` needs). The completion is everything the chat
template renders after the generation prompt, so the end-of-turn token (`<|im_end|>`) is a trained
label even where the tokenizer's pad token is that same token (SmolLM2): trl pads labels with -100,
it does not mask pad-id labels.

Examples longer than `max_seq_length` tokens are DROPPED and counted (`stats["dropped_too_long"]`),
not truncated: a truncated solution loses its final answer and its end-of-turn token, so it would
teach the model to ramble. Fewer than `min_examples` usable rows is an error.

DPO rows are trl's conversational preference format and are checked the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.io import read_jsonl


class TrainDataError(ValueError):
    """Training data that cannot be used; the message names the file and what is wrong."""


def _check_turn(turn: Any, role: str, where: str) -> dict:
    if not (isinstance(turn, dict) and turn.get("role") == role and isinstance(turn.get("content"), str)
            and turn["content"].strip()):
        raise TrainDataError(f"{where}: expected a non-empty {role!r} message, got {turn!r:.200}")
    return {"role": role, "content": turn["content"]}


def require_chat_template(tokenizer, model_dir: Path) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise TrainDataError(
            f"the tokenizer of {model_dir} has no chat template; training uses chat-format data, so give the "
            f"model a chat_template.jinja (or start from a model that has one)"
        )


def _n_tokens(tokenizer, messages: list[dict], kwargs: dict, generation_prompt: bool = False) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt, **kwargs)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def prepare_sft(path: Path, tokenizer, max_len: int, min_examples: int, template_kwargs: dict) -> tuple[list[dict], dict]:
    """Rows for SFTTrainer plus stats (read, used, dropped_too_long, tokens, prompt/completion tokens)."""
    if not path.exists():
        raise TrainDataError(f"training data {path} does not exist (the synth stage writes it)")
    rows = read_jsonl(path)
    out, dropped, tokens, completion_tokens, not_prefix = [], 0, 0, 0, 0
    for i, row in enumerate(rows, 1):
        msgs = row.get("messages")
        where = f"{path}:{i}"
        if not isinstance(msgs, list) or len(msgs) < 2:
            raise TrainDataError(f"{where}: expected 'messages' with a user and an assistant turn")
        prompt = [_check_turn(m, m.get("role") if isinstance(m, dict) else None, where) for m in msgs[:-1]]
        if prompt[-1]["role"] != "user":
            raise TrainDataError(f"{where}: the turn before the answer must be 'user', got {prompt[-1]['role']!r}")
        completion = [_check_turn(msgs[-1], "assistant", where)]
        full = _n_tokens(tokenizer, prompt + completion, template_kwargs)
        if len(full) > max_len:
            dropped += 1
            continue
        head = _n_tokens(tokenizer, prompt, template_kwargs, generation_prompt=True)
        not_prefix += full[:len(head)] != head
        tokens += len(full)
        completion_tokens += len(full) - len(head)
        ex: dict[str, Any] = {"prompt": prompt, "completion": completion}
        if template_kwargs:  # trl passes a per-row `chat_template_kwargs` to apply_chat_template
            ex["chat_template_kwargs"] = dict(template_kwargs)
        out.append(ex)
    stats = {"read": len(rows), "used": len(out), "dropped_too_long": dropped, "max_seq_length": max_len,
             "tokens": tokens, "completion_tokens": completion_tokens, "prompt_not_prefix": not_prefix}
    if len(out) < min_examples:
        raise TrainDataError(
            f"{path}: {len(out)} usable training examples (read {len(rows)}, dropped {dropped} longer than "
            f"max_seq_length={max_len} tokens); train.min_examples={min_examples}. Synthesize more data or raise "
            f"max_seq_length"
        )
    return out, stats


def prepare_pairs(path: Path, tokenizer, max_len: int, min_pairs: int, template_kwargs: dict) -> tuple[list[dict], dict]:
    """Preference rows for DPOTrainer (prompt / chosen / rejected), overlong pairs dropped and counted."""
    if not path.exists():
        raise TrainDataError(f"train.dpo.enabled=true but {path} does not exist (the synth stage writes the pairs)")
    rows = read_jsonl(path)
    out, dropped = [], 0
    for i, row in enumerate(rows, 1):
        where = f"{path}:{i}"
        if not all(isinstance(row.get(k), list) and row[k] for k in ("prompt", "chosen", "rejected")):
            raise TrainDataError(f"{where}: expected non-empty 'prompt', 'chosen' and 'rejected' message lists")
        prompt = [_check_turn(m, m.get("role") if isinstance(m, dict) else None, where) for m in row["prompt"]]
        chosen = [_check_turn(row["chosen"][-1], "assistant", where)]
        rejected = [_check_turn(row["rejected"][-1], "assistant", where)]
        if chosen[0]["content"] == rejected[0]["content"]:
            raise TrainDataError(f"{where}: chosen and rejected are the same answer")
        longest = max(len(_n_tokens(tokenizer, prompt + c, template_kwargs)) for c in (chosen, rejected))
        if longest > max_len:
            dropped += 1
            continue
        ex: dict[str, Any] = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        if template_kwargs:
            ex["chat_template_kwargs"] = dict(template_kwargs)
        out.append(ex)
    stats = {"read": len(rows), "used": len(out), "dropped_too_long": dropped}
    if len(out) < min_pairs:
        raise TrainDataError(
            f"{path}: {len(out)} usable preference pairs (read {len(rows)}, dropped {dropped} longer than "
            f"{max_len} tokens); train.dpo.min_pairs={min_pairs}"
        )
    return out, stats


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
