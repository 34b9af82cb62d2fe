"""python -m pipeline.loop [hydra overrides]: run the lineage's generations (see pipeline.loop.generation)."""

import sys

from pipeline.loop.generation import cli

sys.exit(cli())
