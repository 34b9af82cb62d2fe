"""The same eval and probe items across generations, side by side, and the items each generation
gained and lost against gen 0.

Items are picked from gen 0's records (the first `PER_TASK` of each eval task, the first `PER_SUITE`
probes of each suite), so every generation answers the same prompts; a generation that has no
record of an item shows "-". Gained and lost come from the drift stage's summary
(`behaviour.gen0.eval`). All model text is escaped.
"""

from __future__ import annotations

from pipeline.report.html.disk import GenFiles
from pipeline.report.html.markup import Raw, clip, el, join, table

PER_TASK = 2
PER_SUITE = 1


def _eval_verdict(rec: dict) -> Raw:
    ok = rec.get("correct")
    return el("span", "correct" if ok else "wrong", class_="promoted" if ok else "rejected")


def _probe_verdict(rec: dict) -> Raw:
    score = rec.get("score")
    return el("span", rec.get("outcome", "-"), "" if score is None else f" (score {score})", class_="verdict")


def _answer(rec: dict | None, verdict) -> Raw | str:
    if rec is None:
        return "-"
    return join([verdict(rec), clip(rec.get("completion"), 400)])


def _folded(rec: dict | None, verdict) -> Raw | str:
    """A probe completion (often the answer to a harmful request) folded under its verdict."""
    if rec is None:
        return "-"
    return el("details", el("summary", verdict(rec)), clip(rec.get("completion"), 400))


def eval_items(gens: list[GenFiles]) -> Raw | None:
    """One table per eval task: prompt, then each generation's completion and verdict."""
    if not gens or not gens[0].eval_items:
        return None
    out = []
    for task, recs in gens[0].eval_items.items():
        by_gen = [{r.get("id"): r for r in g.eval_items.get(task, [])} for g in gens]
        rows = []
        for rec in recs[:PER_TASK]:
            i = rec.get("id")
            answers = [_answer(b.get(i), _eval_verdict) for b in by_gen]
            rows.append([el("code", i), clip(rec.get("prompt"), 400), *answers])
        out += [el("h3", task), table(["id", "prompt", *[g.name for g in gens]], rows)]
    return join(out)


def probe_items(gens: list[GenFiles]) -> Raw | None:
    if not gens or not gens[0].probes:
        return None
    picked, seen = [], {}
    for r in gens[0].probes:
        suite = r.get("suite")
        if seen.get(suite, 0) < PER_SUITE:
            seen[suite] = seen.get(suite, 0) + 1
            picked.append(r)
    by_gen = [{(r.get("suite"), r.get("id")): r for r in g.probes} for g in gens]
    rows = [[el("code", f"{r.get('suite')}/{r.get('id')}"), clip(r.get("prompt"), 400),
             *[_folded(b.get((r.get("suite"), r.get("id"))), _probe_verdict) for b in by_gen]] for r in picked]
    return table(["probe", "prompt", *[g.name for g in gens]], rows)


def gained_lost(gens: list[GenFiles]) -> Raw | None:
    """Per generation and task: the ids gained and lost against gen 0, with their prompts."""
    prompts = {(t, r.get("id")): r.get("prompt") for t, recs in (gens[0].eval_items if gens else {}).items()
               for r in recs}
    rows = []
    for g in gens[1:]:
        for task, ch in g.gained_lost.items():
            if not isinstance(ch, dict):  # a task not compared: records absent, or another protocol
                continue
            for kind in ("gained", "lost"):
                for i in ch.get(kind) or []:
                    rows.append([g.name, task, el("span", kind, class_="promoted" if kind == "gained" else "rejected"),
                                 el("code", i), clip(prompts.get((task, i)), 200)])
    if not rows and not any(g.gained_lost for g in gens[1:]):
        return None
    if not rows:
        return el("p", "no item changed against gen 0", class_="muted")
    return table(["generation", "task", "change", "id", "prompt"], rows)


def items_block(gens: list[GenFiles]) -> list[Raw]:
    out = []
    for key, title, part in (("eval-items", "Eval items across generations", eval_items(gens)),
                             ("probe-items", "Probe items across generations (completions folded)", probe_items(gens)),
                             ("gained-lost", "Items gained and lost against gen 0", gained_lost(gens))):
        if part is not None:
            out += [el("h2", title, id=key), el("div", part, class_="scroll")]
    return out
