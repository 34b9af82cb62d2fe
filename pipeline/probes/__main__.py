"""python -m pipeline.probes: validate every probe suite and print counts and versions."""

import sys

from pipeline.probes import main

sys.exit(main())
