"""What a stage gets besides the config: where it writes, who the teacher is, how to open an engine.

Stage contract (every stage module exposes one such function):

    def run(cfg: Config, ctx: StageContext) -> StageResult

- reads only earlier stages' directories (`ctx.teacher`, `ctx.gen.path / "<stage>"`), writes only
  `ctx.out` (its own `gen_NNN/<stage>/`), and, for train, `ctx.gen.model_dir`;
- opens an engine only inside `with ctx.engine(model_dir) as eng:` and closes it before returning;
- may find its own partial output from a crashed run in `ctx.out` and resume from it;
- returns a small StageResult; the loop writes the manifest (last) and the ledger row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Config
from pipeline.engine import Engine, open_engine
from pipeline.lineage import GenerationDir, Lineage, StageResult  # noqa: F401  (re-exported for stages)


@dataclass
class StageContext:
    cfg: Config
    lineage: Lineage
    gen: GenerationDir  # the generation being built (gen_000 for the baseline)
    teacher: GenerationDir  # the generation whose model writes data and proposes (gen == teacher for gen 0)
    stage: str  # name of the running stage, e.g. "synth"

    @property
    def out(self) -> Path:
        """This stage's own directory."""
        return self.gen.stage_dir(self.stage)

    @property
    def base_model_dir(self) -> Path:
        return self.lineage.gen(0).model_dir

    def engine(self, model_dir: Path) -> Engine:
        return open_engine(model_dir, self.cfg.model, self.cfg.engine, seed=self.cfg.seed)
