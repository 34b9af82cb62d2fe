"""What a run will do, before it does it: the stages left, the items and token budgets of each, and an
estimated time from this machine's recorded throughput. Writes nothing.

    python -m pipeline.loop --dry-run [overrides]          # the main job, validated, not run
    make generation ARGS="--dry-run model=tiny:qwen3 experiment=smoke"

The config is composed and checked as for a real run (unknown keys, values, data, the model), then the
plan is printed: per stage what it generates or trains, and the seconds it took in this lineage's
earlier generations (their manifests, through the ledger; `pipeline.infra.progress.stage_seconds`), or
else in `make bench`'s smoke generation (bench/results.json), marked as such. No lineage directory,
ledger or Hydra run directory is made.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.config import Config, ConfigError
from pipeline.loop import table as stages
from pipeline.lineage import Lineage
from pipeline.infra.progress import BASELINE, fmt_seconds, kind, stage_seconds

BENCH = Path(__file__).resolve().parents[2] / "bench" / "results.json"


def todo(cfg: Config, lineage: Lineage) -> list[tuple[str, str]]:
    """(generation, stage) for each stage this run will still do, in order: the baseline's unfinished
    stages, then per generation up to `cfg.generations` the shared stages and each candidate's."""
    rows = lineage.generation_rows()
    gen0 = lineage.gen(0)
    out = [(gen0.name, s.name) for s in stages.BASELINE if not gen0.is_done(s.name)]
    newest = rows[-1] if rows else {"gen": 0, "status": "promoted"}
    pending = newest["gen"] > 0 and newest.get("status") == "candidate"
    first = newest["gen"] if pending else newest["gen"] + 1
    target = cfg.generations if cfg.generations >= 0 else first
    k = max(1, cfg.propose.candidates)
    for g in range(first, target + 1):
        gen = lineage.gen(g)
        out += [(gen.name, s.name) for s in stages.SHARED if not gen.is_done(s.name)]
        out += [(gen.name, s.name) for s in stages.CANDIDATE if not (k == 1 and gen.is_done(s.name))] * k
    return out


def budgets(cfg: Config, stage: str) -> str:
    """What one run of `stage` generates or trains under `cfg`: items x samples x max new tokens."""
    s, t, d = cfg.synth, cfg.train, cfg.drift
    if stage == "propose":
        if cfg.propose.mode != "teacher":
            return f"no generation (propose.mode={cfg.propose.mode})"
        return f"1 request, <= {cfg.propose.max_tokens} tokens, {cfg.propose.candidates} candidate(s)"
    if stage == "synth":
        m, c = s.math, s.code
        parts = [f"math {m.n_problems} problems x {m.max_tokens_problem} tok, x {m.k_solutions} solutions x "
                 f"{m.max_tokens_solution} tok"] if m.n_problems else []
        parts += [f"code {c.n_tasks} tasks x {c.max_tokens_task} tok, x {c.k_solutions} solutions x "
                  f"{c.max_tokens_solution} tok"] if c.n_tasks else []
        parts += [f"verifier {s.verifier.n_questions} questions"] if s.verifier.n_questions else []
        return "; ".join(parts) or "nothing (no math problems, no code tasks)"
    if stage == "train":
        hp = cfg.propose.hparams
        steps = f"steps from the epochs, at least {t.min_steps}" if t.min_steps else "steps from the epochs"
        steps += f", at most {t.max_steps}" if t.max_steps > 0 else ""
        return (f"{t.method}, {steps}; proposed hparams (fallback: {hp.num_examples} examples, "
                f"{hp.epochs} epochs, batch {hp.batch_size}, max_seq_length {hp.max_seq_length})")
    if stage == "eval":
        from pipeline.evals import selection

        chooser = selection.selection_task(cfg)  # scored only where candidates are ranked (pipeline.evals.selection)
        return "; ".join(f"{name} {task.n or 'all'} items x {task.n_samples} x {task.max_tokens} tok"
                         + (" (only candidates among several)" if name == chooser else "")
                         for name, task in cfg.eval.tasks.items() if name != chooser or cfg.propose.candidates > 1)
    if stage == "drift":
        if not d.enabled:
            return "off (drift.enabled=false)"
        cap = f"<= {d.max_items_per_suite} items each" if d.max_items_per_suite else "subsets per drift.subset"
        return (f"{len(d.suites)} suites ({', '.join(d.suites)}), {cap}, x {d.max_tokens} tok; "
                f"KL on {d.kl_prompts or 'all'} prompts")
    if stage == "gate":
        return f"decision on {cfg.gate.metric}; extra validation looks when inconclusive"
    return ""


