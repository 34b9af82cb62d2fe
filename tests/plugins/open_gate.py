"""Test plugin for the crash tests (tests/test_kill.py): lets a tiny-model generation be promoted.

    python -m pipeline.loop plugins=[tests.plugins.open_gate] gate.epsilon=1.0 ...

A random tiny model never verifies a synthetic example, so synth red-flags its anchor-only data and
the gate rejects every candidate (and the train-start data checks flag its anchor-only mixture): the
promotion path (TEACHER moved, then the statuses) would never run. This plugin drops the synthesis red
flags and the mixture's (the gate's other checks are opened by overrides), so a kill test reaches
`promote:teacher-set`. Tests only: never in a real config.
"""

from __future__ import annotations

from pipeline.gate import stage

_read = stage.synth_red_flags


def _no_flags(gen):
    return [] if _read(gen) is not None else None


stage.synth_red_flags = _no_flags


_mixture = stage.mixture_checks


def _no_mixture_flags(gen):
    return {**_mixture(gen), "red_flags": []}


stage.mixture_checks = _no_mixture_flags

