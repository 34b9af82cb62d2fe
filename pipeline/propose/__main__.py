"""Validate raw teacher text from the command line, with the real config's search space and defaults.

    python -m pipeline.propose validate RAW.txt [hydra overrides, e.g. propose.space.epochs.high=5]

Prints one JSON object as the last stdout line: {"hparams": {...}, "warnings": [...],
"fallback": true|false, "source": ...}. Exit status 0 for any file content (empty, megabytes of
junk, binary); 2 for a usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from pipeline.config import ConfigError, ProposeConfig
from pipeline.config.compose import prepare
from pipeline.infra.locate import conf_dir
from pipeline.propose.validate import validate



def load_propose_config(overrides: list[str]) -> ProposeConfig:
    """Compose conf/ (one source of defaults) and type-check only the `propose` group."""
    from hydra import compose, initialize_config_dir

    prepare(overrides)  # the schema holds every training method's knobs, which conf/train sets
    with initialize_config_dir(str(conf_dir()), version_base=None):
        dcfg = compose("config", overrides)
    pc = OmegaConf.to_object(dcfg.propose)
    pc.validate()
    return pc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.propose", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="validate raw teacher output")
    v.add_argument("raw", type=Path, help="file holding the teacher's raw text")
    v.add_argument("overrides", nargs="*", help="Hydra overrides for the config")
    args = ap.parse_args(argv)
    try:
        data = args.raw.read_bytes()
    except OSError as e:
        print(f"error: cannot read {args.raw}: {e}", file=sys.stderr)
        return 2
    try:
        pc = load_propose_config(args.overrides)
    except Exception as e:  # Hydra/OmegaConf errors name the bad key
        print(f"error: config: {e}", file=sys.stderr)
        return 2
    res = validate(data, pc.space, pc.hparams)
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(json.dumps({"hparams": res.hparams, "warnings": res.warnings, "fallback": res.fallback,
                      "source": res.source}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
