"""GSM8K: its data (splits and the train slices), scoring (pure, no torch), prompts and the benchmark
declaration (`BENCHMARK`); one checker for the eval, for synthetic-data answers and for the math
rewards (the `math` synthesis domain is modelled on it: pipeline.evals.modelled_on).

Two extractions, both reported:
- **strict**: if the completion contains `####`, the first number right after a `#### ` marker, a
  currency sign before it allowed (`#### $1,000,000`, `#### -€5`): on a marker followed by a plain
  number this is exactly lm-evaluation-harness `strict-match` (`#### (\\-?[0-9\\.\\,]+)`, first
  match), which would miss the currency case. Otherwise the first number after the earliest of the
  markers `The answer is` / `The final answer is` (any case, optional `:`) and `\\boxed{`.
- **flexible**: lm-evaluation-harness `flexible-extract` (`(-?[$0-9.,]{2,})|(-?[0-9]+)`, last match),
  skipping matches without a digit (lm-eval would return a trailing "..." and score it wrong).

Extractions are the raw matched strings; `normalize_number` removes commas, currency signs ($ € £ ¥) and
trailing periods and compares numerically (`18.0` equals `18`).

    python -m pipeline.evals.gsm8k --completions C.jsonl
        rows carry `completion` and `answer` (a GSM8K reference ending in `#### N`, or a bare number);
        writes C.jsonl_results.jsonl and prints {"accuracy_strict": .., "accuracy_flexible": .., "n": ..}

As a benchmark: splits `test` (reported), `validation` (the gate's slice of train; see
`train_slice`) and `selection` (ranks several candidates; pipeline.evals.selection),
protocols `chat` and `few_shot` (chat turns; exemplars from the `exemplars` train slice) and
`fewshot` (plain text for a base model, exactly lm-eval's `gsm8k` task: `few_shot`
"Question: ..\nAnswer: <solution ending #### N>" exemplars, then "Question: ..\nAnswer:", stopped at
lm-eval's stop strings), metrics accuracy_strict / accuracy_flexible per item = the share of its
samples judged correct.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from decimal import Decimal, InvalidOperation
from functools import lru_cache, partial

from pipeline.evals.base import Benchmark, Protocol
from pipeline.infra import slices
from pipeline.evals.selection import SELECTION_SLICE
from pipeline.infra.metricspec import MetricSpec
from pipeline.evals.common import mean
from pipeline.evals.loaders import read_split

HUB_ID = "openai/gsm8k"
SLICES = tuple(slices.SLICES)  # validation, verifier, exemplars, selection, pool: sizes and versions there


# ---- data --------------------------------------------------------------------------------------
# `test` is for evaluation and decontamination only; never training, prompts or selection. Train is
# cut ONCE into five disjoint, versioned slices (`train_slice(name)`; the cut, sizes and versions:
# pipeline.infra.slices), each with one use:
# - `validation`: 1000 questions held out for the gate (v2: the historical 500, seed 1234, then 500
#   more from the shuffle's tail; rows carry `slice_version`, so nested subsets keep the first 500 first);
# - `selection`: 500 questions that rank several candidates apart from the gate (pipeline.evals.selection);
# - `verifier`: about 200 questions held out to measure the synthesis verifier's precision; nothing
#   else reads them (no prompts, no training);
# - `exemplars`: few-shot exemplars, for the eval's `few_shot` protocol and the synthesis prompts;
# - `pool`: everything else: the question pool for synthesis and the anchor rows of the mixture.
# `load("train")` is train minus validation and selection (verifier + exemplars + pool), for the checks that need
# the whole remainder (how much of train decontamination would remove).

@lru_cache(maxsize=4)
def raw(split: str) -> tuple[dict, ...]:
    """Rows `{id, question, answer}` of the file's `train` or `test` split (pipeline.evals.loaders.read_split)."""
    if split not in ("train", "test"):
        raise ValueError(f"GSM8K has splits 'train' and 'test', not {split!r}")
    out = []
    for i, r in enumerate(read_split("gsm8k", split, HUB_ID, "main")):
        if not isinstance(r.get("question"), str) or not isinstance(r.get("answer"), str) or "####" not in r["answer"]:
            raise ValueError(f"GSM8K {split} row {i + 1}: needs string 'question' and 'answer' ending in '#### N'")
        out.append({"id": f"gsm8k-{split}-{i:05d}", "question": r["question"], "answer": r["answer"]})
    return tuple(out)


