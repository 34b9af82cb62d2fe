"""The training mixture: verified data accumulated over the lineage, capped, with a math/code ratio.

- Earlier data: only the teacher's promoted line (the teacher, its teacher, ... back to gen 0, each
  with ledger status `promoted`; a K-candidate or sweep generation through its selected candidate)
  contributes: each member's generation `synth/new.jsonl` rows of split "train". A rejected, failed or
  unpromoted generation's rows never re-enter; every earlier generation left out is recorded with
  why (`excluded`). Accumulating rather than replacing keeps collapse bounded (Gerstgrasser et al. 2024).
- Provenance: every row names the generation that wrote it (`meta.origin`, e.g. "gen_001"; real
  GSM8K-train anchors "anchor"); the mixture's info counts rows per origin (`origins`).
- Label trust (`gate.min_verifier_precision`): a generation's math labels are a self-consistency vote
  whose precision its synth stage measured (pipeline.synth.verifier). When the upper bound of that
  interval lies below the floor, the labels are known to be mostly wrong and every math row of that
  origin leaves the pool (recorded in `guard`); unmeasured precision refuses nothing. Code labels are
  sandbox verdicts with no precision measurement, so code rows are not judged here. A mixture the
  guard left without any synthetic row is refused (`refusal`): the candidate is rejected before training.
- Cap: `num_examples` rows in all; `anchor_fraction` of them are real GSM8K-train rows (default 0),
  the rest synthetic with `math_fraction` math. A kind short of its quota leaves its share to the
  other kind only if that kind's fraction is positive (math_fraction=1 never brings in code).
  Rows are drawn uniformly (seeded) from the pool, so old data keeps its weight.
- Fallback: when no synthetic row exists at all, `min_anchor_examples` anchor rows are used so the
  training stage has real data; this is recorded (`fallback_anchor`) and raised as a red flag.
- Every row, anchors and earlier generations' rows included, is re-checked against the benchmark
  index (the config may have changed since); hits are dropped and counted.
- Per candidate: the synth stage builds `synth/train.jsonl` once, with the generation's proposal;
  a candidate whose own `num_examples`/`math_fraction` differ (K proposals, sweep overrides) gets
  its own draw from the same pool (`pool` + `build`, same seed) in the train stage
  (pipeline.train.mixture).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.infra.io import read_json, read_jsonl
from pipeline.lineage import Lineage, is_promoted
from pipeline.synth.decontaminate import BenchmarkIndex
from pipeline.synth.mathgen import clean_reference, train_slice

_GEN_DIR = re.compile(r"^gen_(\d{3,})$")
ANCHOR = "anchor"  # the origin of real GSM8K-train rows
JUDGED_KIND = "math"  # the one domain whose label precision is measured (pipeline.synth.verifier)


def gen_name(index: int) -> str:
    return f"gen_{index:03d}"


def origin_of(row: dict) -> str:
    """The generation that wrote a row: `meta.origin`, else (rows written before the field) its
    `meta.gen`, and "anchor" for real GSM8K-train rows."""
    meta = row.get("meta", {})
    if meta.get("origin"):
        return meta["origin"]
    if meta.get("source") == ANCHOR:
        return ANCHOR
    return gen_name(meta["gen"]) if isinstance(meta.get("gen"), int) else "unknown"


def origins(rows: list[dict]) -> dict[str, int]:
    """Rows per origin, sorted by origin (what the train manifest records)."""
    return dict(sorted(Counter(origin_of(r) for r in rows).items()))


def train_rows_of(synth_dir: Path, origin: str) -> list[dict]:
    """A synth dir's verified rows of split "train" (`new.jsonl`), each stamped with its origin."""
    p = synth_dir / "new.jsonl"
    if not p.exists():
        return []
    return [{**r, "meta": {**r.get("meta", {}), "origin": r.get("meta", {}).get("origin") or origin}}
            for r in read_jsonl(p) if r.get("meta", {}).get("split", "train") == "train"]


@dataclass
class Accumulated:
    """What a generation accumulates: the promoted line's synth dirs (oldest first), their train rows,
    the origins drawn on, and every earlier generation left out with why."""

    dirs: list[Path] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    line: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict:
        return {"line": self.line, "excluded": self.excluded, "rows": len(self.rows)}


