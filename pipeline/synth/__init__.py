"""Verified data synthesis by the teacher (issue 4).

- `stage.run(ctx)`: the synth stage of a generation (math + code, verified, decontaminated,
  deduplicated, accumulated); see its docstring for the files it writes.
- `steps`: the engine steps (math, code), resumable from `work/`; they fill a `record.SynthRecord`.
- `mathgen`, `codegen`: prompts, parsing and verification rules for each kind of data;
  `parsing`: the output checks both share.
- `decontaminate`: benchmark n-gram / near-duplicate / reworded-item index and its CLI
  (`python -m pipeline.synth.decontaminate --input IN.jsonl --output OUT.jsonl`); `paraphrase`: the
  reworded-item check (quantities, answer, IDF-weighted words) and its calibration on GSM8K train
  (`python -m pipeline.synth.paraphrase`); `behaviour`: code tasks run against benchmark problems' tests.
- `dedup`, `mixture`, `stats`, `textnorm`: dedup index, training mixture, stats.json (diversity,
  red flags; computed only, the stage writes it), text normalization.
"""
