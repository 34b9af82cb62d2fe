"""python -m pipeline.gate simulate [flags] [hydra overrides]: the configured gate's operating
characteristics, one JSON object per scenario (pipeline.gate.simulate).

    python -m pipeline.gate simulate --rate 0.3 --discordance 0.2 --delta -0.1 0 experiment=cpu
    python -m pipeline.gate simulate --scope capability gate --sims 2000 experiment=gpu

Every combination of the listed --rate, --delta and --discordance values and --scope is one row.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.gate", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="simulate the gate's decisions on paired outcomes")
    sim.add_argument("--n", type=int, default=None, help="items at the first look (default: gate.looks[0])")
    sim.add_argument("--rate", type=float, nargs="+", default=[0.3], help="the reference's share right")
    sim.add_argument("--delta", type=float, nargs="+", default=[-0.1, 0.0], help="candidate minus reference")
    sim.add_argument("--discordance", type=float, nargs="+", default=[0.2], help="share of items that differ")
    sim.add_argument("--sims", type=int, default=1000, help="simulated draws per scenario")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--scope", nargs="+", choices=("capability", "gate"), default=["capability"],
                     help="capability alone, or the whole gate with its drift budgets")
    sim.add_argument("--drift-n", type=int, default=60, help="items of a budget whose suite has no drift.subset size")
    sim.add_argument("--drift-rate", type=float, default=0.5, help="drift metrics' share (0.5: the widest intervals)")
    sim.add_argument("--drift-discordance", type=float, default=0.2)
    argv = sys.argv[1:] if argv is None else list(argv)
    # Hydra overrides (key=value) are taken out first: a list flag (--delta -0.1 0) would swallow them
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    args = ap.parse_args([a for a in argv if a not in overrides])
    from pipeline.config.compose import EXPECTED, compose
    from pipeline.gate.simulate import Scenario, SimulationError, budget_sizes, simulate

    try:
        cfg = compose(overrides)
        for scope, rate, delta, disc in itertools.product(args.scope, args.rate, args.delta, args.discordance):
            budgets = budget_sizes(cfg, args.drift_n) if scope == "gate" else None
            row = simulate(cfg.gate, Scenario(rate, delta, disc, args.n), args.sims, args.seed, budgets,
                           args.drift_rate, args.drift_discordance)
            print(json.dumps({"profile": cfg.profile, **row}), flush=True)
    except (SimulationError, *EXPECTED) as e:
        print(f"python -m pipeline.gate simulate: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