def _finished_synth(lineage: Lineage, current: int) -> dict[int, str]:
    """index -> name of every earlier generation dir with a finished synth stage."""
    out = {}
    for p in lineage.path.glob("gen_*"):
        m = _GEN_DIR.match(p.name)
        if m and int(m.group(1)) < current and (p / "synth" / "manifest.json").exists():
            out[int(m.group(1))] = p.name
    return out


def earlier(lineage: Lineage, gen: int, teacher: str, accumulate: bool) -> Accumulated:
    """The rows generation `gen` (taught by `teacher`) accumulates: the synthesis of every promoted
    generation of the teacher's line (a candidate `gen_NNN-c1` stands for its generation's shared
    synthesis); every other earlier generation with a finished synth stage is `excluded` with why."""
    finished = _finished_synth(lineage, gen)
    if not accumulate:
        return Accumulated(excluded={n: "synth.accumulate is off" for n in finished.values()})
    line = lineage.teacher_line(teacher)
    taken: dict[int, str] = {}
    why: dict[int, str] = {}
    for row in line:
        i = row["gen"]
        if i not in finished or i in taken:
            continue
        if is_promoted(row):
            taken[i] = finished[i]
        else:
            why[i] = f"{row['name']} is in {teacher}'s line but has status {row.get('status')!r}"
    status = {r["name"]: r.get("status") for r in lineage.rows()}
    for i, name in finished.items():
        if i not in taken and i not in why:
            st = status.get(name)
            why[i] = (f"status {st!r}" if st != "promoted" else f"promoted, but not in {teacher}'s line")
    acc = Accumulated(excluded={finished[i]: why[i] for i in sorted(why)})
    for i in sorted(taken):
        d = lineage.path / taken[i] / "synth"
        acc.dirs.append(d)
        acc.line.append(taken[i])
        acc.rows += train_rows_of(d, taken[i])
    return acc


def seed_for(cfg_seed: int, gen: int) -> int:
    """The generation's synthesis and mixture seed: a fresh draw of topics and exemplars every generation."""
    return cfg_seed * 100_003 + gen


def new_train_rows(synth_dir: Path, origin: str) -> list[dict]:
    """This generation's verified rows of split "train" (`synth/new.jsonl`): with `earlier`, the pool."""
    return train_rows_of(synth_dir, origin)


def precision_of(synth_dir: Path) -> dict | None:
    """The math label precision a synth stage measured (stats.json "verifier"), or None."""
    p = synth_dir / "stats.json"
    if not p.exists():
        return None
    iv = ((read_json(p).get("verifier") or {}).get(JUDGED_KIND) or {}).get("precision")
    return iv if isinstance(iv, dict) else None


@dataclass(frozen=True)
class LabelTrust:
    """`gate.min_verifier_precision` over a pool: `precision` maps an origin to its measured math
    label precision (an Interval dict, None when not measured). Judged on the interval's upper bound,
    so only labels shown to be mostly wrong are refused; `floor` 0 refuses nothing."""

    floor: float
    precision: dict[str, dict | None]

    def trusted(self, origin: str) -> bool:
        iv = self.precision.get(origin)
        return self.floor <= 0 or not iv or iv.get("hi") is None or iv["hi"] >= self.floor

    def split(self, rows: list[dict]) -> tuple[list[dict], dict]:
        """(the rows kept, the record): the math rows of every untrusted origin are dropped."""
        kept, dropped = [], Counter()
        for r in rows:
            o = origin_of(r)
            if r["meta"]["kind"] == JUDGED_KIND and o != ANCHOR and not self.trusted(o):
                dropped[o] += 1
            else:
                kept.append(r)
        judged = {o: {"precision": iv, "trusted": self.trusted(o)} for o, iv in sorted(self.precision.items())}
        return kept, {"floor": self.floor, "kind": JUDGED_KIND, "judged_on": "upper bound of the precision interval",
                      "origins": judged, "dropped": dict(sorted(dropped.items())), "dropped_total": sum(dropped.values())}


def label_trust(floor: float, dirs: dict[str, Path], current: tuple[str, dict | None] | None = None) -> LabelTrust:
    """The trust of every origin: each synth dir's measured precision, and the current generation's
    (`current`: its name and interval) while its own stats.json is not written yet."""
    precision = {o: precision_of(d) for o, d in dirs.items()}
    if current is not None:
        precision[current[0]] = current[1]
    return LabelTrust(floor, precision)


