"""Per generation (and candidate): the verdict line (pipeline.report.verdict) with the gate's other
reasons folded under it, inconclusive ones last; the hyperparameters, where they came from and what
changed from the parent's; synthesis statistics with kept and rejected examples, optimizer steps,
wall time.

Reads the ledger row and the generation's files (`disk.GenFiles`); every string from a model
(teacher rationale, synthetic rows) is escaped by `markup`.
"""

from __future__ import annotations

from pipeline.report import verdict as verdicts
from pipeline.report.html.disk import GenFiles
from pipeline.report.html.markup import Raw, clip, el, join, status, table


def verdict_line(v: verdicts.Verdict) -> Raw:
    """One verdict as a line: the status and the deciding reason first, then the gate metric's
    change, what moved, the wall time (the same parts as the text report's line)."""
    first, *rest = v.parts()
    head, _, reason = first.partition(": ")
    parts = [el("b", head, class_=v.status if v.status in ("promoted", "rejected", "candidate") else None)]
    if reason:
        parts += [": ", el("span", reason, class_="deciding")]
    parts += [join([verdicts.SEP, el("span", p, class_="part")]) for p in rest]
    return el("p", join(parts), class_=f"verdict {v.status}-v")


def gate(row: dict, files: GenFiles, v: verdicts.Verdict | None = None) -> Raw:
    """The verdict line, then the gate's other lines folded (inconclusive last). `v` defaults to the
    verdict of this directory's own decision record."""
    v = v or verdicts.build(row, files.decision)
    others = v.others
    if row.get("gen") == 0:
        body = el("p", "gen 0 is the baseline: no gate", class_="muted")
    elif others:
        body = el("details", el("summary", f"the gate's other {len(others)} line(s), inconclusive ones last"),
                  el("ul", join(el("li", r, class_="reason") for r in others), class_="reasons"))
    else:
        body = ""
    return el("div", verdict_line(v), body, class_="gate")


def hparams(row: dict, files: GenFiles, parent: dict | None = None) -> Raw | str:
    hp = row.get("hparams") or (files.accepted or {}).get("hparams") or {}
    if not hp:
        return ""
    source = row.get("hparams_source") or (files.accepted or {}).get("source") or "-"
    # source: teacher, clamped, fallback, config, sweep, ... (pipeline.propose, pipeline.loop.candidates)
    out = [el("p", el("b", "Hyperparameters"), " \u2014 source ", el("code", source, class_="source"))]
    before = (parent or {}).get("hparams") or {}
    keys = sorted(hp)
    if before:  # what the teacher of this generation was itself trained with
        changed = [k for k in sorted(set(hp) | set(before)) if hp.get(k) != before.get(k)]
        out.append(table(["", *keys], [["this", *[hp[k] for k in keys]],
                                       [f"parent {parent['name']}", *[before.get(k, "-") for k in keys]]]))
        out.append(el("p", "changed from the parent's: " + (", ".join(
            f"{k} {before.get(k, '-')} \u2192 {hp.get(k, '-')}" for k in changed) if changed else "nothing"),
            class_="hp-diff"))
    else:
        out.append(table(keys, [[hp[k] for k in keys]]))
        if parent is not None:
            out.append(el("p", f"the parent {parent['name']} is the base model: no hyperparameters to compare",
                          class_="muted hp-diff"))
    acc = files.accepted or {}
    if acc.get("rationale"):
        out.append(el("details", el("summary", "teacher's rationale"), clip(acc["rationale"])))
    if acc.get("warnings"):
        out.append(el("ul", join(el("li", w) for w in acc["warnings"]), class_="warnings"))
    return join(out)


def _messages(row: dict) -> Raw:
    msgs = row.get("messages") or []
    if not msgs:  # code tasks and other row shapes: show the row's text fields
        return clip(row.get("text") or row.get("prompt") or row)
    return join(join([el("div", el("b", m.get("role", "?")), class_="muted"), clip(m.get("content"))])
                for m in msgs)


def synth(files: GenFiles) -> Raw | str:
    if files.synth_shared:
        return el("p", el("b", "Synthesis: "), f"the data of {files.synth_shared} (shared by its candidates)")
    st = files.synth_stats
    if st is None:
        return ""
    counts = st.get("counts") or {}
    out = [el("p", el("b", "Synthesis"), f" (teacher {st.get('teacher', '-')})")]
    if counts:
        out.append(table(list(counts), [list(counts.values())]))
    # each kind of data (math, code, ...) counts its rejections as {filter: {reason: n}}
    rejected = {kind: part["rejected"] for kind, part in st.items()
                if isinstance(part, dict) and isinstance(part.get("rejected"), dict)}
    why = [[kind, f, r, n] for kind, by in rejected.items() for f, rs in by.items()
           for r, n in (rs.items() if isinstance(rs, dict) else [("", rs)])]
    if why:
        out += [el("p", "rejections by filter and reason"), table(["kind", "filter", "reason", "count"], why)]
    div = st.get("diversity") or {}
    if div:
        keys = sorted({k for v in div.values() for k in v})
        out.append(table(["diversity"] + keys, [[name] + [v.get(k, "") for k in keys] for name, v in div.items()]))
    if st.get("red_flags"):
        out.append(el("ul", join(el("li", f, class_="rejected") for f in st["red_flags"]), class_="red-flags"))
    kept = [el("div", _messages(r), class_="example") for r in files.kept]
    out.append(el("details", el("summary", f"{len(files.kept)} kept example(s) (synth/new.jsonl)"),
                  join(kept) if kept else el("p", "no verified new example", class_="muted")))
    rej = [[r.get("kind", ""), r.get("filter", ""), r.get("reason", ""),
            clip(r.get("text") or r.get("completion") or r.get("prompt"), 300)]
           for r in files.rejected]
    out.append(el("details", el("summary", f"{len(files.rejected)} rejected example(s) (synth/rejected.jsonl)"),
                  table(["kind", "filter", "reason", "text"], rej) if rej else el("p", "none", class_="muted")))
    return join(out)


def train(files: GenFiles) -> Raw | str:
    if files.train is None:
        return ""
    info = files.train.get("info") or {}
    steps = info.get("steps") or {}
    if not isinstance(steps, dict):
        steps = {"train": steps}
    text = ", ".join(f"{phase}: {n}" for phase, n in steps.items()) or "-"
    metrics = files.train.get("metrics") or {}
    loss = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
    return el("p", el("b", "Optimizer steps: "), el("span", text, class_="steps"),
              el("span", f" ({loss})" if loss else "", class_="muted"))


def wall_time(row: dict) -> Raw | str:
    seconds = row.get("seconds") or {}
    if not seconds:
        return ""
    total = sum(v for v in seconds.values() if isinstance(v, (int, float)))
    return join([el("p", el("b", "Wall time per stage"), f" (total {total:.1f} s)"),
                 table(list(seconds) + ["total"], [list(seconds.values()) + [round(total, 1)]])])


def section(row: dict, files: GenFiles, v: verdicts.Verdict | None = None, parent: dict | None = None) -> Raw:
    """One generation's details (`parent`: the parent's ledger row, for the hyperparameter diff)."""
    head = el("h3", row["name"], " ", status(row.get("status")),
              el("span", f" parent {row.get('parent') or '-'}", class_="muted"))
    body = [gate(row, files, v), hparams(row, files, parent), synth(files), train(files), wall_time(row)]
    return el("section", head, join(body), id=row["name"], class_="generation")
