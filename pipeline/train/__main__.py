"""Training worker: `python -m pipeline.train <gen>/train/job.json` runs one training job (every phase of
its method chain) and prints each phase's steps and last loss. The train stage writes the job file and
launches this (pipeline.train.launch), under `accelerate launch` on several GPUs."""

import argparse
import sys
from pathlib import Path

from pipeline.infra import cli

ap = argparse.ArgumentParser(prog="python -m pipeline.train", description=__doc__)
ap.add_argument("job", type=Path, help="gen_NNN/train/job.json, written by the train stage")
args = ap.parse_args()
if not args.job.is_file():
    sys.exit(cli.fail(f"{args.job}: no such job file (the train stage writes gen_NNN/train/job.json)"))

from pipeline.train.worker import main  # noqa: E402  (after the arguments: --help needs no torch)

main(str(args.job))
