"""Stage `propose`: the teacher picks its successor's training hyperparameters.

The teacher (ctx.teacher's model) sees the search space, the lineage history (each earlier
generation's accepted hparams, data stats, validation metrics, gate verdict and reasons) and the
current data stats, and answers in JSON: schema-constrained on vLLM, parsed and re-asked (up to
`propose.retries`) elsewhere. Every answer goes through `validate` (clamp / replace / fall back), so
training never sees an out-of-range value. `propose.candidates=K` yields K distinct settings.
An answer identical to a setting the prompt showed (the history's rows) or to the defaults is
recorded as `echo`.

`propose.mode`: `teacher` (the above) | `random` (a control arm: settings drawn from the same space,
seeded by `seed` and the generation, source `random`) | `config` (`propose.hparams` as-is, source
`config`). Neither of the last two opens an engine.

Writes gen_NNN/propose/: prompt.txt, raw.txt, parsed.json, accepted.json (top-level `hparams` is
what training uses; `candidates` holds all K).

    python -m pipeline.loop propose.candidates=3        # as part of a generation
    python -m pipeline.loop propose.mode=random         # the random-search control arm
    python -m pipeline.propose validate RAW.txt                # validate raw teacher text (CLI)
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, field

from pipeline.config import Config
from pipeline.lineage.runner import StageContext, StageResult
from pipeline.engine import GenParams
from pipeline.infra.io import atomic_write_json, atomic_write_text, hash_obj
from pipeline.propose.prompt import best_setting, data_stats, history, json_schema, render
from pipeline.propose.validate import (SOURCES, Validated, defaults_dict, fallback, mark_echo, perturb, sample,
                                      validate)

__all__ = ["run", "validate", "Validated", "SOURCES"]
log = logging.getLogger(__name__)


def _as_prompt(eng, text: str):
    """Chat messages when the model has a chat template, else the raw text."""
    tok = getattr(eng, "tokenizer", None)
    if tok is not None and not getattr(tok, "chat_template", None):
        return text
    return [{"role": "user", "content": text}]


def _fit_prompts(cfg: Config, eng, build) -> tuple[list[str], list, int] | None:
    """Prompts with as much history as fits the context (model.max_model_len - propose.max_tokens)."""
    limit = cfg.model.max_model_len - cfg.propose.max_tokens
    encode = getattr(eng, "encode", None)
    for n_hist in range(cfg.propose.history, -1, -1):
        texts = build(n_hist)
        prompts = [_as_prompt(eng, t) for t in texts]
        if encode is None or max(len(encode(p)) for p in prompts) <= limit:
            return texts, prompts, n_hist
    return None


def _distinct(cands: list[Validated], anchor: dict, anchor_name: str, space) -> list[Validated]:
    """Replace repeats with deterministic perturbations of the anchor (best so far or the default)."""
    out: list[Validated] = []
    for v in cands:
        taken = [c.hparams for c in out]
        if v.hparams in taken:
            p = perturb(anchor, space, taken)
            if p is None:
                v.warnings.append("repeats an earlier candidate; the space has no distinct neighbour left")
            else:
                note = f"repeated an earlier candidate ({v.source}); replaced: {p[1]} of {anchor_name}"
                v = Validated(hparams=p[0], warnings=[*v.warnings, note], fallback=True, source="fallback",
                              rationale=note)
        out.append(v)
    return out


@dataclass
class _Asked:
    """What asking the teacher produced, for the files and the StageResult."""

    texts: list[str]  # the prompt per candidate
    results: list[Validated]
    raw: list[str] = field(default_factory=list)
    parsed: list[dict] = field(default_factory=list)
    tokens: int = 0
    attempts: int = 0
    json_schema: bool = False
    history_shown: int = 0
    engine: dict = field(default_factory=dict)


def _ask(ctx: StageContext, build, best_hp: dict | None, shown) -> _Asked:
    """One engine, one batched generate call per attempt; only unparseable answers are re-asked."""
    cfg = ctx.cfg
    pc = cfg.propose
    with ctx.engine(ctx.teacher.model_dir) as eng:
        fitted = _fit_prompts(cfg, eng, build)
        if fitted is None:
            why = "the prompt does not fit model.max_model_len - propose.max_tokens even without history"
            return _Asked(build(0), [fallback(pc.space, pc.hparams, best_hp, why) for _ in range(pc.candidates)])
        texts, prompts, n_hist = fitted
        use_schema = bool(getattr(eng, "supports_json_schema", False))
        asked = _Asked(texts, [], json_schema=use_schema, history_shown=n_hist)
        schema = json_schema(pc.space) if use_schema else None
        results: list[Validated | None] = [None] * len(prompts)
        pending = list(range(len(prompts)))
        for attempt in range(pc.retries + 1):
            if not pending:
                break
            asked.attempts += 1
            # On a re-ask greedy decoding would repeat the same unparseable answer, so sample instead.
            temp = pc.retry_temperature if attempt > 0 and pc.temperature == 0 else pc.temperature
            # chat prompts stop at the template's end of turn, also on a base teacher (eos <|endoftext|>)
            eot = [] if isinstance(prompts[0], str) else [eng.end_of_turn_id()]
            params = GenParams(n=1, temperature=temp, max_tokens=pc.max_tokens, seed=cfg.seed + attempt,
                               json_schema=schema, stop_token_ids=eot)
            outs = eng.generate([prompts[i] for i in pending], params)
            for i, o in zip(pending, outs):
                text = o.texts[0] if o.texts else ""
                n_tok = sum(o.completion_tokens)
                finish = o.finish_reasons[0] if o.finish_reasons else "?"
                asked.tokens += n_tok
                v = mark_echo(validate(text, pc.space, pc.hparams, best_hp), shown(n_hist))
                asked.raw.append(f"### attempt {attempt} candidate {i} (finish={finish}, tokens={n_tok})\n{text}\n")
                asked.parsed.append({"attempt": attempt, "candidate": i, "finish": finish, "parsed": v.parsed,
                                     "source": v.source, "warnings": list(v.warnings)})
                if not v.fallback or attempt == pc.retries:
                    if v.fallback and attempt > 0:
                        v.warnings.append(f"no JSON object after {attempt + 1} attempts")
                    results[i] = v
            pending = [i for i in pending if results[i] is None]
        asked.results = [r for r in results if r is not None]
        stats = getattr(eng, "stats", None)
        asked.engine = stats.as_dict() if hasattr(stats, "as_dict") else {}
    log.info("propose: %d attempt(s), history rows shown %d, json_schema=%s", asked.attempts, n_hist, use_schema)
    return asked


def run(ctx: StageContext) -> StageResult:
    cfg = ctx.cfg
    pc = cfg.propose
    K = pc.candidates
    rows = history(ctx.lineage, ctx.gen, cfg.gate.metric, cfg.eval)  # no metric that read a test split
    best = best_setting(rows, cfg.gate.metric)
    best_hp = best[0] if best else None
    data_now = data_stats(ctx.teacher.path / "synth" / "stats.json")

    if pc.mode == "teacher":
        def build(n_hist: int) -> list[str]:
            shown = rows[-n_hist:] if n_hist else []
            return [render(pc.space, shown, data_now, best, cfg.gate.metric, i, K) for i in range(K)]

        def shown(n_hist: int) -> list[tuple[str, dict]]:
            """The settings an answer must not merely repeat: the defaults and the rows the prompt showed."""
            seen = [("the config default", defaults_dict(pc.space, pc.hparams))]
            seen += [(f"the best so far ({best[1]})", best_hp)] if best else []
            return seen + [(r.name, r.hparams) for r in (rows[-n_hist:] if n_hist else []) if r.hparams]

        asked = _ask(ctx, build, best_hp, shown)
        sep = "\n\n" + "=" * 20 + " candidate {} " + "=" * 20 + "\n\n"
        prompt = asked.texts[0] if K == 1 else "".join(sep.format(i) + t for i, t in enumerate(asked.texts))
        atomic_write_text(ctx.out / "prompt.txt", prompt)
        atomic_write_text(ctx.out / "raw.txt", "\n".join(asked.raw))
        atomic_write_json(ctx.out / "parsed.json", asked.parsed)
        # Repeats become perturbations of the fallback anchor (the best so far, or the default).
        anchor = fallback(pc.space, pc.hparams, best_hp, "").hparams
        cands = _distinct(asked.results, anchor, best[1] if best else "the config default", pc.space)
    elif pc.mode == "random":
        asked = _Asked([], [])
        rng = random.Random(cfg.seed * 1_000_003 + ctx.gen.index)  # the same draw for the same seed and generation
        cands = [Validated(hparams=sample(pc.space, rng), source="random",
                           rationale=f"propose.mode=random: drawn from the search space (seed {cfg.seed}, "
                                     f"generation {ctx.gen.index})") for _ in range(K)]
        cands = _distinct(cands, cands[0].hparams, "the first random draw", pc.space)
    else:
        asked = _Asked([], [])
        cands = [Validated(hparams=defaults_dict(pc.space, pc.hparams), source="config",
                           rationale="propose.mode=config: the configured hparams") for _ in range(K)]
        # Perturb the configured setting, not the history's best: the user asked for this setting.
        cands = _distinct(cands, cands[0].hparams, "the configured hparams", pc.space)

    first = cands[0]
    accepted = {**first.record(), "candidates": [c.record() for c in cands], "history_best": best[1] if best else None,
                "json_schema": asked.json_schema, "attempts": asked.attempts}
    atomic_write_json(ctx.out / "accepted.json", accepted)
    for w in first.warnings:
        log.warning("propose: %s", w)
    log.info("propose: source=%s hparams=%s", first.source, first.hparams)
    return StageResult(
        metrics={},
        info={"source": first.source, "mode": pc.mode, "fallback": first.fallback, "n_warnings": len(first.warnings),
              "hparams": first.hparams, "rationale": first.rationale[:200], "candidates": len(cands),
              "candidate_sources": [c.source for c in cands], "attempts": asked.attempts,
              "json_schema": asked.json_schema, "history_rows": len(rows), "history_shown": asked.history_shown,
              "engine": asked.engine},
        tokens=asked.tokens,
        inputs={"history": hash_obj([asdict(r) for r in rows]), "data_stats": hash_obj(data_now)},
    )
