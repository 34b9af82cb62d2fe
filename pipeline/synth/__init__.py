"""Verified data synthesis by the teacher (issue 4).

- `stage.run(cfg, ctx)`: the synth stage of a generation (math + code, verified, decontaminated,
  deduplicated, accumulated); see its docstring for the files it writes.
- `mathgen`, `codegen`: prompts, parsing and verification rules for each kind of data.
- `decontaminate`: benchmark n-gram / near-duplicate index and its CLI
  (`python -m pipeline.synth.decontaminate --input IN.jsonl --output OUT.jsonl`).
- `dedup`, `mixture`, `stats`, `textnorm`: dedup index, training mixture, diversity and red flags.
"""
