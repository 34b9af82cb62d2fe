"""Every per-candidate field reaches its training: the candidate's own mixture (num_examples,
math_fraction), and the step budget (train.min_steps / train.max_steps), on literal inputs and in one
tiny real training that validates on synth/val.jsonl."""

from __future__ import annotations

import pytest

from pipeline.loop import candidates
from pipeline.infra.io import atomic_write_json, read_json, read_jsonl, write_jsonl
from pipeline.lineage import Lineage
from pipeline.lineage.runner import StageContext
from pipeline.train.budget import epoch_steps, plan
from pipeline.train.stage import prepare_job, run

HPARAMS = {
    "learning_rate": 1e-3, "epochs": 1, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "batch_size": 2,
    "max_seq_length": 128, "warmup_ratio": 0.0, "num_examples": 6, "math_fraction": 1.0, "synth_temperature": 0.8,
}


def row(kind: str, i: int, split: str = "train") -> dict:
    q, a = (f"What is {i} + {i + 1}?", f"{i} + {i + 1} = {2 * i + 1}. #### {2 * i + 1}") if kind == "math" else (
        f"Write f{i}(x) returning x + {i}.", f"```python\ndef f{i}(x):\n    return x + {i}\n```")
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            "meta": {"kind": kind, "gen": 1, "id": f"{kind}-{i}", "problem_id": f"{kind}-{i}", "split": split}}


def shared_generation(cfg, val_rows: int = 0):
    """gen_001 as the propose and synth stages leave it: a pool of 12 math and 12 code train rows, the
    shared mixture built with num_examples=6, math_fraction=1 (so 6 math rows), `val_rows` val rows."""
    from pipeline.engine import models
    from pipeline.synth import mixture
    from pipeline.synth.decontaminate import default_index

    lin = Lineage(cfg.paths.root, cfg.paths.lineage)
    lin.init(cfg.model.spec, models.resolve(cfg.model.spec, cfg.paths.models))
    lin.record(lin.gen(0), status="promoted")
    gen = lin.gen(1)
    lin.record(gen, status="candidate", parent="gen_000", teacher="gen_000")
    new = [row("math", i) for i in range(12)] + [row("code", i) for i in range(12)]
    new += [row("math", 100 + i, "val") for i in range(val_rows)]
    sc = cfg.synth
    train, info = mixture.build([r for r in new if r["meta"]["split"] == "train"], [], 6, 1.0, sc.anchor_fraction,
                                sc.min_anchor_examples, mixture.seed_for(cfg.seed, 1), 1,
                                default_index(sc.decontam_ngram, sc.decontam_ngram_masked, sc.decontam_near_dup))
    d = gen.path / "synth"
    write_jsonl(d / "new.jsonl", new)
    write_jsonl(d / "train.jsonl", train)
    write_jsonl(d / "val.jsonl", [r for r in new if r["meta"]["split"] == "val"])
    atomic_write_json(d / "stats.json", {"mixture": info})
    atomic_write_json(gen.path / "propose" / "accepted.json",
                      {"hparams": HPARAMS, "source": "teacher", "candidates": [{"hparams": HPARAMS, "source": "teacher"}]})
    return lin, gen


def candidate_ctx(cfg, lin, gen) -> StageContext:
    cand = lin.gen_by_name(f"{gen.name}-{cfg.candidate.name}")
    candidates.prepare_candidate(cfg, lin, gen, lin.gen(0), cand, 0)
    return StageContext(cfg=cfg, lineage=lin, gen=cand, teacher=lin.gen(0), stage="train")


def kinds(path) -> dict:
    out: dict = {}
    for r in read_jsonl(path):
        out[r["meta"]["kind"]] = out.get(r["meta"]["kind"], 0) + 1
    return out


