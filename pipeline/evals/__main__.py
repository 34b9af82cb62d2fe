"""python -m pipeline.evals --list [--plugins mod ...]: every registered benchmark, its splits
(test = reported only, protected = never trained on), protocols (with stop strings), metrics
(with the direction that is better), headline metrics per split, the dataset id and card metrics,
and the synthesis domain it models.

python -m pipeline.evals [hydra overrides]: evaluate any model on every task of `eval.tasks`
(pipeline.evals.run_cli)."""

from __future__ import annotations

import argparse
import importlib
import sys


def describe() -> str:
    from pipeline.evals import BENCHMARKS

    lines = []
    for b in BENCHMARKS:
        lines.append(f"{b.name} ({b.title}){'  [sandboxed]' if b.sandboxed else ''}")
        for s in b.splits:
            marks = [m for m, on in (("test", s in b.test_splits), ("protected", s in b.protected_splits)) if on]
            lines.append(f"  split    {s}{'  [' + ', '.join(marks) + ']' if marks else ''}")
        for p in b.protocols.values():
            lines.append(f"  protocol {p.name}  stop={list(p.stop)}{'  ' + p.description if p.description else ''}")
        for m in b.metrics:
            lines.append(f"  metric   {m.key}  ({m.direction} is better){'  ' + m.description if m.description else ''}")
        for split, names in b.headline.items():
            lines.append(f"  headline {split}: {', '.join(names)}")
        card = [f"dataset {b.dataset}"] if b.dataset else []
        card += [f"card metrics {', '.join(b.card_metrics)}"] if b.card_metrics else []
        card += [f"models synthesis domain {b.domain} (train slices {', '.join(b.train_slices) or 'none'})"] if b.domain else []
        lines += [f"  {c}" for c in card]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.evals", description=__doc__.split("\n")[0])
    ap.add_argument("--list", action="store_true", help="list the registered benchmarks")
    ap.add_argument("--plugins", nargs="*", default=[], help="modules to import first (they register benchmarks)")
    args = ap.parse_args(argv)
    for name in args.plugins:
        importlib.import_module(name)
    if not args.list:
        ap.print_help()
        return 2
    print(describe())
    return 0


if __name__ == "__main__":
    if {"--list", "--plugins"} & set(sys.argv[1:]):
        sys.exit(main())
    from pipeline.evals.run_cli import cli

    sys.exit(cli())
