"""The stage table: every stage's `run`, imported (go-to-definition works), and what it needs.

    gen 0 (baseline):        eval, drift
    shared by a generation:  propose, synth        (the teacher's engine)
    per candidate:           train, eval, drift, gate

`pipeline.lineage.runner.run_stage` runs one entry; `pipeline.loop.candidates` and `pipeline.loop.generation` walk the
table. Adding a stage is one `Stage(...)` line here plus its package `pipeline/<name>/stage.py`.
"""

from __future__ import annotations

from pipeline.drift.stage import run as drift
from pipeline.evals.stage import run as evaluate
from pipeline.gate.stage import run as gate
from pipeline.propose.stage import run as propose
from pipeline.lineage.runner import Stage
from pipeline.synth.stage import run as synth
from pipeline.train.stage import run as train

PROPOSE = Stage("propose", propose)
SYNTH = Stage("synth", synth)
TRAIN = Stage("train", train, accelerator=True)
EVAL = Stage("eval", evaluate)
DRIFT = Stage("drift", drift)
GATE = Stage("gate", gate)

BASELINE = (EVAL, DRIFT)
SHARED = (PROPOSE, SYNTH)  # once per generation, shared by its candidates
CANDIDATE = (TRAIN, EVAL, DRIFT, GATE)  # once per candidate successor
ALL = {s.name: s for s in (PROPOSE, SYNTH, TRAIN, EVAL, DRIFT, GATE)}
