"""Every config group and experiment composes and validates; typos and bad values fail naming the key."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ValidationError

from pipeline.config import (CHOICES, RANGE, Config, ConfigError, HParams, HParamsOverride, Range, SearchSpace,
                             hparam, override_for, search_space_for)
from tests.support import CONF, compose


NEEDS = {"ablation=random_reward": ["train.method=sft+grpo"]}  # a control of a recipe it does not bring


def group_options(group: str) -> list[str]:
    base = CONF / group
    return sorted(str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.yaml"))


@pytest.mark.parametrize("group", ["model", "engine", "paths", "propose", "synth", "train", "eval", "sandbox",
                                   "drift", "gate", "experiment", "ablation"])
def test_every_group_option_composes(group):
    options = group_options(group)
    assert options, f"conf/{group}/ has no options"
    for opt in options:
        cfg = compose([f"{group}={opt}", *NEEDS.get(f"{group}={opt}", [])])
        assert isinstance(cfg, Config)


def test_experiments_change_what_they_say():
    smoke = compose(["experiment=smoke", "model=tiny:qwen3"])
    cpu = compose(["experiment=cpu"])
    gpu = compose(["experiment=gpu"])
    assert (smoke.profile, cpu.profile, gpu.profile) == ("smoke", "cpu", "gpu")
    assert smoke.model.spec == "tiny:qwen3"
    assert smoke.train.max_steps > 0 and smoke.eval.tasks["gsm8k_test"].n < cpu.eval.tasks["gsm8k_test"].n
    assert gpu.eval.tasks["gsm8k_test"].n == 0  # full test set
    assert cpu.model.spec == "auto"


def test_typo_in_override_names_the_key():
    with pytest.raises(ConfigError, match="train.lerning_rate"):
        compose(["train.lerning_rate=1e-4"])


def test_unknown_keys_are_refused_with_plus_too_and_get_a_did_you_mean():
    """`+key=value` lifts Hydra's struct check; a key the schema lacks is refused anyway, naming the
    key and the likely one: the learning rate lives under propose.hparams (pipeline.config.keys.MOVED)."""
    from pipeline.config.keys import MOVED, unknown_keys

    for override in ("+foo=1", "+train.lr=1", "+eval.tasks.gsm8k_val.bogus=1"):
        with pytest.raises(ConfigError, match="unknown config key"):
            compose([override])
    with pytest.raises(ConfigError, match=r"'train.learning_rate': it moved to propose.hparams.learning_rate"):
        compose(["train.learning_rate=abc"])
    with pytest.raises(ConfigError, match=r"did you mean synth.prompts.pool_questions"):  # was train.grpo.pool_questions
        compose(["+synth.prompts.pool_question=3"])
    with pytest.raises(ConfigError, match=r"did you mean train.grpo.min_prompts"):  # a method's knob, from the registry
        compose(["+train.grpo.min_prompt=3"])
    with pytest.raises(ConfigError, match=r"did you mean eval.tasks.gsm8k_val.n\b"):
        compose(["+eval.tasks.gsm8k_val.nn=3"])
    assert MOVED["train.lr"] == "propose.hparams.learning_rate"
    # a legitimate `+` on a free-keyed dict (a new eval task) is a known key; extras in a composed node are found
    assert unknown_keys({"train": {"max_steps": 1, "lr": 2}, "eval": {"tasks": {"new": {"n": 1}}}}) == ["train.lr"]


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="save_steps"):
        compose(["train.save_steps=often"])


def test_invalid_value_names_the_key():
    with pytest.raises(ConfigError, match="train.init_from"):
        compose(["train.init_from=grandparent"])
    with pytest.raises(ConfigError, match="engine.backend"):
        compose(["engine.backend=tensorrt"])


def test_unknown_group_option_lists_choices():
    with pytest.raises(ConfigError, match="tiny:qwen3"):
        compose(["model=tiny:gpt5"])


def test_model_spec_can_be_any_path_or_hub_id():
    cfg = compose(["model.spec=/some/local/dir"])
    assert cfg.model.spec == "/some/local/dir"


def test_eval_profiles_share_one_task_spec():
    """eval/full.yaml composes eval/cpu.yaml's task specs and changes only their sizes."""
    cpu, full = compose(["eval=cpu"]).eval.tasks, compose(["eval=full"]).eval.tasks
    assert {k: (t.n, t.max_tokens) for k, t in cpu.items()} == {
        "gsm8k_test": (50, 256), "gsm8k_val": (50, 256), "gsm8k_sel": (50, 256), "humaneval": (20, 256)}
    assert full == {k: dataclasses.replace(t, n=0, max_tokens=1024) for k, t in cpu.items()}
    assert (cpu["gsm8k_val"].split, cpu["humaneval"].benchmark) == ("validation", "humaneval")


