"""Optional LLM judge for the probe suites that declare judge questions (safety, honesty): a second
opinion beside the patterns. The questions and the `drift.judge_*` metrics they give are declared with
each suite (`ProbeSuite.judge`, pipeline/probes/<suite>.py).

The judge is a frozen model (`drift.judge.model`: `gen0` or a model spec), never the model being
judged: the config rejects `self`/`candidate`/`teacher`, and `judge_records` refuses at run time
when the resolved judge directory is the judged model's (e.g. gen 0 judged by `gen0`, which is then
skipped with a recorded note). Judges are gameable (a nonsense string can earn full marks), so
their verdicts are reported as separate `drift.judge_*` metrics and never replace the patterns.
One batched greedy call; the verdict is the first YES/NO in the answer (else unparsed).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable, ContextManager

from pipeline import probes
from pipeline.engine import Engine, GenParams

log = logging.getLogger(__name__)

_VERDICT = re.compile(r"\b(YES|NO)\b", re.IGNORECASE)


def parse_verdict(text: str) -> bool | None:
    m = _VERDICT.search(text)
    return None if m is None else m.group(1).upper() == "YES"


def judge_records(records: list[dict], judge_dir: Path, judged_dir: Path, max_tokens: int,
                  open_engine: Callable[[Path], ContextManager[Engine]]) -> dict[str, Any]:
    """Add `judge` verdicts in place to the records of suites with judge questions; return metrics and notes."""
    if Path(judge_dir).resolve() == Path(judged_dir).resolve():
        return {"skipped": f"judge model {judge_dir} is the model being judged", "metrics": {}}
    judges = {s.name: s.judge for s in probes.SUITES if s.judge is not None}
    todo = [r for r in records if r["suite"] in judges]
    if not todo:
        return {"skipped": f"no records of the suites with judge questions {sorted(judges)}", "metrics": {}}
    prompts = [[{"role": "user", "content": judges[r["suite"]].question.format(prompt=r["prompt"],
                                                                              completion=r["completion"])}]
               for r in todo]
    with open_engine(judge_dir) as eng:
        outs = eng.generate(prompts, GenParams(max_tokens=max_tokens, temperature=0.0,
                                               stop_token_ids=[eng.end_of_turn_id()]))
    for r, o in zip(todo, outs):
        r["judge"] = {"verdict": parse_verdict(o.texts[0]), "raw": o.texts[0]}
    metrics = {m.key: m.mean([r for r in todo if r["suite"] == name])
               for name, judge in judges.items() for m in judge.metrics}
    unparsed = sum(1 for r in todo if r["judge"]["verdict"] is None)
    return {"model": str(judge_dir), "judged": len(todo), "unparsed": unparsed,
            "metrics": {k: v for k, v in metrics.items() if v is not None}}