@lru_cache(maxsize=1)
def _slice_ids() -> dict[str, tuple[str, ...]]:
    """Every train id in exactly one slice (pipeline.infra.slices.cut)."""
    return slices.cut([r["id"] for r in raw("train")])


def train_slice(name: str) -> list[dict]:
    """Rows `{id, question, answer}` of one train slice (see above), in file order; validation block
    by block (rows carry `slice_version`), so nested subsets keep block 1 a prefix."""
    if name not in SLICES:
        raise ValueError(f"unknown GSM8K train slice {name!r}; use one of {list(SLICES)}")
    ids = _slice_ids()[name]
    if name == "validation":
        versions = slices.validation_versions(ids)
        rows = [{**r, "slice_version": versions[r["id"]]} for r in raw("train") if r["id"] in versions]
        return sorted(rows, key=lambda r: r["slice_version"])
    keep = set(ids)
    return [r for r in raw("train") if r["id"] in keep]


def load(split: str) -> list[dict]:
    """Rows `{id, question, answer}` for `test`, `train` (train minus validation) or a train slice."""
    if split == "test":
        return list(raw("test"))
    if split == "train":  # what may be trained on: the held-out eval slices (validation, selection) left out
        held = set(_slice_ids()["validation"]) | set(_slice_ids()[SELECTION_SLICE])
        return [r for r in raw("train") if r["id"] not in held]
    if split not in SLICES:
        raise ValueError(f"unknown GSM8K split {split!r}; use test, train or one of {list(SLICES)}")
    return train_slice(split)


def final_answer(answer: str) -> str:
    """The number after '####' in a GSM8K reference answer."""
    return answer.rsplit("####", 1)[-1].strip().replace(",", "")


# ---- scoring -----------------------------------------------------------------------------------

CURRENCY = "$€£¥"
# lm-eval strict-match's own group first, so that wherever it matches, the match is the same.
STRICT = re.compile(rf"#### (\-?[0-9\.\,]+|-?[{CURRENCY}]-?[0-9.,]*[0-9][0-9.,]*)")
LM_EVAL_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
MARKERS = re.compile(r"the (?:final )?answer is\s*:?|\\boxed\s*\{", re.IGNORECASE)
NUMBER = re.compile(rf"-?[{CURRENCY}]?-?(?:\d[\d,]*(?:\.\d+)?|\.\d+)")
CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations, e.g. <<48/2=24>>


def extract_strict(text: str) -> str | None:
    """The number after the answer marker (see module doc), or None."""
    if "####" in text:
        m = STRICT.search(text)
        return m.group(1) if m else None
    marker = MARKERS.search(text)
    if marker is None:
        return None
    m = NUMBER.search(text, marker.end())
    return m.group(0) if m else None


def extract_flexible(text: str) -> str | None:
    """The last number-like match anywhere (lm-eval flexible-extract), or None."""
    for m in reversed(LM_EVAL_FLEXIBLE.findall(text)):
        s = next((g for g in m if g), "")
        if any(c.isdigit() for c in s):
            return s
    return None


def normalize_number(s: str | None) -> str | None:
    """Canonical decimal string ("1,234.50" -> "1234.5", "$18." -> "18", "-0" -> "0"), or None."""
    if s is None:
        return None
    t = re.sub(rf"[\s,{CURRENCY}]", "", str(s)).rstrip(".")
    if t.count("-") > 1 or ("-" in t and not t.startswith("-")):
        return None
    try:
        d = Decimal(t)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def reference_number(answer: str | int | float) -> str | None:
    """The normalized number of a GSM8K reference text (`... #### N`) or of a bare number."""
    text = str(answer)
    return normalize_number(text.rsplit("####", 1)[-1] if "####" in text else text)


