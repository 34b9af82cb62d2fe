"""Worker entry: `python -m pipeline.train <gen>/train/job.json` (launched by pipeline.train.launch)."""

import sys

from pipeline.train.worker import main

if len(sys.argv) != 2:
    sys.exit("usage: python -m pipeline.train <gen>/train/job.json")
main(sys.argv[1])
