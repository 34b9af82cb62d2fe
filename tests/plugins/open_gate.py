"""Test plugin for the crash tests (tests/test_kill.py): lets a tiny-model generation be promoted.

    python -m pipeline.generation plugins=[tests.plugins.open_gate] gate.epsilon=1.0 ...

A random tiny model never verifies a synthetic example, so synth red-flags its anchor-only data and
the gate rejects every candidate: the promotion path (TEACHER moved, then the statuses) would never
run. This plugin drops the synthesis red flags (the gate's other checks are opened by overrides), so
a kill test reaches `promote:teacher-set`. Tests only: never in a real config.
"""

from __future__ import annotations

from pipeline.gate import stage

_read = stage.synth_red_flags


def _no_flags(gen):
    return [] if _read(gen) is not None else None


stage.synth_red_flags = _no_flags
