"""python -m pipeline.probes [--list]: validate every probe suite and print counts and versions
(--list: also each suite's metrics, their direction and whether a gate budget may name them)."""

import sys

from pipeline.probes import main

sys.exit(main(sys.argv[1:]))
