"""The accepted proposal, `gen_NNN/propose/accepted.json`: the one typed reader and writer.

The propose stage writes it; candidates, synth and train read it. Top-level `hparams` and `source`
are what this generation (or candidate) trains with; `candidates` holds every setting the teacher
proposed (`propose.candidates=K`), each with its own `hparams` and `source`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import HParams
from pipeline.infra.io import atomic_write_json, read_json
from pipeline.lineage import GenerationDir

FILE = "accepted.json"
HPARAM_FIELDS = tuple(HParams.__dataclass_fields__)


class ProposalError(ValueError):
    """An accepted.json that lacks what training needs; the message names the file. (A missing file
    is a FileNotFoundError.)"""


@dataclass
class Proposal:
    hparams: dict[str, Any]
    source: str = ""
    candidates: list[dict] = field(default_factory=list)
    raw: dict = field(default_factory=dict)  # every other key, kept for the record
    path: Path | None = None

    @property
    def n_candidates(self) -> int:
        return max(1, len(self.candidates))

    def candidate(self, i: int) -> dict:
        """Candidate i's record ({hparams, source, ...}); the last one when i is past the end."""
        cands = self.candidates or [{"hparams": self.hparams, "source": self.source}]
        return cands[min(i, len(cands) - 1)]

    def typed_hparams(self) -> HParams:
        """The hyperparameters as HParams; a missing field is a ProposalError naming it."""
        missing = sorted(set(HPARAM_FIELDS) - set(self.hparams))
        if missing:
            raise ProposalError(f"{self.path}: 'hparams' must hold every HParams field; missing {missing}")
        return HParams(**{k: self.hparams[k] for k in HPARAM_FIELDS})


def path_of(gen: GenerationDir) -> Path:
    return gen.path / "propose" / FILE


def exists(gen: GenerationDir) -> bool:
    return path_of(gen).exists()


def read(gen: GenerationDir) -> Proposal:
    path = path_of(gen)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the propose stage must run first (it writes the hyperparameters)")
    d = read_json(path)
    hp = d.get("hparams", {})
    if not isinstance(hp, dict):
        raise ProposalError(f"{path}: 'hparams' must be an object of HParams fields")
    rest = {k: v for k, v in d.items() if k not in ("hparams", "source", "candidates")}
    return Proposal(hparams=hp, source=str(d.get("source", "")), candidates=list(d.get("candidates") or []),
                    raw=rest, path=path)


def write(gen: GenerationDir, record: dict) -> Path:
    return atomic_write_json(path_of(gen), record)
