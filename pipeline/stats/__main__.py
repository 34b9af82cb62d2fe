"""python -m pipeline.stats {paired,interval,power}: the statistics of `pipeline.stats` from a shell.

    python -m pipeline.stats paired --a ref.jsonl --b cand.jsonl [--alpha 0.05]
        rows {"id": ..., "correct": true|false} matched by id; b is compared against a
    python -m pipeline.stats paired --a gen_000/eval/gsm8k_val.jsonl --b gen_003/eval/gsm8k_val.jsonl --metric format_rate
        eval records: each row's `metrics.<name>` (a 0/1 per-item value) instead of `correct`
    python -m pipeline.stats interval --k 37 --n 50 [--alpha 0.05]
    python -m pipeline.stats power --rate 0.15 --margin 0.03 [--unpaired]   # items needed
    python -m pipeline.stats power --rate 0.15 --n 1319 [--unpaired]        # smallest detectable diff

The last stdout line is one JSON object (the line above it is for people). Bad input exits 2 with
a message on stderr naming the file and line, or the ids that do not match.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.infra.io import JsonlError, iter_jsonl_lines
from pipeline.stats.inputs import StatsError, align
from pipeline.stats.intervals import wilson
from pipeline.stats.paired import paired_binary
from pipeline.stats.power import items_needed, min_detectable


def _outcome(row: dict, metric: str | None, where: str) -> bool:
    if metric is None:
        if not isinstance(row.get("correct"), bool):
            raise StatsError(f"{where}: \"correct\" must be true or false, got {row.get('correct', '<missing>')!r}")
        return row["correct"]
    v = (row.get("metrics") or {}).get(metric, "<missing>")
    if isinstance(v, bool) or v not in (0, 1):
        raise StatsError(f"{where}: \"metrics.{metric}\" must be 0 or 1 (a per-item 0/1 value), got {v!r}")
    return bool(v)


def read_outcomes(path: Path, metric: str | None = None) -> dict:
    """id -> outcome from a JSONL file of {"id": str|int, "correct": bool} rows (blank lines skipped),
    or, with `metric`, of eval records whose `metrics.<metric>` is 0 or 1."""
    out, first_line = {}, {}
    try:
        for lineno, row in iter_jsonl_lines(path):
            where = f"{path}:{lineno}"
            if "id" not in row:
                raise StatsError(f"{where}: missing \"id\"")
            rid = row["id"]
            if isinstance(rid, bool) or not isinstance(rid, (str, int)):
                raise StatsError(f"{where}: \"id\" must be a string or an integer, got {rid!r}")
            outcome = _outcome(row, metric, where)
            if rid in out:
                raise StatsError(f"{where}: duplicate id {rid!r} (first on line {first_line[rid]})")
            out[rid], first_line[rid] = outcome, lineno
    except JsonlError as e:
        raise StatsError(str(e)) from None
    except OSError as e:
        raise StatsError(f"{path}: cannot read ({e.strerror or e})") from None
    if not out:
        raise StatsError(f"{path}: no rows")
    return out


def cmd_paired(args: argparse.Namespace) -> dict:
    a, b = read_outcomes(Path(args.a), args.metric), read_outcomes(Path(args.b), args.metric)
    align(a, b, names=(args.a, args.b))  # so a mismatch names the files, not "a" and "b"
    p = paired_binary(a, b, args.alpha)
    verdict = ("better" if p.diff > 0 else "worse") if p.p_value < args.alpha else "inconclusive"
    print(f"a {p.a:.4f} -> b {p.b:.4f} on {p.n} items: diff {p.diff:+.4f} "
          f"({1 - args.alpha:.0%} CI {p.lo:+.4f} .. {p.hi:+.4f}), McNemar p = {p.p_value:.4g}: {verdict}")
    return {"n": p.n, "a": p.a, "b": p.b, "diff": p.diff, "diff_lo": p.lo, "diff_hi": p.hi,
            "alpha": p.alpha, "method": p.method, "test": p.test, "p_value": p.p_value, "verdict": verdict,
            "both": p.both, "only_a": p.only_a, "only_b": p.only_b, "neither": p.neither}


def cmd_interval(args: argparse.Namespace) -> dict:
    iv = wilson(args.k, args.n, args.alpha)
    if iv.estimate is not None:
        print(f"{args.k}/{args.n} = {iv.estimate:.4f} ({1 - args.alpha:.0%} Wilson CI {iv.lo:.4f} .. {iv.hi:.4f})")
    return {"rate": iv.estimate, "lo": iv.lo, "hi": iv.hi, "n": iv.n, "k": args.k, "alpha": iv.alpha,
            "method": iv.method}


def cmd_power(args: argparse.Namespace) -> dict:
    out = {"rate": args.rate, "alpha": args.alpha, "power": args.power, "paired": not args.unpaired}
    if args.margin is not None:
        out |= {"margin": args.margin,
                "items": items_needed(args.margin, args.rate, args.alpha, args.power, not args.unpaired)}
        unit = "paired items" if out["paired"] else "items per arm"
        print(f"{out['items']} {unit} detect a difference of {args.margin}")
    else:
        out |= {"n": args.n, "min_detectable": min_detectable(args.n, args.rate, args.alpha, args.power,
                                                               not args.unpaired)}
        print(f"{args.n} items detect a difference of {out['min_detectable']}")
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pipeline.stats", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("paired", help="compare two per-item 0/1 result files (b against a)")
    p.add_argument("--a", required=True, help="reference JSONL: {\"id\", \"correct\"} rows")
    p.add_argument("--b", required=True, help="candidate JSONL, same ids")
    p.add_argument("--metric", help="read each row's metrics.<METRIC> (0/1; eval records) instead of correct")
    p.set_defaults(func=cmd_paired)
    p = sub.add_parser("interval", help="Wilson interval for k successes out of n")
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--n", type=int, required=True)
    p.set_defaults(func=cmd_interval)
    p = sub.add_parser("power", help="items needed for a margin, or the margin n items resolve")
    p.add_argument("--rate", type=float, required=True,
                   help="discordant-pair rate (paired) or baseline success rate (--unpaired)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--margin", type=float, help="difference to detect -> items needed")
    which.add_argument("--n", type=int, help="items available -> smallest detectable difference")
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument("--unpaired", action="store_true", help="two independent item sets (count per arm)")
    p.set_defaults(func=cmd_power)
    for p in sub.choices.values():
        p.add_argument("--alpha", type=float, default=0.05, help="two-sided level (default 0.05)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = args.func(args)
    except StatsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
