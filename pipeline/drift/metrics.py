"""The drift stage's own metrics (not a probe suite's), declared once with their good direction.

`{ref}` stands for a reference generation (`REFS`: gen 0 and the parent), `{n}` for `drift.distinct_n`.
The suites' metrics are declared with the suites (pipeline.probes); gate-budget validation
(`pipeline.probes.budgetable`, `pipeline.infra.metricspec`), the report's columns and the plots read these.

`evals` says which eval tasks' records a metric reads (so which benchmark splits: resolved against
`eval.tasks` by pipeline.infra.metricspec): "" none, "decision" the tasks on non-test splits, "test" the
tasks on test splits, "all" every task. A metric that reads a test split never decides anything.
`identity` is the value a generation has against itself (KL 0, agreement 1): what a `*_parent`
metric's step budget is judged against, since the parent's distance from itself is the baseline.

    python -m pipeline.probes --list     # the suites' metrics; these are the stage's own
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REFS = ("gen0", "parent")  # the generations a candidate is compared with


@dataclass(frozen=True)
class DriftMetric:
    template: str  # ledger key, with `{ref}` and/or `{n}` placeholders
    direction: str | None  # higher | lower | None (no better side: mean length)
    budgetable: bool = False  # whether `gate.budgets` may name it
    evals: str = ""  # "" | decision | test | all: which eval tasks' records it reads (module docstring)
    identity: float | None = None  # its value for a generation against itself (distances only)

    def key(self, **fields: object) -> str:
        return self.template.format(**fields)

    def matches(self, key: str) -> bool:
        """Whether `key` is one of this metric's keys (any reference, any n)."""
        pattern = re.escape(self.template).replace(r"\{ref\}", "(?:" + "|".join(REFS) + ")")
        return re.fullmatch(pattern.replace(r"\{n\}", r"\d+"), key) is not None

    def keys(self) -> list[str]:
        """Every key of a `{ref}` family (one per reference); [] when `{n}` is left open."""
        if "{n}" in self.template:
            return []
        return [self.key(ref=r) for r in REFS] if "{ref}" in self.template else [self.template]


KL = DriftMetric("drift.kl_{ref}", "lower", budgetable=True, identity=0.0)  # teacher-forced, nats/token
AGREEMENT = DriftMetric("drift.agreement_{ref}", "higher", budgetable=True, identity=1.0)  # probe outcomes unchanged
# eval items unchanged, on the validation (non-test) tasks only: the budgetable one
EVAL_AGREEMENT = DriftMetric("drift.eval_agreement_{ref}", "higher", budgetable=True, evals="decision", identity=1.0)
# the same on the test tasks: reported, never budgeted (it reads test splits)
EVAL_AGREEMENT_TEST = DriftMetric("drift.eval_agreement_test_{ref}", "higher", evals="test", identity=1.0)
ITEMS_GAINED = DriftMetric("drift.items_gained_gen0", "higher", evals="all")
ITEMS_LOST = DriftMetric("drift.items_lost_gen0", "lower", evals="all")
MEAN_LENGTH = DriftMetric("drift.mean_length", None)  # tokens per free generation
DISTINCT = DriftMetric("drift.distinct_{n}", "higher")  # of the free generations; falling = collapse
SYNTH_DISTINCT = DriftMetric("drift.synth_distinct_{n}", "higher")  # of the synthetic data

ALL = (KL, AGREEMENT, EVAL_AGREEMENT, EVAL_AGREEMENT_TEST, ITEMS_GAINED, ITEMS_LOST, MEAN_LENGTH, DISTINCT,
       SYNTH_DISTINCT)
# The report's summary table shows these after the suites' metrics.
COLUMNS = (KL.key(ref="gen0"), ITEMS_GAINED.key(), ITEMS_LOST.key())


def owns(key: str) -> bool:
    """Whether `key` is one of the drift stage's own metrics (so no suite may declare it)."""
    return any(m.matches(key) for m in ALL)


def find(key: str) -> DriftMetric | None:
    """The drift stage's own metric that `key` is one of, or None."""
    return next((m for m in ALL if m.matches(key)), None)


def identity_value(key: str) -> float | None:
    """For a distance from the parent (`*_parent`: KL, agreement), the parent's value against
    itself, the reference its step budget is judged against; None for any other key."""
    m = find(key)
    return m.identity if m is not None and "{ref}" in m.template and key == m.key(ref="parent") else None


def budgetable() -> dict[str, str]:
    """The keys a gate budget may name -> direction."""
    return {k: m.direction for m in ALL if m.budgetable and m.direction for k in m.keys()}