def refusal(info: dict) -> str | None:
    """Why a mixture must not be trained on, or None: the label guard dropped rows and no synthetic
    row remains (training on anchors alone would not be this generation's data)."""
    guard = info.get("guard") or {}
    if not guard.get("dropped_total") or sum((info.get("selected") or {}).values()):
        return None
    bad = []
    for o, n in guard["dropped"].items():
        iv = guard["origins"].get(o, {}).get("precision") or {}
        bad.append(f"{o}'s {guard['kind']} labels (precision {iv.get('estimate', 0):.2f} on n={iv.get('n')}, "
                   f"interval [{iv.get('lo', 0):.2f}, {iv.get('hi', 0):.2f}]): {n} rows dropped")
    return (f"rejected before training: no trustworthy synthetic row remains; upper bound of the label "
            f"precision below gate.min_verifier_precision={guard['floor']} for " + "; ".join(bad))


def anchor_rows(n: int, seed: int, gen: int, index: BenchmarkIndex) -> list[dict]:
    """`n` seeded rows of the GSM8K-train `pool` slice (never validation, verifier or test), benchmark-clean,
    ending in `#### N`."""
    if n <= 0:
        return []
    train = train_slice("pool")
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    rows = []
    for i in order:
        r = train[i]
        row = {"messages": [{"role": "user", "content": r["question"].strip()},
                            {"role": "assistant", "content": clean_reference(r["answer"])}],
               "meta": {"kind": "math", "gen": gen, "id": r["id"], "agreement": None, "source": ANCHOR,
                        "origin": ANCHOR}}
        if index.match_row(row) is None:  # GSM8K train shares n-grams with test for ~1% of items
            rows.append(row)
        if len(rows) == n:
            break
    return rows


def build(new_train: list[dict], earlier: list[dict], num_examples: int, math_fraction: float,
          anchor_fraction: float, min_anchor: int, seed: int, gen: int, index: BenchmarkIndex,
          trust: LabelTrust | None = None) -> tuple[list[dict], dict]:
    """(training rows, info) per the module doc; `trust` (None: every label trusted) drops the rows
    of untrusted labels before the draw, so the quotas fill from trustworthy rows."""
    rng = random.Random(seed)
    earlier_clean = [r for r in earlier if index.match_row(r) is None]
    pool = earlier_clean + [r for r in new_train if index.match_row(r) is None]  # the stage already checked these
    pool, guard = trust.split(pool) if trust is not None else (pool, None)
    n_anchor = round(anchor_fraction * num_examples)
    n_syn = num_examples - n_anchor
    by_kind = {k: [r for r in pool if r["meta"]["kind"] == k] for k in ("math", "code")}
    quota = {"math": round(n_syn * math_fraction)}
    quota["code"] = n_syn - quota["math"]
    frac = {"math": math_fraction, "code": 1 - math_fraction}
    for k, other in (("math", "code"), ("code", "math")):
        spare = quota[k] - len(by_kind[k])
        if spare > 0 and frac[other] > 0:
            quota[k] -= spare
            quota[other] += spare
    chosen = []
    for k in ("math", "code"):
        rows = by_kind[k]
        chosen += rows if len(rows) <= quota[k] else rng.sample(rows, max(quota[k], 0))
    fallback = not chosen
    if fallback:
        n_anchor = max(n_anchor, min_anchor)
    anchors = anchor_rows(n_anchor, seed, gen, index)
    rows = chosen + anchors
    rng.shuffle(rows)
    info = {
        "num_examples": num_examples, "math_fraction": math_fraction, "anchor_fraction": anchor_fraction,
        "pool": {"earlier": len(earlier), "earlier_decontaminated": len(earlier) - len(earlier_clean),
                 "new": len(new_train), "math": len(by_kind["math"]), "code": len(by_kind["code"])},
        "quota": quota, "selected": {"math": sum(r["meta"]["kind"] == "math" for r in chosen),
                                     "code": sum(r["meta"]["kind"] == "code" for r in chosen)},
        "selected_new": sum(r["meta"].get("gen") == gen for r in chosen),
        "anchor_examples": len(anchors), "fallback_anchor": fallback,
        "origins": origins(rows), "guard": guard,
    }
    return rows, info
