"""How many optimizer steps a training phase runs: the proposal's epochs, a floor, a cap.

    python -m pipeline.loop train.min_steps=40          # at least 40 optimizer steps per phase
    python -m pipeline.loop train.max_steps=200         # at most 200 (the cap wins over the floor)

The proposal's `epochs` over the phase's data give `from_epochs` steps (the trainer's own count:
batches per rank, over gradient accumulation, rounded up). Too few data make that a handful of
steps, which trains nothing: `train.min_steps` raises it, by extra passes over the same data
(rule `min_steps`); a method's cap (`train.max_steps`, `train.dpo.max_steps`; > 0 when set) lowers
it (rule `max_steps`); otherwise the epochs decide (rule `epochs`). The worker hands the planned
count to the trainer as `max_steps`, so a resumed run plans the same number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RULES = ("epochs", "min_steps", "max_steps")


@dataclass(frozen=True)
class StepPlan:
    steps: int  # optimizer steps to run
    rule: str  # RULES: what set `steps`
    from_epochs: int  # what the proposal's epochs alone would give
    epoch_steps: int  # optimizer steps per pass over the data


def epoch_steps(n_rows: int, per_device: int, accumulation: int, world: int) -> int:
    """Optimizer steps per epoch as transformers' Trainer counts them (batches per rank, per accumulation)."""
    batches = math.ceil(math.ceil(n_rows / per_device) / world)
    return max(batches // accumulation + int(batches % accumulation > 0), 1)


def plan(n_rows: int, per_device: int, accumulation: int, world: int, epochs: float, min_steps: int,
         max_steps: int) -> StepPlan:
    """The step count per the module doc; `max_steps` <= 0 means no cap."""
    per_epoch = epoch_steps(n_rows, per_device, accumulation, world)
    from_epochs = max(math.ceil(epochs * per_epoch), 1)
    steps, rule = from_epochs, "epochs"
    if steps < min_steps:
        steps, rule = min_steps, "min_steps"
    if 0 < max_steps < steps:
        steps, rule = max_steps, "max_steps"
    return StepPlan(steps=steps, rule=rule, from_epochs=from_epochs, epoch_steps=per_epoch)
