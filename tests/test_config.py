"""Every config group and experiment composes and validates; typos and bad values fail naming the key."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from pipeline.config import Config, ConfigError
from tests.conftest import CONF, compose


def group_options(group: str) -> list[str]:
    base = CONF / group
    return sorted(str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.yaml"))


@pytest.mark.parametrize("group", ["model", "engine", "paths", "propose", "synth", "train", "eval", "sandbox",
                                   "drift", "gate", "experiment"])
def test_every_group_option_composes(group):
    options = group_options(group)
    assert options, f"conf/{group}/ has no options"
    for opt in options:
        cfg = compose([f"{group}={opt}"])
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
    with pytest.raises(ConfigCompositionException, match="train.lerning_rate"):
        compose(["train.lerning_rate=1e-4"])


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigCompositionException) as e:
        compose(["train.save_steps=often"])
    assert "save_steps" in str(e.value) + str(e.value.__cause__)


def test_invalid_value_names_the_key():
    with pytest.raises(ConfigError, match="train.init_from"):
        compose(["train.init_from=grandparent"])
    with pytest.raises(ConfigError, match="engine.backend"):
        compose(["engine.backend=tensorrt"])


def test_unknown_group_option_lists_choices():
    with pytest.raises(MissingConfigException, match="tiny:qwen3"):
        compose(["model=tiny:gpt5"])


def test_model_spec_can_be_any_path_or_hub_id():
    cfg = compose(["model.spec=/some/local/dir"])
    assert cfg.model.spec == "/some/local/dir"