def is_correct(pred: str | None, ref: str | int | float) -> bool:
    """Numeric equality after normalization; a missing or unparseable prediction is wrong."""
    p, r = normalize_number(pred), reference_number(ref)
    return p is not None and r is not None and Decimal(p) == Decimal(r)


def score(completion: str, answer: str | int | float) -> dict:
    strict, flexible = extract_strict(completion), extract_flexible(completion)
    return {
        "extracted_strict": strict, "extracted_flexible": flexible,
        "correct_strict": is_correct(strict, answer), "correct_flexible": is_correct(flexible, answer),
    }


# ---- prompts -----------------------------------------------------------------------------------

def exemplars(k: int, seed: int) -> list[dict]:
    """k worked examples drawn (seeded) from the `exemplars` slice of GSM8K train (never test,
    validation or the synthesis pool)."""
    if k <= 0:
        return []
    pool = train_slice("exemplars")
    return random.Random(seed).sample(pool, min(k, len(pool)))


def exemplar_answer(answer: str) -> str:
    """A GSM8K reference solution without calculator annotations, ending in `#### N`."""
    return CALCULATOR.sub("", answer).strip()


def build_prompt(question: str, instruction: str, shots: list[dict]) -> list[dict]:
    """Chat messages: few-shot exemplars as earlier user/assistant turns, then the question."""
    messages: list[dict] = []
    for ex in shots:
        messages.append({"role": "user", "content": f"{ex['question']}\n\n{instruction}".strip()})
        messages.append({"role": "assistant", "content": exemplar_answer(ex["answer"])})
    messages.append({"role": "user", "content": f"{question}\n\n{instruction}".strip()})
    return messages


# lm-eval `gsm8k`: doc_to_text, target delimiter " ", fewshot delimiter "\n\n", generation_kwargs.until
LM_EVAL_STOP = ("Question:", "</s>", "<|im_end|>")


def build_plain_prompt(question: str, shots: list[dict]) -> str:
    """lm-eval's `gsm8k` prompt: each exemplar's question and reference solution as written in the
    train split (calculator annotations included, as lm-eval has them), then the question."""
    blocks = [f"Question: {ex['question']}\nAnswer: {ex['answer']}\n\n" for ex in shots]
    return "".join(blocks) + f"Question: {question}\nAnswer:"


# ---- the benchmark -----------------------------------------------------------------------------

def _chat_prompts(task, items: list[dict]) -> list[list[dict]]:
    return [build_prompt(it["question"], task.instruction, []) for it in items]


def _few_shot_prompts(task, items: list[dict]) -> list[list[dict]]:
    shots = exemplars(task.few_shot, task.seed)
    return [build_prompt(it["question"], task.instruction, shots) for it in items]


def _plain_prompts(task, items: list[dict]) -> list[str]:
    shots = exemplars(task.few_shot, task.seed)
    return [build_plain_prompt(it["question"], shots) for it in items]


def n_shots(prompt) -> int:
    """The exemplars in a prompt: earlier user/assistant turns, or earlier `Question:` blocks."""
    return prompt.count("Question: ") - 1 if isinstance(prompt, str) else (len(prompt) - 1) // 2


def _needs_shots(task) -> tuple[str, str] | None:
    return None if task.few_shot > 0 else ("few_shot", f"prompt={task.prompt} needs few_shot > 0")


def score_task(task, items: list[dict], prompts: list, outputs, cfg) -> list[dict]:
    """One record per item: sample 0's extractions and verdicts (`correct` = its flexible verdict),
    every sample's when there are several, and the item's accuracies over its samples."""
    records = []
    for it, prompt, out in zip(items, prompts, outputs):
        samples = [score(t, it["answer"]) for t in out.texts]
        records.append({
            "n_shots": n_shots(prompt), "answer": reference_number(it["answer"]), **samples[0],
            "correct": samples[0]["correct_flexible"],
            "metrics": {"accuracy_strict": mean(s["correct_strict"] for s in samples),
                        "accuracy_flexible": mean(s["correct_flexible"] for s in samples),
                        "format_rate": mean(s["extracted_strict"] is not None for s in samples)},
            **({"samples": samples} if len(samples) > 1 else {}),
        })
    return records


