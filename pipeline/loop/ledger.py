"""The ledger is derived from the stage manifests: rebuild a lost or corrupt `ledger.sqlite`, and check
that every manifest a reader would trust is one.

    python -m pipeline.loop.ledger checkpoints/default             # check: ledger and every manifest readable
    python -m pipeline.loop.ledger --rebuild checkpoints/default   # rebuild ledger.sqlite from the manifests

A rebuilt row holds what the manifests hold: each stage's metrics, seconds and tokens, the teacher
(the parent), the config hash, versions and commit, the proposal's hyperparameters, and the status
the promotion rule (`pipeline.loop.promote.outcomes`) gives the gate verdicts (with a generation's
`selection.json` when it had several candidates). A generation without a gate verdict stays a
`candidate`, so the next run resumes it. The old file is kept beside it as `ledger.sqlite.bad-<time>`.
The generation loop repairs the ledger this way when it starts (`repair`).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

from pipeline.infra.io import read_json
from pipeline.lineage import LEDGER, GenerationDir, Lineage, LineageError
from pipeline.loop.promote import candidate_view, outcomes
from pipeline.lineage.runner import Manifest, opening_row, read_manifest, record
from pipeline.loop.table import ALL as STAGES

log = logging.getLogger(__name__)
GEN_DIR = re.compile(r"gen_(\d+)(-[A-Za-z0-9_-]+)?")


def manifests(gen: GenerationDir) -> dict[str, Manifest]:
    """Every finished stage of one generation dir (the stage table's, not the model dir's manifest), its
    own only (a candidate's `synth` link is its generation's); a manifest that does not parse is a
    LineageError naming the file."""
    return {name: read_manifest(gen, name) for name in STAGES
            if gen.is_done(name) and not (gen.path / name).is_symlink()}


def generation_dirs(lineage: Lineage) -> list[GenerationDir]:
    names = [p.name for p in lineage.path.iterdir() if p.is_dir() and GEN_DIR.fullmatch(p.name)]
    gens = [lineage.gen_by_name(n) for n in names]
    return sorted(gens, key=lambda g: (g.index, g.name))


def check(lineage: Lineage) -> list[dict]:
    """The ledger's rows, after checking that every stage manifest parses: a corrupt manifest is an
    error naming it, never a row shown with the status the ledger last had."""
    lineage.meta()
    for g in generation_dirs(lineage):
        manifests(g)
    return lineage.rows()


def rebuild(lineage: Lineage) -> int:
    """Write a new ledger from the manifests (the old file kept aside); the number of rows."""
    lineage.meta()
    found = [(g, manifests(g)) for g in generation_dirs(lineage)]
    old = lineage.path / LEDGER
    if old.exists():
        aside = old.with_name(f"{LEDGER}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
        old.rename(aside)
        log.warning("ledger %s set aside as %s", old, aside.name)
    for suffix in ("-wal", "-shm"):  # a corrupt file's journal must not be replayed into the new one
        old.with_name(LEDGER + suffix).unlink(missing_ok=True)
    lineage.new_ledger()
    n = 0
    for g, ms in found:
        if not ms:
            continue  # nothing finished: the next run starts this generation again
        first = ms.get("propose") or next(iter(ms.values()))
        fields = opening_row(g, None if g.index == 0 else first.teacher, first.config_hash, first.versions,
                             first.git_commit)
        if "propose" in ms:
            fields.update(hparams=ms["propose"].info.get("hparams"), hparams_source=ms["propose"].info.get("source"))
        lineage.record(g, **fields)
        for m in ms.values():
            record(lineage, g, m)
        n += 1
    for g, ms in found:
        if g.index > 0 and g.name == f"gen_{g.index:03d}":
            _statuses(lineage, g, ms)
    return n


def _statuses(lineage: Lineage, gen: GenerationDir, ms: dict[str, Manifest]) -> None:
    """The promotion's statuses, as `promote.apply` recorded them, from the verdicts on disk."""
    sel = gen.path / "selection.json"
    if sel.exists():
        choice = read_json(sel)
        _, fields = outcomes(gen, choice["candidates"], choice["metric"])
    elif "gate" in ms:
        _, fields = outcomes(gen, [candidate_view(gen)], None)
    else:
        return  # unfinished (or a sweep waiting for `pipeline.loop.promote --sweep`): still a candidate
    for name, f in fields.items():
        lineage.record(lineage.gen_by_name(name), **f)


def repair(lineage: Lineage) -> None:
    """Rebuild the ledger when it is lost or unreadable (the loop calls this under the lineage lock)."""
    if not (lineage.path / "lineage.json").exists():
        return  # a new lineage: nothing to repair
    try:
        lineage.rows()
    except LineageError as e:
        log.warning("%s: rebuilding it from the manifests", e)
        log.warning("ledger rebuilt: %d row(s)", rebuild(lineage))


def main(argv: list[str] | None = None) -> int:
    from pipeline.infra import cli

    ap = argparse.ArgumentParser(prog="python -m pipeline.loop.ledger", description=__doc__.split("\n\n")[0])
    ap.add_argument("lineage", type=Path, help="the lineage directory, e.g. checkpoints/default")
    ap.add_argument("--rebuild", action="store_true", help="rebuild ledger.sqlite from the stage manifests")
    args = ap.parse_args(argv)
    lineage = Lineage(args.lineage.parent, args.lineage.name)
    try:
        if args.rebuild:
            print(f"rebuilt {lineage.path / LEDGER}: {rebuild(lineage)} row(s)")
        else:
            print(f"{lineage.path / LEDGER}: {len(check(lineage))} row(s), every manifest readable")
    except LineageError as e:
        return cli.fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