def test_search_space_and_overrides_follow_hparams():
    names = [f.name for f in dataclasses.fields(HParams)]
    assert [f.name for f in dataclasses.fields(SearchSpace)] == names
    assert [f.name for f in dataclasses.fields(HParamsOverride)] == names

    @dataclasses.dataclass
    class More(HParams):  # adding a hyperparameter is one line on HParams
        knob: float = hparam(RANGE)
        width: int = hparam(CHOICES)

    space = OmegaConf.merge(OmegaConf.structured(search_space_for(More)), {"knob": {"low": 0.0, "high": 1.0}, "width": [1, 2]})
    over = OmegaConf.structured(override_for(More))
    over.width = 3
    assert isinstance(OmegaConf.to_object(space.knob), Range) and over.knob is None and over.width == 3
    with pytest.raises(ValidationError, match="width"):
        space.width = ["wide"]
    with pytest.raises(ConfigAttributeError, match="knobb"):
        over.knobb = 1.0


def test_hparam_typos_name_the_key():
    with pytest.raises(ConfigError, match="propose.space.lerning_rate"):
        compose(["propose.space.lerning_rate={low: 1e-5, high: 1e-4}"])
    with pytest.raises(ConfigError, match="candidate.hparams.lerning_rate"):
        compose(["candidate.hparams.lerning_rate=1e-4"])


def test_one_seed_moves_training_and_is_recorded_in_every_manifest(tmp_path):
    from pipeline.lineage import Lineage
    from pipeline.lineage.runner import StageResult, new_manifest, read_manifest, write_manifest

    cfg = compose(["seed=7"])
    assert cfg.train.seed == 7  # conf/train/default.yaml: seed: ${seed}
    assert compose(["seed=7", "train.seed=3"]).train.seed == 3  # still settable on its own
    lin = Lineage(tmp_path, "s")
    gen = lin.gen(0)
    write_manifest(gen, new_manifest(cfg, "eval", gen, StageResult(), 0.0))
    assert read_manifest(gen, "eval").seed == 7


def test_log_level_quiets_libraries_and_bars_off_a_terminal(monkeypatch):
    """log.level=info (the default): libraries at WARNING, in this process and in the environment the
    engine and training children inherit; no progress bars when stderr is not a terminal (pytest's)."""
    import logging
    import os

    from pipeline.infra import logs

    assert compose([]).log.level == "info"
    with pytest.raises(ConfigError, match="log.level"):
        compose(["log.level=loud"])
    env = {k: v for k, v in os.environ.items() if k not in ("VLLM_LOGGING_LEVEL", "TRANSFORMERS_VERBOSITY", "TQDM_DISABLE")}
    monkeypatch.setattr(os, "environ", env)  # restored afterwards, as are the loggers' levels
    for name in ("", *logs.LIBRARIES):
        monkeypatch.setattr(logging.getLogger(name or None), "level", logging.getLogger(name or None).level)
    logs.configure("info")
    assert logging.getLogger("vllm").level == logging.WARNING and logging.getLogger().level == logging.INFO
    assert (os.environ["VLLM_LOGGING_LEVEL"], os.environ["TRANSFORMERS_VERBOSITY"]) == ("WARNING", "warning")
    assert not logs.bars_wanted() and os.environ["TQDM_DISABLE"] == "1"
    del env["VLLM_LOGGING_LEVEL"]
    logs.configure("debug")
    assert logging.getLogger("vllm").level == logging.DEBUG and os.environ["VLLM_LOGGING_LEVEL"] == "DEBUG"
