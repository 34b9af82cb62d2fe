"""The training-method registry: `train.method` validation, chains, report columns, each method's knobs
beside it and in the schema, and plugin methods trained through the train stage without touching
pipeline/ (tests/plugins/toy_method.py; tests/plugins/neftune.py with its own knobs, `train.neftune.*`)."""

from __future__ import annotations

import json

import pytest

from pipeline.report import text as report
from pipeline.config import ConfigError, resolved_dict
from pipeline.config.keys import schema_keys
from pipeline.infra.io import read_jsonl
from pipeline.train.methods import METHODS, dpo, grpo, parse_chain, register_method
from pipeline.train.stage import prepare_job, run
from pipeline.train.worker import build_trainer
from tests.support.train import LORA, arithmetic_rows, make_ctx


@pytest.fixture
def toy():
    """The plugin's method, registered for one test and unregistered after it."""
    from plugins import toy_method

    method = register_method(toy_method.METHOD)  # importing registered it once; a later test registers again
    yield method
    METHODS.unregister(method.name)


@pytest.fixture
def neftune():
    """The knobs plugin's method (tests/plugins/neftune.py), registered for one test."""
    from plugins import neftune

    method = register_method(neftune.METHOD)
    yield method
    METHODS.unregister(method.name)


PLUGIN = "plugins=[plugins.neftune]"


def test_a_methods_knobs_sit_beside_it_and_join_the_schema(smoke_cfg):
    assert METHODS.get("dpo").config is dpo.DPOConfig and METHODS.get("grpo").config is grpo.GRPOConfig
    assert METHODS.get("sft").config is None  # its knobs are the proposal's and train.*
    assert {"train.dpo.beta", "train.grpo.rewards", "synth.prompts.pool_questions"} <= set(schema_keys())
    cfg = smoke_cfg("train.dpo.beta=0.3")
    assert isinstance(cfg.train.dpo, dpo.DPOConfig) and cfg.train.dpo.beta == 0.3
    assert resolved_dict(cfg)["train"]["dpo"]["beta"] == 0.3  # in the config hash and the worker's job file
    assert cfg.train != smoke_cfg().train  # a knob of a method counts when configs are compared
    with pytest.raises(ConfigError, match=r"'train.dpo.beta': must be > 0"):
        smoke_cfg("train.dpo.beta=0")
    with pytest.raises(ConfigError, match=r"^unknown config key 'train.grpo.pool_questions': it moved to "
                                          r"synth.prompts.pool_questions$"):
        smoke_cfg("train.grpo.pool_questions=8")


def test_a_plugin_method_brings_its_own_knobs(smoke_cfg, neftune):
    cfg = smoke_cfg(PLUGIN, "train.method=sft+neftune", "train.neftune.noise_alpha=2.5", "train.neftune.max_rows=2")
    assert cfg.train.neftune == neftune.config(noise_alpha=2.5, max_rows=2)
    assert resolved_dict(cfg)["train"]["neftune"] == {"noise_alpha": 2.5, "max_rows": 2}
    assert smoke_cfg(PLUGIN).train.neftune.noise_alpha == 5.0  # the plugin's dataclass holds its defaults
    with pytest.raises(ConfigError, match=r"^unknown config key 'train.neftune.noise_alfa': did you mean "
                                          r"train.neftune.noise_alpha"):
        smoke_cfg(PLUGIN, "train.neftune.noise_alfa=1")
    with pytest.raises(ConfigError, match=r"^invalid config value for 'train.neftune.noise_alpha': must be > 0"):
        smoke_cfg(PLUGIN, "train.neftune.noise_alpha=0")
    METHODS.unregister(neftune.name)
    with pytest.raises(ConfigError, match=r"^unknown config key 'train.neftune.noise_alpha'"):
        smoke_cfg("train.neftune.noise_alpha=1")  # no plugin, no knob


def test_a_plugin_methods_knobs_reach_its_data_trainer_and_card(smoke_cfg, neftune):
    """train.method=neftune: its knobs go through the job file to the worker's dataset and trainer, which
    trains a step (the stage around a plugin method: test_plugin_method_trains_through_the_train_stage)."""
    import torch

    cfg = smoke_cfg(PLUGIN, "train.method=neftune", "train.neftune.noise_alpha=2.5", "train.neftune.max_rows=4",
                    "train.max_steps=1", "train.report_to=none")
    _, job, data = prepare_job(make_ctx(cfg, arithmetic_rows(6), LORA))
    assert data["neftune"]["used"] == 4 and len(read_jsonl(job.phases[0]["data"])) == 4
    assert job.cfg().train.neftune.noise_alpha == 2.5  # the worker's config, rebuilt from the job file
    trainer = build_trainer(job)
    assert trainer.args.neftune_noise_alpha == 2.5 and len(trainer.train_dataset) == 4
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters() if v.requires_grad}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert trainer.state.global_step == 1 and any(not torch.equal(v, after[k]) for k, v in before.items())
    assert "NEFTune embedding noise (alpha=2.5)" in neftune.card_method(cfg, job.hp())