def test_candidate_overrides_reach_its_training_data(smoke_cfg):
    base = smoke_cfg()
    lin, gen = shared_generation(base)
    # the generation itself: its values built the shared mixture, which it trains on
    _, _, data = prepare_job(StageContext(cfg=base, lineage=lin, gen=gen, teacher=lin.gen(0), stage="train"))
    assert data["sft"]["mixture"]["rule"] == "shared" and data["sft"]["file"] == "synth/train.jsonl"
    assert data["sft"]["used"] == 6
    assert data["sft"]["mixture"]["origins"] == {"gen_001": 6}  # rows per generation that wrote them
    # a sweep job with num_examples=10 trains on 10 rows of its own draw, all math like the shared mixture
    cfg = smoke_cfg("candidate.name=j0", "candidate.hparams.num_examples=10")
    _, job, data = prepare_job(candidate_ctx(cfg, lin, gen))
    mix = data["sft"]["mixture"]
    assert mix["rule"] == "candidate" and mix["num_examples"] == 10 and mix["shared"]["num_examples"] == 6
    assert data["sft"]["used"] == 10 and len(read_jsonl(job.phases[0]["data"])) == 10
    assert data["sft"]["file"] == "train/data/mixture.jsonl"  # the candidate's own, in its train/data/
    assert kinds(lin.gen_by_name("gen_001-j0").path / "train" / "data" / "mixture.jsonl") == {"math": 10}
    # math_fraction changes the kinds
    cfg = smoke_cfg("candidate.name=j1", "candidate.hparams.num_examples=10", "candidate.hparams.math_fraction=0.3")
    _, _, data = prepare_job(candidate_ctx(cfg, lin, gen))
    assert data["sft"]["mixture"]["selected"] == {"math": 3, "code": 7}
    assert kinds(lin.gen_by_name("gen_001-j1").path / "train" / "data" / "mixture.jsonl") == {"math": 3, "code": 7}
    # the same values as the shared mixture: the shared file, no copy
    cfg = smoke_cfg("candidate.name=j2", "candidate.hparams.num_examples=6")
    _, _, data = prepare_job(candidate_ctx(cfg, lin, gen))
    assert data["sft"]["mixture"]["rule"] == "shared"


def test_data_size_sweep_trains_different_candidates():
    """conf/sweep/data_size.yaml's values become different num_examples for the candidates."""
    from omegaconf import OmegaConf

    from pipeline.config.compose import conf_dir

    sweep = OmegaConf.load(conf_dir() / "sweep" / "data_size.yaml")
    values = str(sweep.hydra.sweeper.params["candidate.hparams.num_examples"]).split(",")
    assert len(set(values)) == len(values) > 1


@pytest.mark.parametrize("n, per, accum, world, epochs, min_steps, max_steps, expect", [
    (40, 4, 2, 1, 1, 0, -1, (5, "epochs", 5, 5)),  # 10 batches, 2 per step
    (40, 4, 2, 1, 1, 40, -1, (40, "min_steps", 5, 5)),  # the CPU floor: 8 passes over 40 rows
    (40, 4, 2, 1, 1, 40, 12, (12, "max_steps", 5, 5)),  # the cap wins over the floor
    (40, 4, 2, 1, 3, 10, -1, (15, "epochs", 15, 5)),  # enough epochs: the floor does not apply
    (41, 4, 2, 1, 1.5, 0, -1, (9, "epochs", 9, 6)),  # 11 batches -> 6 steps (last one partial), 1.5 epochs
    (40, 4, 1, 2, 1, 0, 3, (3, "max_steps", 5, 5)),  # two ranks: 5 batches each
    (3, 8, 1, 1, 1, 0, -1, (1, "epochs", 1, 1)),  # fewer rows than a batch: still one step
])
def test_step_rules(n, per, accum, world, epochs, min_steps, max_steps, expect):
    p = plan(n, per, accum, world, epochs, min_steps, max_steps)
    assert (p.steps, p.rule, p.from_epochs, p.epoch_steps) == expect


