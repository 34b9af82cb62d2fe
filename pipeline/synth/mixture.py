"""The training mixture: verified data accumulated over the lineage, capped, with a math/code ratio.

- Earlier data: every earlier generation of this lineage whose synth stage finished (its
  `synth/manifest.json` exists) contributes its `synth/new.jsonl` rows of split "train".
  Accumulating rather than replacing keeps collapse bounded (Gerstgrasser et al. 2024).
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
from pathlib import Path

from pipeline.data import gsm8k_slice
from pipeline.io import read_jsonl
from pipeline.synth.decontaminate import BenchmarkIndex
from pipeline.synth.mathgen import clean_reference

_GEN_DIR = re.compile(r"^gen_(\d{3,})$")


def earlier_gen_dirs(lineage_path: Path, current: int, ledger_names: list[str] | None = None) -> list[Path]:
    """Earlier generation dirs of the lineage with a finished synth stage, oldest first."""
    names = set(ledger_names or [])
    names |= {p.name for p in lineage_path.glob("gen_*") if p.is_dir()}
    out = []
    for name in names:
        m = _GEN_DIR.match(name)
        if m and int(m.group(1)) < current and (lineage_path / name / "synth" / "manifest.json").exists():
            out.append((int(m.group(1)), lineage_path / name / "synth"))
    return [p for _, p in sorted(out)]


def earlier_rows(dirs: list[Path]) -> list[dict]:
    rows = []
    for d in dirs:
        p = d / "new.jsonl"
        if p.exists():
            rows += [r for r in read_jsonl(p) if r.get("meta", {}).get("split", "train") == "train"]
    return rows


def seed_for(cfg_seed: int, gen: int) -> int:
    """The generation's synthesis and mixture seed: a fresh draw of topics and exemplars every generation."""
    return cfg_seed * 100_003 + gen


def earlier(lineage, gen: int, accumulate: bool) -> tuple[list[Path], list[dict]]:
    """(earlier generations' synth dirs, their train rows) that generation `gen` accumulates."""
    if not accumulate:
        return [], []
    dirs = earlier_gen_dirs(lineage.path, gen, [r["name"] for r in lineage.rows()])
    return dirs, earlier_rows(dirs)


def new_train_rows(synth_dir: Path) -> list[dict]:
    """This generation's verified rows of split "train" (`synth/new.jsonl`): with `earlier`, the pool."""
    return earlier_rows([synth_dir])


def anchor_rows(n: int, seed: int, gen: int, index: BenchmarkIndex) -> list[dict]:
    """`n` seeded rows of the GSM8K-train `pool` slice (never validation, verifier or test), benchmark-clean,
    ending in `#### N`."""
    if n <= 0:
        return []
    train = gsm8k_slice("pool")
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    rows = []
    for i in order:
        r = train[i]
        row = {"messages": [{"role": "user", "content": r["question"].strip()},
                            {"role": "assistant", "content": clean_reference(r["answer"])}],
               "meta": {"kind": "math", "gen": gen, "id": r["id"], "agreement": None, "source": "anchor"}}
        if index.match_row(row) is None:  # GSM8K train shares n-grams with test for ~1% of items
            rows.append(row)
        if len(rows) == n:
            break
    return rows


def build(new_train: list[dict], earlier: list[dict], num_examples: int, math_fraction: float,
          anchor_fraction: float, min_anchor: int, seed: int, gen: int, index: BenchmarkIndex) -> tuple[list[dict], dict]:
    """(training rows, info) per the module doc."""
    rng = random.Random(seed)
    earlier_clean = [r for r in earlier if index.match_row(r) is None]
    pool = earlier_clean + [r for r in new_train if index.match_row(r) is None]  # the stage already checked these
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
    }
    return rows, info