def test_unknown_or_repeated_method_fails_config_validation(smoke_cfg):
    with pytest.raises(ConfigError, match=r"'train.method'.*unknown training method 'nope'.*registered: \['dpo', 'grpo', 'sft'\]"):
        smoke_cfg("train.method=nope")
    with pytest.raises(ConfigError, match=r"'train.method'.*\['sft'\] more than once"):
        smoke_cfg("train.method=sft+sft")
    with pytest.raises(ConfigError, match=r"'train.method'.*not a method name or a chain"):
        smoke_cfg("train.method=sft+")
    assert [m.name for m in parse_chain("sft+dpo")] == ["sft", "dpo"]


def test_report_columns_come_from_the_registry(toy):
    assert report.hparam_keys() == ("learning_rate", "epochs", "lora_r")
    grpo = ("train.reward_last", "train.majority_gold_agreement")
    assert report.train_columns([]) == ("train.steps", "train.exported_step", "train.loss_last", *grpo, "train.toy_lm_loss_last",
                                        "hp.learning_rate", "hp.epochs", "hp.lora_r", "hp.source")
    METHODS.unregister(toy.name)
    assert report.train_columns([]) == ("train.steps", "train.exported_step", "train.loss_last", *grpo, "hp.learning_rate",
                                        "hp.epochs", "hp.lora_r", "hp.source")


def test_a_chain_prepares_one_phase_per_method(smoke_cfg, toy):
    pairs = [{"prompt": [{"role": "user", "content": "1 + 1?"}], "chosen": [{"role": "assistant", "content": "2"}],
              "rejected": [{"role": "assistant", "content": "3"}]}]
    cfg = smoke_cfg("train.method=sft+dpo")
    _, job, data = prepare_job(make_ctx(cfg, arithmetic_rows(3), hparams={}, pairs=pairs))
    assert [p["method"] for p in job.phases] == ["sft", "dpo"] and set(data) == {"sft", "dpo"}
    assert json.loads(open(job.phases[1]["data"]).readline())["chosen"][0]["content"] == "2"
    cfg = smoke_cfg("train.method=sft+toy_lm")  # a plugin method chains like a built-in one
    _, job, data = prepare_job(make_ctx(cfg, arithmetic_rows(3), hparams={}, gen_index=2))
    assert [p["method"] for p in job.phases] == ["sft", "toy_lm"]
    assert "input_ids" in json.loads(open(job.phases[1]["data"]).readline()) and data["toy_lm"]["used"] == 3


@pytest.mark.slow
def test_plugin_method_trains_through_the_train_stage(smoke_cfg, toy):
    """train.method=toy_lm: the stage, worker, export and card run a method they have never heard of."""
    import torch
    from safetensors.torch import load_file

    from pipeline.engine.models import check_model_dir

    cfg = smoke_cfg("train.method=toy_lm", "train.isolate=false", "train.max_steps=6", "train.save_steps=3",
                    "train.logging_steps=1", "train.report_to=none")
    ctx = make_ctx(cfg, arithmetic_rows(6), LORA)
    res = run(ctx)
    assert res.info["steps"] == {"toy_lm": 6} and res.info["method"] == "toy_lm"
    assert set(res.metrics) == {"train.steps", "train.exported_step", "train.toy_lm_loss_first", "train.toy_lm_loss_last"}
    assert res.metrics["train.steps"] == 6  # the stage's own column, whatever the method
    assert res.metrics["train.toy_lm_loss_last"] < res.metrics["train.toy_lm_loss_first"]
    assert (ctx.out / "toy_lm" / "checkpoints" / "checkpoint-6" / "COMPLETE").exists()
    model_dir = check_model_dir(ctx.gen.model_dir)
    assert json.loads((model_dir / "manifest.json").read_text())["phases"] == ["toy_lm"]
    base = load_file(str(ctx.base_model_dir / "model.safetensors"))
    merged = load_file(str(model_dir / "model.safetensors"))
    assert set(merged) == set(base) and any(not torch.equal(base[k], merged[k]) for k in base)
    card = (model_dir / "README.md").read_text()
    assert "- toy-lm" in card.split("---")[1] and "train.method=toy_lm" in card
    assert "plain causal-LM loss on the whole conversation" in card and "- Toy LM (" in card
    assert "6 examples read, 6 used" in card
