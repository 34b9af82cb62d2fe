"""Output checks shared by the math and code verifiers (`mathgen`, `codegen`, `steps`).

- `output_problem`: why a raw teacher output is unusable before any parsing (non_utf8, huge,
  empty), or None;
- `code_blocks`: the closed ```python fenced blocks of a text (code tasks, code samples and
  program-of-thought answers all arrive fenced).
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.S | re.I)


def output_problem(text: str, finish: str, max_chars: int) -> str | None:
    """Reason a raw teacher output is unusable before any parsing, or None."""
    if "\ufffd" in text:
        return "non_utf8"  # undecodable bytes surface as U+FFFD after detokenization
    if len(text) > max_chars:
        return "huge"
    if not text.strip():
        return "empty"
    return None


def code_blocks(text: str) -> list[str]:
    """Closed ```python fenced blocks in `text`."""
    return [b for b in _FENCE.findall(text) if b.strip()]
