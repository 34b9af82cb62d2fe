"""Stage `propose`: the teacher picks its successor's training hyperparameters.

The teacher (ctx.teacher's model) sees the search space, the lineage history (each earlier
generation's accepted hparams, data stats, validation metrics, gate verdict and reasons) and the
current data stats, and answers in JSON: schema-constrained on vLLM, parsed and re-asked (up to
`propose.retries`) elsewhere. Every answer goes through `validate` (clamp / replace / fall back), so
training never sees an out-of-range value. `propose.candidates=K` yields K distinct settings.

Writes gen_NNN/propose/: prompt.txt, raw.txt, parsed.json, accepted.json (top-level `hparams` is
what training uses; `candidates` holds all K).

    python -m pipeline.generation propose.candidates=3        # as part of a generation
    python -m pipeline.propose validate RAW.txt                # validate raw teacher text (CLI)
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from pipeline.config import Config
from pipeline.context import StageContext
from pipeline.engine import GenParams
from pipeline.io import atomic_write_json, atomic_write_text, hash_obj
from pipeline.lineage import StageResult
from pipeline.propose.prompt import best_setting, data_stats, history, json_schema, render
from pipeline.propose.validate import SOURCES, Validated, defaults_dict, fallback, perturb, validate

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


def _accepted(cands: list[Validated]) -> dict:
    first = cands[0]
    return {**first.record(), "candidates": [c.record() for c in cands]}


def run(cfg: Config, ctx: StageContext) -> StageResult:
    pc = cfg.propose
    out = ctx.out
    K = pc.candidates
    rows = history(ctx.lineage, ctx.gen, cfg.gate.metric)
    best = best_setting(rows, cfg.gate.metric)
    # The anchor every fallback and perturbation starts from, fitted to today's space.
    anchor = fallback(pc.space, pc.hparams, best[0] if best else None, "").hparams
    anchor_name = best[1] if best else "the config default"
    data_now = data_stats(ctx.teacher.path / "synth" / "stats.json")
    inputs = {"history": hash_obj([asdict(r) for r in rows]), "data_stats": hash_obj(data_now)}
    tokens, attempts, used_schema, engine_stats = 0, 0, False, {}

    if not pc.enabled:
        cands = [Validated(hparams=defaults_dict(pc.space, pc.hparams), source="config",
                           rationale="propose.enabled=false: the configured hparams") for _ in range(K)]
        # Perturb the configured setting, not the history's best: the user asked for this setting.
        cands = _distinct(cands, cands[0].hparams, "the configured hparams", pc.space)
    else:
        build = lambda n_hist: [render(pc.space, rows[-n_hist:] if n_hist else [], data_now, best, pc.hparams,
                                       cfg.gate.metric, i, K) for i in range(K)]
        raw_log: list[str] = []
        parsed_log: list[dict] = []
        results: list[Validated | None] = [None] * K
        with ctx.engine(ctx.teacher.model_dir) as eng:
            fitted = _fit_prompts(cfg, eng, build)
            if fitted is None:
                texts = build(0)
                why = f"the prompt does not fit model.max_model_len - propose.max_tokens tokens even without history"
                results = [fallback(pc.space, pc.hparams, best[0] if best else None, why) for _ in range(K)]
            else:
                texts, prompts, n_hist = fitted
                used_schema = bool(getattr(eng, "supports_json_schema", False))
                schema = json_schema(pc.space) if used_schema else None
                pending = list(range(K))
                for attempt in range(pc.retries + 1):
                    if not pending:
                        break
                    attempts += 1
                    temp = pc.temperature if attempt == 0 or pc.temperature > 0 else pc.retry_temperature
                    params = GenParams(n=1, temperature=temp, max_tokens=pc.max_tokens, seed=cfg.seed + attempt,
                                       json_schema=schema)
                    outs = eng.generate([prompts[i] for i in pending], params)  # one batched call per attempt
                    for i, o in zip(pending, outs):
                        text = o.texts[0] if o.texts else ""
                        tokens += sum(o.completion_tokens)
                        v = validate(text, pc.space, pc.hparams, best[0] if best else None)
                        finish = o.finish_reasons[0] if o.finish_reasons else "?"
                        raw_log.append(f"### attempt {attempt} candidate {i} (finish={finish}, "
                                       f"tokens={sum(o.completion_tokens)})\n{text}\n")
                        parsed_log.append({"attempt": attempt, "candidate": i, "finish": finish,
                                           "parsed": v.parsed, "source": v.source, "warnings": v.warnings})
                        if not v.fallback or attempt == pc.retries:
                            if v.fallback and attempt > 0:
                                v.warnings.append(f"no JSON object after {attempt + 1} attempts")
                            results[i] = v
                    pending = [i for i in pending if results[i] is None]
                log.info("propose: %d attempt(s), history rows shown %d/%d, json_schema=%s",
                         attempts, n_hist, len(rows), used_schema)
            stats = getattr(eng, "stats", None)
            engine_stats = stats.as_dict() if hasattr(stats, "as_dict") else {}
        sep = "\n\n" + "=" * 20 + " candidate {} " + "=" * 20 + "\n\n"
        atomic_write_text(out / "prompt.txt", texts[0] if K == 1 else "".join(sep.format(i) + t for i, t in enumerate(texts)))
        atomic_write_text(out / "raw.txt", "\n".join(raw_log))
        atomic_write_json(out / "parsed.json", parsed_log)
        cands = _distinct([r for r in results if r is not None], anchor, anchor_name, pc.space)

    accepted = _accepted(cands)
    accepted.update(history_best=best[1] if best else None, json_schema=used_schema, attempts=attempts)
    atomic_write_json(out / "accepted.json", accepted)
    first = cands[0]
    for w in first.warnings:
        log.warning("propose: %s", w)
    log.info("propose: source=%s hparams=%s", first.source, first.hparams)
    return StageResult(
        metrics={},
        info={"source": first.source, "fallback": first.fallback, "n_warnings": len(first.warnings),
              "hparams": first.hparams, "candidates": len(cands), "candidate_sources": [c.source for c in cands],
              "attempts": attempts, "json_schema": used_schema, "history_rows": len(rows), "engine": engine_stats},
        tokens=tokens,
        inputs=inputs,
    )
