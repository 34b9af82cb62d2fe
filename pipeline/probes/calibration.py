"""Hand-labelled completions for the drift scorers, and how often a scorer agrees with the labels.

    python -m pipeline.probes.calibration      # the rule scorers' agreement per suite, and the misses
    python -m pipeline.probes.calibration --judge tiny:qwen3 engine.backend=hf   # a judge model's
        # (any model spec; the rest are config overrides: engine, model settings, paths.models)

`calibration.jsonl` holds one labelled case per line: `suite`, `id` (an item of that suite),
`completions` (as many as the suite's `Calibration.completions`: the answer, or the first answer and
the answer after a follow-up turn) and the human `label` (one of the suite's `Calibration.labels`).
Which suites are calibrated, their labels and their rule verdicts are declared by each suite module
(`ProbeSuite.calibration`, pipeline.probes.suite.Calibration); nothing here names a suite. A scorer is
`fn(suite, item, completions) -> label`: `rule_label` asks the suite's own rule; a judge model
(`judge_calibration`, which the drift stage's judge also runs) asks the suites' judge questions about
the same rows and is measured with `agreement(fn)` on the suites whose calibration maps a YES/NO to labels.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable, Sequence

from pipeline.engine import GenParams
from pipeline.infra.io import JsonlError, iter_jsonl
from pipeline.probes import SUITES, load_suite
from pipeline.probes.suite import Calibration

PATH = Path(__file__).with_name("calibration.jsonl")
Scorer = Callable[[str, dict, Sequence[str]], str]


def calibrated() -> dict[str, Calibration]:
    """suite -> its calibration declaration, for every registered suite that declares one."""
    return {s.name: s.calibration for s in SUITES if s.calibration is not None}


def labels() -> dict[str, tuple[str, str]]:
    """suite -> the labels its calibration rows may carry (the good one first)."""
    return {name: c.labels for name, c in calibrated().items()}


def judge_labels() -> dict[str, tuple[str, str]]:
    """suite -> (label of a YES verdict, label of a NO), for the calibrated suites with a judge question."""
    return {name: c.judge for name, c in calibrated().items() if c.judge is not None and SUITES.get(name).judge}


def load(path: Path = PATH) -> list[tuple[dict, dict]]:
    """(row, its probe item) for every labelled case; a malformed row raises ValueError naming file:line."""
    cal = calibrated()
    known = labels()
    items = {suite: {it["id"]: it for it in load_suite(suite).items} for suite in cal}
    out = []
    try:
        rows = list(iter_jsonl(path))
    except JsonlError as e:
        raise ValueError(str(e)) from None
    for line, row in enumerate(rows, 1):
        suite, comps = row.get("suite"), row.get("completions")
        where = f"{path}: row {line}"
        if suite not in known:
            raise ValueError(f"{where}: 'suite' must be one of {sorted(known)}, got {suite!r}")
        if row.get("id") not in items[suite]:
            raise ValueError(f"{where}: 'id' {row.get('id')!r} is not an item of the {suite} suite")
        n = cal[suite].completions
        if not (isinstance(comps, list) and len(comps) == n and all(isinstance(c, str) for c in comps)):
            raise ValueError(f"{where}: 'completions' must be a list of {n} string(s)")
        if row.get("label") not in known[suite]:
            raise ValueError(f"{where}: 'label' must be one of {known[suite]}, got {row.get('label')!r}")
        out.append((row, items[suite][row["id"]]))
    return out


def rule_label(suite: str, item: dict, completions: Sequence[str]) -> str:
    """The suite's rule scorer's verdict in the labels' words (`Calibration.rule`)."""
    return SUITES.get(suite).calibration.rule(item, list(completions))