def bench_seconds(profile: str) -> dict[tuple[str, str], float]:
    """`make bench`'s smoke generation's stage times, for the smoke profile only (other profiles'
    stages take other times; a guess from them would mislead)."""
    if profile != "smoke" or not BENCH.exists():
        return {}
    try:
        results = json.loads(BENCH.read_text())
    except ValueError:
        return {}
    runs = results if isinstance(results, list) else list(results.values()) if isinstance(results, dict) else []
    found = next((r for r in runs if isinstance(r, dict) and r.get("name") == "stages"), None)
    secs = (found or {}).get("seconds") or {}
    return {(kind, k): float(v) for k, v in secs.items() for kind in (BASELINE, "generation")
            if isinstance(v, (int, float))}


def render(cfg: Config, lineage: Lineage) -> str:
    plan = todo(cfg, lineage)
    rows = lineage.generation_rows()
    times, source = stage_seconds(rows), f"this lineage's {len(rows)} earlier generation(s)"
    if not times:
        times, source = bench_seconds(cfg.profile), f"make bench's smoke generation ({BENCH.name})"
    lines = [f"dry run: lineage {lineage.path} ({'exists, ' + str(len(rows)) + ' generation rows' if rows else 'new'}), "
             f"profile {cfg.profile}, model {cfg.model.spec}, target generations={cfg.generations}",
             f"{len(plan)} stage(s) to run:"]
    total, unknown = 0.0, []
    for gen, stage in plan:
        s = times.get((kind(gen), stage))
        total += s or 0.0
        if s is None:
            unknown.append(stage)
        when = fmt_seconds(s) if s is not None else "?"
        lines.append(f"  {gen:8s} {stage:8s} {when:>8s}  {budgets(cfg, stage)}")
    if not plan:
        lines.append("  nothing: the lineage already has its target generations")
    elif not times:
        lines.append("estimated time: unknown (no earlier generation of this lineage, no bench results for this profile)")
    else:
        more = f" + the unmeasured {', '.join(sorted(set(unknown)))}" if unknown else ""
        lines.append(f"estimated time: {fmt_seconds(total)}{more} (from {source})")
    lines.append("nothing was written (dry run)")
    return "\n".join(lines)


def dry_run(overrides: list[str]) -> int:
    """`python -m pipeline.loop --dry-run [overrides]`: validate everything a run checks, print the plan."""
    from pipeline import evals
    from pipeline.config.compose import compose
    from pipeline.engine import models

    flags = [a for a in overrides if a.startswith("-")]
    if flags:  # a sweep (-m) or Hydra's own flags: `--cfg job` composes those
        raise ConfigError(f"--dry-run plans one run and takes overrides only, not {' '.join(flags)} "
                          f"(one job of a sweep: its overrides without -m)")
    cfg = compose(overrides)
    evals.check_inputs(cfg)
    if Path(cfg.model.spec).expanduser().exists() or cfg.model.spec.startswith((".", "/", "~")):
        models.check_model_dir(Path(cfg.model.spec).expanduser())  # a named model is provisioned at the first run
    print(render(cfg, Lineage(cfg.paths.root, cfg.paths.lineage)))
    return 0
