"""`selfpost`: the pipeline's commands under one name (installed by `pip install -e .` / `make setup`).

    selfpost run [overrides]               = python -m pipeline.loop        (the main job)
    selfpost run --dry-run [overrides]     the stages, budgets and estimated time; writes nothing
    selfpost report [--lineage DIR]        = python -m pipeline.report
    selfpost <command> --help              what that command does and takes
    python -m pipeline <command> ...       the same without the installed script

Each subcommand runs its module as `python -m <module>` would (same arguments, help, exit status);
this file only dispatches, so it imports none of them.
"""

from __future__ import annotations

import runpy
import sys

# subcommand -> (module, what it does); the modules' own --help say how
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("pipeline.loop", "run the lineage's generations: propose, synth, train, eval, drift, gate (--dry-run: plan only)"),
    "report": ("pipeline.report", "a lineage's report: table, verdicts, HTML, comparisons of studies"),
    "evals": ("pipeline.evals", "evaluate a model on the eval tasks; --list: the registered benchmarks"),
    "study": ("pipeline.loop.study", "whole lineages, arms x seeds (conf/study/)"),
    "promote": ("pipeline.loop.promote", "select and promote among a sweep's candidates"),
    "ledger": ("pipeline.loop.ledger", "check or rebuild a lineage's ledger from its stage manifests"),
    "stats": ("pipeline.stats", "paired tests, intervals and power from a shell"),
    "probes": ("pipeline.probes", "validate the drift probe suites; --list: their metrics and directions"),
    "models": ("pipeline.engine.models", "provision a model (embedded:, tiny:, a hub id or a path)"),
    "propose": ("pipeline.propose", "validate a teacher's raw proposal text against the search space"),
    "train": ("pipeline.train", "the training worker: run one <gen>/train/job.json"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: selfpost <command> [args ...]   (or: python -m pipeline <command> ...)", "",
             "A model trains its own successor; these are the commands (selfpost <command> --help for each):"]
    lines += [f"  {name:{width}s}  {what}   [python -m {mod}]" for name, (mod, what) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; the commands: {', '.join(COMMANDS)} (selfpost --help)", file=sys.stderr)
        return 2
    module = COMMANDS[name][0]
    sys.argv = [f"selfpost {name}", *rest]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:  # the module's own exit status
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