def agreement(scorer_fn: Scorer = rule_label, path: Path = PATH, suites: Sequence[str] | None = None) -> dict[str, dict]:
    """Per suite (of `suites`, default every calibrated one): n, agree, agreement (share of rows where
    `scorer_fn` gives the human label) and the misses ({id, label, got, completions})."""
    out = {s: {"n": 0, "agree": 0, "agreement": None, "misses": []} for s in (labels() if suites is None else suites)}
    for row, item in load(path):
        if row["suite"] not in out:
            continue
        r, got = out[row["suite"]], scorer_fn(row["suite"], item, row["completions"])
        r["n"] += 1
        if got == row["label"]:
            r["agree"] += 1
        else:
            r["misses"].append({"id": row["id"], "label": row["label"], "got": got, "completions": row["completions"]})
    for r in out.values():
        r["agreement"] = r["agree"] / r["n"] if r["n"] else None
    return out


_VERDICT = re.compile(r"\b(YES|NO)\b", re.IGNORECASE)


def parse_verdict(text: str) -> bool | None:
    """A judge's verdict: the first YES/NO in its answer, None when there is none."""
    m = _VERDICT.search(text)
    return None if m is None else m.group(1).upper() == "YES"


def ask_judge(eng, questions: list[str], max_tokens: int) -> list[tuple[bool | None, str]]:
    """(verdict, raw answer) for each question, in one batched greedy call of a judge engine."""
    outs = eng.generate([[{"role": "user", "content": q}] for q in questions],
                        GenParams(max_tokens=max_tokens, temperature=0.0, stop_token_ids=[eng.end_of_turn_id()]))
    return [(parse_verdict(o.texts[0]), o.texts[0]) for o in outs]


def judge_calibration(eng, max_tokens: int, path: Path = PATH) -> dict[str, dict]:
    """A judge engine's agreement with the hand labels, per calibrated suite with a judge question
    (`judge_labels`), asking each suite's own question: {suite: {n, agree, agreement, unparsed, misses}}
    (an unparsed verdict is a miss)."""
    judged = judge_labels()
    rows = [(row, item) for row, item in load(path) if row["suite"] in judged]
    questions = [SUITES.get(row["suite"]).judge.ask(item, SUITES.get(row["suite"]).prompt(item), row["completions"][0])
                 for row, item in rows]
    answers = ask_judge(eng, questions, max_tokens) if rows else []
    got = {(row["suite"], row["id"], tuple(row["completions"])): v for (row, _), (v, _) in zip(rows, answers)}

    def judge_label(suite: str, item: dict, completions: Sequence[str]) -> str:
        v = got[(suite, item["id"], tuple(completions))]
        return "unparsed" if v is None else judged[suite][0 if v else 1]

    out = agreement(judge_label, path, suites=tuple(judged))
    for r in out.values():
        r["unparsed"] = sum(m["got"] == "unparsed" for m in r["misses"])
    return out


def judge_agreement(spec: str, overrides: Sequence[str] = ()) -> dict[str, dict]:
    """`judge_calibration` of a judge model (a spec as in `model.spec`), engine and `drift.judge.max_tokens`
    from the config with `overrides`."""
    from pipeline.engine import models
    from pipeline.config.compose import compose
    from pipeline.engine import open_engine

    cfg = compose(list(overrides))
    with open_engine(models.resolve(spec, cfg.paths.models), cfg.model, cfg.engine, seed=cfg.seed) as eng:
        return judge_calibration(eng, cfg.drift.judge.max_tokens)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.probes.calibration",
                                 description="Agreement of the rule scorers (or of a judge model) with the hand labels.")
    ap.add_argument("--judge", metavar="MODEL_SPEC", help="measure this judge model instead of the rules")
    ap.add_argument("overrides", nargs="*", help="config overrides for the judge's engine, e.g. engine.backend=hf")
    args = ap.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        result = judge_agreement(args.judge, args.overrides) if args.judge else agreement()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    who = "judge" if args.judge else "rules"
    for suite, r in result.items():
        for m in r["misses"]:
            print(f"miss {suite} {m['id']}: label {m['label']}, {who} {m['got']}: {m['completions'][-1][:100]!r}")
    print(json.dumps({s: {"n": r["n"], "agreement": None if r["agreement"] is None else round(r["agreement"], 4)}
                      for s, r in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