def _protected_questions() -> list[tuple[str, str, str, str, str | None]]:
    """The test questions, the validation slice the gate reads and the selection slice that ranks
    candidates: none may enter training data. Each carries its answer, so a reworded copy solved to
    the same answer is caught (numbers+answer)."""
    return ([("gsm8k_test", r["id"], r["question"], "all", reference_number(r["answer"])) for r in load("test")]
            + [(label, r["id"], r["question"], "all", reference_number(r["answer"]))
               for label, split in (("gsm8k_val", "validation"), ("gsm8k_sel", SELECTION_SLICE))
               for r in load(split)])


BENCHMARK = Benchmark(
    name="gsm8k", title="GSM8K",
    splits={"test": partial(load, "test"), "validation": partial(load, "validation"),
            SELECTION_SLICE: partial(load, SELECTION_SLICE)},
    test_splits=frozenset({"test"}), protected_splits=frozenset({"test", "validation", SELECTION_SLICE}),
    protocols={"chat": Protocol("chat", _chat_prompts, description="zero-shot: the question and the instruction"),
               "few_shot": Protocol("few_shot", _few_shot_prompts, check=_needs_shots,
                                    description="`few_shot` worked exemplars (train `exemplars` slice) as earlier turns"),
               "fewshot": Protocol("fewshot", _plain_prompts, stop=LM_EVAL_STOP, check=_needs_shots, chat=False,
                                   description="plain text, lm-eval `gsm8k`: `few_shot` Question/Answer exemplars")},
    metrics=(MetricSpec("accuracy_strict", "higher", "answer after `####` / 'The answer is' is right",
                        lm_eval="exact_match,strict-match"),
             MetricSpec("accuracy_flexible", "higher", "the last number is right", lm_eval="exact_match,flexible-extract"),
             MetricSpec("format_rate", "higher", "the completion has a strict-extractable final answer",
                        lm_eval="format_rate,strict-match")),
    score=score_task, decontamination=_protected_questions,
    headline={"test": ("accuracy_strict", "accuracy_flexible"), "validation": ("accuracy_flexible", "format_rate"),
              SELECTION_SLICE: ("accuracy_flexible",)},
    dataset=HUB_ID, dataset_config="main", card_metrics=("exact_match",),
    domain="math", checker=sys.modules[__name__],
    train_slices={name: partial(load, name) for name in ("train", "verifier", "exemplars", "pool")},
)


# ---- CLI ---------------------------------------------------------------------------------------

def score_file(path: str) -> tuple[list[dict], dict]:
    from pipeline.infra.io import JsonlError, iter_jsonl

    rows = []
    for lineno, row in enumerate(iter_jsonl(path), 1):
        completion, answer = row.get("completion"), row.get("answer")
        if not isinstance(completion, str):
            raise JsonlError(f"{path}: row {lineno}: 'completion' must be a string, got {type(completion).__name__}")
        if not isinstance(answer, (str, int, float)) or isinstance(answer, bool) or reference_number(answer) is None:
            raise JsonlError(f"{path}: row {lineno}: 'answer' must be a GSM8K reference ending in '#### N' or a number")
        rows.append({**row, **score(completion, answer)})
    n = len(rows)
    summary = {
        "accuracy_strict": sum(r["correct_strict"] for r in rows) / n if n else 0.0,
        "accuracy_flexible": sum(r["correct_flexible"] for r in rows) / n if n else 0.0,
        "n": n,
    }
    return rows, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.evals.gsm8k", description=__doc__.split("\n")[0])
    ap.add_argument("--completions", required=True, help="JSONL with 'completion' and 'answer' per row")
    args = ap.parse_args(argv)
    from pipeline.evals.common import finish_cli
    from pipeline.infra.io import JsonlError

    try:
        rows, summary = score_file(args.completions)
    except (JsonlError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return finish_cli(args.completions, rows, summary)


if __name__ == "__main__":
    sys.exit(main())
