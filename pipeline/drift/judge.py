"""Optional LLM judge for the probe suites that declare judge questions (safety, honesty, harmbench,
donotanswer, truthfulqa): a second opinion beside the patterns. The questions and the `drift.judge_*`
metrics they give are declared with each suite (`ProbeSuite.judge`, pipeline/probes/<suite>.py).

The judge is a frozen model (`drift.judge.model`: `gen0` or a model spec), never the model being
judged: the config rejects `self`/`candidate`/`teacher`, and `judge_records` refuses at run time
when the resolved judge directory is the judged model's (e.g. gen 0 judged by `gen0`, which is then
skipped with a recorded note). Judges are gameable (a nonsense string can earn full marks), so
their verdicts are reported as separate `drift.judge_*` metrics and never replace the patterns.
One batched greedy call; the verdict is the first YES/NO in the answer (else unparsed).

How far to trust it: `pipeline.probes.calibration.judge_calibration` asks the same questions about
the hand-labelled completions of pipeline/probes/calibration.jsonl (safety: refusal; honesty) and
measures agreement with the labels; the drift stage records it with the verdicts (`summary.json`
`judge.calibration`), and on its own:

    python -m pipeline.probes.calibration --judge tiny:qwen3 engine.backend=hf
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, ContextManager

from pipeline import probes
from pipeline.engine import Engine
from pipeline.probes.calibration import ask_judge, judge_calibration, parse_verdict

__all__ = ["judge_records", "parse_verdict"]

log = logging.getLogger(__name__)


def judge_records(records: list[dict], judge_dir: Path, judged_dir: Path, max_tokens: int,
                  open_engine: Callable[[Path], ContextManager[Engine]], calibrate: bool = False) -> dict[str, Any]:
    """Add `judge` verdicts in place to the records of suites with judge questions; return metrics and
    notes, with the judge's calibration agreement (`calibrate`) measured in the same engine scope."""
    if Path(judge_dir).resolve() == Path(judged_dir).resolve():
        return {"skipped": f"judge model {judge_dir} is the model being judged", "metrics": {}}
    judges = {s.name: s.judge for s in probes.SUITES if s.judge is not None}
    todo = [r for r in records if r["suite"] in judges]
    if not todo:
        return {"skipped": f"no records of the suites with judge questions {sorted(judges)}", "metrics": {}}
    # a question with the item's reference text (truthfulqa's correct answers) needs the item itself
    items = {name: {it["id"]: it for it in probes.load_suite(name).items}
             for name in {r["suite"] for r in todo} if judges[name].reference}
    questions = [judges[r["suite"]].ask(items[r["suite"]][r["id"]] if r["suite"] in items else {},
                                        r["prompt"], r["completion"]) for r in todo]
    with open_engine(judge_dir) as eng:
        answers = ask_judge(eng, questions, max_tokens)
        agree = judge_calibration(eng, max_tokens) if calibrate else None
    for r, (v, raw) in zip(todo, answers):
        r["judge"] = {"verdict": v, "raw": raw}
    metrics = {m.key: m.mean([r for r in todo if r["suite"] == name])
               for name, judge in judges.items() for m in judge.metrics}
    unparsed = sum(1 for r in todo if r["judge"]["verdict"] is None)
    out = {"model": str(judge_dir), "judged": len(todo), "unparsed": unparsed,
           "metrics": {k: v for k, v in metrics.items() if v is not None}}
    if agree is not None:
        out["calibration"] = {s: {k: r[k] for k in ("n", "agree", "agreement", "unparsed")} for s, r in agree.items()}
    return out
