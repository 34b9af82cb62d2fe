"""Each candidate trains on its own mixture: the data-selection fields of its accepted proposal.

The synth stage builds `synth/train.jsonl` once per generation, with the generation's proposal. A
candidate (`propose.candidates=K`, or a sweep job with `candidate.hparams` overrides) whose
`num_examples` or `math_fraction` differ from those draws its own mixture from the same pool
(this generation's verified train rows plus the earlier generations' accumulated ones) with the same
seed and rules (`pipeline.synth.mixture.build`), into `train/data/mixture.jsonl`. The rule that applied
is recorded: `shared` (the synth stage's train.jsonl) or `candidate` (rebuilt here). A synth dir
without a stats.json mixture record (data written by hand) is used as it is, and that is recorded.

    python -m pipeline.generation candidate.name=j0 candidate.hparams.num_examples=64   # a sweep job
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Config, HParams
from pipeline.io import read_json, write_jsonl
from pipeline.lineage import GenerationDir, Lineage
from pipeline.synth import mixture
from pipeline.synth.decontaminate import index_for

KEYS = ("num_examples", "math_fraction")  # the proposal fields that select the training data
FILE = "mixture.jsonl"


def chat_data(cfg: Config, lineage: Lineage, gen: GenerationDir, hp: HParams, out: Path) -> tuple[Path, dict]:
    """(the chat rows this candidate trains on, {"rule", its num_examples/math_fraction, ...})."""
    synth = gen.path / "synth"
    stats_path = synth / "stats.json"
    want = {k: getattr(hp, k) for k in KEYS}
    built = read_json(stats_path).get("mixture") if stats_path.exists() else None
    if not isinstance(built, dict):  # data not made by the synth stage (written by hand): nothing to redraw from
        return synth / "train.jsonl", {"rule": "shared", **want, "note": f"{stats_path} holds no mixture record"}
    if all(built.get(k) == v for k, v in want.items()):
        return synth / "train.jsonl", {"rule": "shared", **want, "selected": built.get("selected")}
    sc = cfg.synth
    _, earlier = mixture.earlier(lineage, gen.index, sc.accumulate)
    index = index_for(sc)
    rows, info = mixture.build(mixture.new_train_rows(synth), earlier, hp.num_examples, hp.math_fraction,
                               sc.anchor_fraction, sc.min_anchor_examples, mixture.seed_for(cfg.seed, gen.index),
                               gen.index, index)
    path = write_jsonl(out / FILE, rows)
    return path, {"rule": "candidate", **want, "shared": {k: built.get(k) for k in KEYS}, "rows": len(rows),
                  "selected": info["selected"], "anchor_examples": info["anchor_examples"],
                  "fallback_anchor": info["fallback_anchor"]}
