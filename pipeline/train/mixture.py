"""Each candidate trains on its own mixture: the data-selection fields of its accepted proposal.

The synth stage builds `synth/train.jsonl` once per generation, with the generation's proposal. A
candidate (`propose.candidates=K`, or a sweep job with `candidate.hparams` overrides) whose
`num_examples` or `math_fraction` differ from those draws its own mixture from the same pool
(this generation's verified train rows plus the rows of the teacher's promoted line, label guard
included) with the same seed and rules (`pipeline.synth.mixture.build`), into
`train/data/mixture.jsonl`. The rule that applied is recorded: `shared` (the synth stage's
train.jsonl) or `candidate` (rebuilt here). A synth dir without a stats.json mixture record (data
written by hand) is used as it is, and that is recorded.

Whatever the rule, the rows the trainer will read are checked here, at train start: rows per origin
(`origins`: which generation wrote them), the data red flags (`checks`, pipeline.synth.stats
.mixture_checks: each a rate with its interval, or "too small to judge" with n), and the label
guard's `refusal` (pipeline.synth.mixture.refusal). `draw` writes nothing, so the loop can refuse a
candidate before its train directory exists (pipeline.loop.candidates); `chat_data` writes the draw.

    python -m pipeline.loop candidate.name=j0 candidate.hparams.num_examples=64   # a sweep job
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Config, HParams
from pipeline.infra.io import read_json, read_jsonl, write_jsonl
from pipeline.lineage import GenerationDir, Lineage
from pipeline.synth import mixture
from pipeline.synth.decontaminate import index_for
from pipeline.synth.stats import mixture_checks

KEYS = ("num_examples", "math_fraction")  # the proposal fields that select the training data
FILE = "mixture.jsonl"


@dataclass
class Drawn:
    """A candidate's chat rows: `path` is the shared synth/train.jsonl used as it is, or None when the
    rows were drawn here (chat_data writes them); `info` is what the train manifest records."""

    rows: list[dict]
    path: Path | None
    info: dict

    @property
    def refusal(self) -> str | None:
        return self.info.get("refusal")


def draw(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir, hp: HParams) -> Drawn:
    """This candidate's chat rows and their record, checked; writes nothing."""
    synth = gen.path / "synth"
    stats_path = synth / "stats.json"
    want = {k: getattr(hp, k) for k in KEYS}
    built = read_json(stats_path).get("mixture") if stats_path.exists() else None
    shared = synth / "train.jsonl"
    if not isinstance(built, dict):  # data not made by the synth stage (written by hand): nothing to redraw from
        rows = read_jsonl(shared) if shared.exists() else []
        return _checked(rows, shared, {"rule": "shared", **want, "note": f"{stats_path} holds no mixture record"})
    if all(built.get(k) == v for k, v in want.items()):
        rows = read_jsonl(shared) if shared.exists() else []
        return _checked(rows, shared, {"rule": "shared", **want, "selected": built.get("selected"),
                                       "guard": built.get("guard"), "accumulated": built.get("accumulated"),
                                       "refusal": mixture.refusal(built)})
    sc = cfg.synth
    acc = mixture.earlier(lineage, gen.index, teacher.name, sc.accumulate)
    index = index_for(sc)
    origin = mixture.gen_name(gen.index)  # a candidate gen_NNN-c1 shares gen_NNN's synthesis
    trust = mixture.label_trust(cfg.gate.min_verifier_precision, {**dict(zip(acc.line, acc.dirs)), origin: synth})
    rows, info = mixture.build(mixture.new_train_rows(synth, origin), acc.rows, hp.num_examples, hp.math_fraction,
                               sc.anchor_fraction, sc.min_anchor_examples, mixture.seed_for(cfg.seed, gen.index),
                               gen.index, index, trust)
    return _checked(rows, None, {
        "rule": "candidate", **want, "shared": {k: built.get(k) for k in KEYS}, "rows": len(rows),
        "selected": info["selected"], "anchor_examples": info["anchor_examples"],
        "fallback_anchor": info["fallback_anchor"], "guard": info["guard"], "accumulated": acc.record(),
        "refusal": mixture.refusal(info)})


def _checked(rows: list[dict], path: Path | None, info: dict) -> Drawn:
    return Drawn(rows, path, {**info, "origins": mixture.origins(rows), "checks": mixture_checks(rows)})


def chat_data(cfg: Config, lineage: Lineage, gen: GenerationDir, teacher: GenerationDir, hp: HParams,
              out: Path) -> tuple[Path, dict]:
    """(the chat rows this candidate trains on, {"rule", its num_examples/math_fraction, "origins",
    "checks", ...}); a candidate's own draw is written to `out/mixture.jsonl`."""
    d = draw(cfg, lineage, gen, teacher, hp)
    return (d.path if d.path is not None else write_jsonl(out / FILE, d.rows)), d.info