def test_cpu_profile_budget_reaches_40_steps(smoke_cfg):
    """The CPU profile: ~30-50 rows at batch 4 (the CPU space fixes it) give 8-13 steps an epoch;
    train.min_steps=40 makes it 40, whatever the teacher proposes for the batch."""
    from pipeline.config.compose import compose

    from pipeline.train.worker import batch_layout

    cfg = compose(["experiment=cpu"])
    assert cfg.train.min_steps == 40 and cfg.train.max_steps == -1
    per, accum = batch_layout(cfg.propose.hparams.batch_size, cfg.train.per_device_batch_size, 1)
    assert (per, accum) == (4, 1) and list(cfg.propose.space.batch_size) == [4]
    for n in (30, 40, 50):
        assert 8 <= epoch_steps(n, per, accum, 1) <= 13
        assert plan(n, per, accum, 1, cfg.propose.hparams.epochs, cfg.train.min_steps, -1).steps == 40


def test_min_steps_is_checked(smoke_cfg):
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="train.min_steps"):
        smoke_cfg("train.min_steps=-1")


@pytest.mark.slow
def test_tiny_training_reaches_min_steps_and_picks_the_best_checkpoint_on_val(smoke_cfg):
    """6 rows at batch 2 are 3 steps an epoch: min_steps=7 trains 7 (extra epochs), evaluates on the 3
    val rows at every save, ends on the lowest eval loss; ledger metric train.steps."""
    cfg = smoke_cfg("train.max_steps=-1", "train.min_steps=7", "train.save_steps=3", "train.logging_steps=1",
                    "train.report_to=none", "train.isolate=false")
    lin, gen = shared_generation(cfg, val_rows=3)
    res = run(StageContext(cfg=cfg, lineage=lin, gen=gen, teacher=lin.gen(0), stage="train"))
    plan_ = res.info["step_plan"]["sft"]
    assert plan_ == {"steps": 7, "rule": "min_steps", "from_epochs": 3, "epoch_steps": 3, "actual": 7}
    assert res.info["step_rule"] == {"sft": "min_steps"} and res.metrics["train.steps"] == 7
    val = res.info["val"]["sft"]
    assert val["used"] is True and val["rows"] == 3 and len(val["eval_losses"]) == 3  # steps 3, 6 and the last
    assert val["best_eval_loss"] == min(val["eval_losses"])
    assert val["best_checkpoint"] in {"checkpoint-3", "checkpoint-6", "checkpoint-7"}
    # the ledger counts the 7 steps run and, beside them, the step of the weights exported
    assert res.metrics["train.exported_step"] == res.info["exported_step"]["sft"] == int(val["best_checkpoint"][11:])
    assert f"Exported weights: sft step {res.metrics['train.exported_step']} of 7 run" in (
        gen.model_dir / "README.md").read_text()
    assert read_json(gen.path / "train" / "sft" / "final" / "result.json")["step_plan"]["actual"] == 7


@pytest.mark.slow
def test_resume_with_validation_keeps_the_plan_and_the_best_checkpoint(smoke_cfg):
    """Killed after step 4 (complete checkpoint-3): the rerun resumes there, plans the same 7 steps and
    still ends on the lowest eval loss of every evaluation, before and after the kill."""
    from transformers import TrainerCallback

    from pipeline.train.worker import train

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 4:
                raise KeyboardInterrupt("simulated kill")

    cfg = smoke_cfg("train.max_steps=-1", "train.min_steps=7", "train.save_steps=3", "train.logging_steps=1",
                    "train.report_to=none", "train.isolate=false")
    lin, gen = shared_generation(cfg, val_rows=3)
    ctx = StageContext(cfg=cfg, lineage=lin, gen=gen, teacher=lin.gen(0), stage="train")
    _, job, _ = prepare_job(ctx)
    with pytest.raises(KeyboardInterrupt):
        train(job, callbacks=[Crash()])
    res = run(ctx)
    assert res.info["resumed_from"] == {"sft": "checkpoint-3"}
    assert res.info["step_plan"]["sft"]["steps"] == 7 and res.info["step_plan"]["sft"]["actual"] == 7
    val = res.info["val"]["sft"]
    assert val["used"] is True and len(val["eval_losses"]) == 3 and val["best_eval_loss"] == min(val["eval_losses"])
