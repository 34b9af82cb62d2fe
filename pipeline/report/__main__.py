"""python -m pipeline.report: a lineage's report (see pipeline.report.text)."""

import sys

from pipeline.report.text import main

sys.exit(main())
