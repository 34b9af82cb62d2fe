"""The KL reference set: chat prompts with reference continuations, read teacher-forced by
pipeline.drift.kl. Loaded and validated like a suite, but not scored, so not in the suite registry.

    python -m pipeline.probes            # validates it with the suites
"""

from __future__ import annotations

from pipeline.probes.suite import Packaged, ProbeSet

REFERENCE = ProbeSet(name="reference", source=Packaged("reference"),
                     schema={"id": str, "prompt": str, "continuation": str})
