"""The drift stage's own metrics (not a probe suite's), declared once with their good direction.

`{ref}` stands for a reference generation (`REFS`: gen 0 and the parent), `{n}` for `drift.distinct_n`.
The suites' metrics are declared with the suites (pipeline.probes); gate-budget validation
(`pipeline.probes.budgetable`, `pipeline.infra.metricspec`), the report's columns and the plots read these.

Each is a `pipeline.infra.metricspec.MetricSpec` (the one metric vocabulary), registered in the
"drift metric" registry the bottom layer reads. `reads` says which eval tasks' records a metric reads
(so which benchmark splits: resolved against `eval.tasks` by pipeline.infra.metricspec): "" none,
"decision" the tasks on non-test splits, "test" the tasks on test splits, "all" every task. A metric that reads a test split never decides anything.
`identity` is the value a generation has against itself (KL 0, agreement 1): what a `*_parent`
metric's step budget is judged against, since the parent's distance from itself is the baseline.

    python -m pipeline.probes --list     # the suites' metrics; these are the stage's own
"""

from __future__ import annotations

from pipeline.infra.metricspec import REFS, MetricSpec, budget_keys, declared
from pipeline.infra.registry import Registry

__all__ = ["REFS", "ALL", "COLUMNS", "DRIFT_METRICS", "owns", "find", "identity_value", "budgetable"]

KL = MetricSpec("drift.kl_{ref}", "lower", budgetable=True, identity=0.0)  # teacher-forced, nats/token
AGREEMENT = MetricSpec("drift.agreement_{ref}", "higher", budgetable=True, identity=1.0)  # probe outcomes unchanged
# eval items unchanged, on the validation (non-test) tasks only: the budgetable one
EVAL_AGREEMENT = MetricSpec("drift.eval_agreement_{ref}", "higher", budgetable=True, reads="decision", identity=1.0)
# the same on the test tasks: reported, never budgeted (it reads test splits)
EVAL_AGREEMENT_TEST = MetricSpec("drift.eval_agreement_test_{ref}", "higher", reads="test", identity=1.0)
ITEMS_GAINED = MetricSpec("drift.items_gained_gen0", "higher", reads="all")
ITEMS_LOST = MetricSpec("drift.items_lost_gen0", "lower", reads="all")
MEAN_LENGTH = MetricSpec("drift.mean_length", None)  # tokens per free generation
DISTINCT = MetricSpec("drift.distinct_{n}", "higher")  # of the free generations; falling = collapse
SYNTH_DISTINCT = MetricSpec("drift.synth_distinct_{n}", "higher")  # of the synthetic data

ALL = (KL, AGREEMENT, EVAL_AGREEMENT, EVAL_AGREEMENT_TEST, ITEMS_GAINED, ITEMS_LOST, MEAN_LENGTH, DISTINCT,
       SYNTH_DISTINCT)
DRIFT_METRICS: Registry[MetricSpec] = Registry("drift metric")
for _m in ALL:
    DRIFT_METRICS.register(_m)
# The report's summary table shows these after the suites' metrics.
COLUMNS = (KL.expand(ref="gen0"), ITEMS_GAINED.key, ITEMS_LOST.key)


def owns(key: str) -> bool:
    """Whether `key` is one of the drift stage's own metrics (so no suite may declare it)."""
    return find(key) is not None


def find(key: str) -> MetricSpec | None:
    """The drift stage's own metric that `key` is one of, or None."""
    return declared(ALL, key)


def identity_value(key: str) -> float | None:
    """For a distance from the parent (`*_parent`: KL, agreement), the parent's value against
    itself, the reference its step budget is judged against; None for any other key."""
    m = find(key)
    return m.identity if m is not None and "{ref}" in m.key and key == m.expand(ref="parent") else None


def budgetable() -> dict[str, str]:
    """The keys a gate budget may name -> direction."""
    return budget_keys(ALL)
