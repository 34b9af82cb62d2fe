"""Records pair on (item id, protocol): the reference side of a gated eval metric.

    from pipeline.gate.pairing import paired_reference
    values, note = paired_reference(ctx, ctx.teacher, "gsm8k_val.accuracy_flexible", cand_values)

A reference generation's own `eval/<task>.jsonl` records serve when they were made under the
candidate's protocol (`pipeline.evals.protocol.protocol_key`, the same for every model and subset
size). Otherwise (a protocol changed mid-lineage, or records from before the protocol was kept, or
none at all) the reference model is scored on the candidate's items under the candidate's protocol
by the reference-scoring step (pipeline.evals.reference: records and manifest under
`gen_NNN/gate/reference/<ref>/<task>/`, resumable), and `note` says so. The candidate's own records
must carry the configured protocol; if they do not, or the reference's model is gone, the gate stops
with an error naming the task rather than compare unlike with unlike.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pipeline.evals.protocol import protocol_key, records_protocols
from pipeline.evals.reference import score_reference
from pipeline.lineage import GenerationDir, LineageError
from pipeline.lineage.runner import StageContext


def _short(protocols: set | None) -> str:
    if not protocols:
        return "no records"
    return ", ".join("none recorded" if p is None else str(p)[:12] for p in sorted(protocols, key=str))


def paired_reference(ctx: StageContext, ref_gen: GenerationDir, key: str, cand: object
                     ) -> tuple[dict[str, float] | None, str | None]:
    """(per-item reference values of eval metric `key` under the candidate's protocol, a note) when
    the reference had to be re-scored; (None, None) when its own records pair as they are, or when
    there is nothing per item to pair (`cand` is a point estimate, `key` is no eval metric)."""
    task, _, name = key.partition(".")
    spec = ctx.cfg.eval.tasks.get(task)
    if spec is None or not isinstance(cand, Mapping) or not cand:
        return None, None
    want = protocol_key(spec, ctx.cfg)
    mine = records_protocols(ctx.gen.path / "eval" / f"{task}.jsonl")
    if mine != {want}:
        raise LineageError(f"gate: eval task {task!r}: {ctx.gen.name}'s records were made under protocol(s) "
                           f"{_short(mine)}, the config's is {want[:12]}; re-run its eval stage "
                           f"(delete {ctx.gen.name}/eval/manifest.json)")
    theirs = records_protocols(ref_gen.path / "eval" / f"{task}.jsonl")
    if theirs == {want}:
        return None, None
    if not Path(ref_gen.model_dir).exists():
        raise LineageError(f"gate: eval task {task!r}: {ref_gen.name}'s records were made under protocol(s) "
                           f"{_short(theirs)}, not {want[:12]}, and its model {ref_gen.model_dir} is gone, so it "
                           "cannot be re-scored")
    records = score_reference(ctx, ref_gen, task, list(cand))
    note = (f"{key}: {ref_gen.name}'s records were made under protocol(s) {_short(theirs)}, not the candidate's "
            f"{want[:12]}: {ref_gen.name} re-scored on the candidate's {len(records)} item(s) "
            f"({ctx.gen.name}/{ctx.stage}/reference/{ref_gen.name}/{task}/)")
    return {r["id"]: float(r["metrics"][name]) for r in records}, note
