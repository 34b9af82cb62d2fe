"""What the synth stage found, passed from its steps to its statistics (one typed record, no dict bag).

`SynthRecord` collects, while the math and code steps run (`pipeline.synth.steps`) and while the
stage assembles the final data (`pipeline.synth.stage`): the kept problem groups, one rejection row
per discarded candidate (its filter and reason, as written to rejected.jsonl), the benchmark
matches, tokens per engine step, the verifiers' own measurements (pipeline.synth.verifier),
and the math and code counters that `pipeline.synth.stats` turns
into stats.json. `Assembled` is the final data the stage writes. `chat_row` / `pair_row` are the
row formats of new/train/val.jsonl and pairs.jsonl.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pipeline.synth.decontaminate import Match

KINDS = ("math", "code")


def chat_row(user: str, assistant: str, meta: dict) -> dict:
    """A trl conversational SFT row (new/train/val.jsonl)."""
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], "meta": meta}


def pair_row(user: str, chosen: str, rejected: str, meta: dict) -> dict:
    """A trl conversational preference row (pairs.jsonl)."""
    return {"prompt": [{"role": "user", "content": user}], "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], "meta": meta}


@dataclass
class Group:
    """One verified problem or task: its SFT rows (one per kept solution) and DPO pairs. Dedup,
    the val split and decontamination of solutions act on whole groups."""

    id: str
    kind: str  # math | code
    text: str  # the problem statement / the task's user prompt
    rows: list[dict]
    pairs: list[dict]
    task: dict | None = None  # code: the verified task (prompt, tests, entry_point) GRPO's code reward checks against


@dataclass
class MathCounts:
    parsed: int = 0  # problems past parsing, the exemplar-copy check and decontamination
    agreements: list[float] = field(default_factory=list)  # majority share of each problem with an answer
    sample_reasons: Counter = field(default_factory=Counter)  # how each sampled answer was read (strict, ...)
    majority_answers: Counter = field(default_factory=Counter)  # of kept problems
    from_pool: int = 0  # candidates that are GSM8K-train pool questions (synth.math.source pool|mixed)


@dataclass
class CodeCounts:
    # Field order is the key order of stats.json "code" (after candidates, tasks_kept, rows, rejected).
    parsed: int = 0  # tasks past parsing, the trivial-test filter and decontamination
    sandbox_runs: int = 0
    sandbox_errors: int = 0
    samples_total: int = 0
    samples_passed: int = 0

    def as_dict(self) -> dict:
        return dict(vars(self))


@dataclass
class SynthRecord:
    rejected: list[dict] = field(default_factory=list)  # rejected.jsonl rows
    groups: list[Group] = field(default_factory=list)  # verified groups, before dedup and the val split
    decontam: list[dict] = field(default_factory=list)  # every benchmark match (Match.as_dict())
    tokens: dict[str, int] = field(default_factory=dict)  # completion tokens per engine step that ran
    candidates: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})  # requests written
    math: MathCounts = field(default_factory=MathCounts)
    code: CodeCounts = field(default_factory=CodeCounts)
    verifier: list[dict] = field(default_factory=list)  # verifier.jsonl: votes on held-out GSM8K questions
    code_mutants: list[dict] = field(default_factory=list)  # code_mutants.jsonl: kept tests vs AST mutants

    def tally(self, kind: str) -> str:
        """The progress line of a kind so far: written, kept, rejected by filter (the log's synth lines)."""
        by = Counter(r["filter"] for r in self.rejected if r["kind"] == kind)
        why = ", ".join(f"{f} {n}" for f, n in by.most_common())
        kept = sum(g.kind == kind for g in self.groups)
        return (f"{kind}: {self.candidates.get(kind, 0)} written, {kept} kept, {sum(by.values())} rejected"
                + (f" ({why})" if why else ""))

    def reject(self, kind: str, item_id: str, filt: str, reason: str, text: str = "", **extra) -> None:
        """One rejected.jsonl row: which filter dropped the candidate, why, and its text (cut)."""
        self.rejected.append({"kind": kind, "id": item_id, "filter": filt, "reason": reason, "text": text[:500], **extra})

    def contaminated(self, kind: str, item_id: str, reason: str, text: str, hit: Match) -> None:
        """A candidate dropped for matching a benchmark item: counted as a hit and rejected."""
        self.decontam.append(hit.as_dict())
        self.reject(kind, item_id, "decontaminate", reason, text, **hit.as_dict())

    def count_tokens(self, step: str, outputs: list[dict]) -> None:
        self.tokens[step] = sum(r["tokens"] for r in outputs)

    def rejections_by_filter(self, kind: str) -> dict[str, dict[str, int]]:
        """{filter: {reason: count}} of one kind's rejections (stats.json "math"/"code" "rejected")."""
        per: dict[str, dict[str, int]] = {}
        for r in self.rejected:
            if r["kind"] == kind:
                f = per.setdefault(r["filter"], {})
                f[r["reason"]] = f.get(r["reason"], 0) + 1
        return per


@dataclass
class Assembled:
    """The stage's final data (after decontaminating solutions, dedup, the val split and the mixture)."""

    groups: list[Group]  # the kept groups
    new: list[dict]  # their rows, meta.split train|val (new.jsonl)
    val: list[dict]  # val.jsonl
    train: list[dict]  # the mixture (train.jsonl)
    pairs: list[dict]  # pairs.jsonl (train-split groups only)
    prompts: list[dict]  # prompts.jsonl: RL prompts (pipeline.synth.prompts)
    mixture: dict  # pipeline.synth.mixture.build's info
    earlier_generations: int  # earlier generations whose rows were in the pool
    accumulated: dict = field(default_factory=dict)  # mixture.Accumulated.record(): the line drawn on, who was excluded
