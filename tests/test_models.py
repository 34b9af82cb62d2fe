"""Model specs resolve to loadable dirs; corrupt, missing and unknown models fail with clear errors."""

from __future__ import annotations

import shutil

import pytest

from pipeline.engine import models
from pipeline.infra.io import read_json
from pipeline.engine.models import ModelError, resolve


def test_tiny_models_are_real_and_deterministic(tiny_qwen3, tiny_llama, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(tiny_qwen3)
    assert cfg.model_type == "qwen3" and cfg.head_dim == 64 and cfg.num_hidden_layers == 2
    tok = AutoTokenizer.from_pretrained(tiny_qwen3)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True, enable_thinking=False)
    assert text.endswith("<think>\n\n</think>\n\n")  # Qwen3 template, thinking mode off
    assert AutoConfig.from_pretrained(tiny_llama).model_type == "llama"
    # same spec, same weights: rebuilding elsewhere gives identical checksums
    again = resolve("tiny:qwen3", tmp_path)
    a = read_json(tiny_qwen3 / "manifest.json")["files"]["model.safetensors"]["sha256"]
    b = read_json(again / "manifest.json")["files"]["model.safetensors"]["sha256"]
    assert a == b


def test_resolve_is_idempotent(tiny_qwen3, models_dir):
    assert resolve("tiny:qwen3", models_dir) == tiny_qwen3


def test_embedded_model_is_provisioned(models_dir):
    from transformers import AutoConfig

    path = resolve("embedded:smollm2-135m-instruct", models_dir)
    assert AutoConfig.from_pretrained(path).model_type == "llama"
    assert (path / "model.safetensors").stat().st_size > 400e6  # dequantized fp32


def test_corrupt_model_dir_is_reported(tiny_llama, tmp_path):
    bad = tmp_path / "m"
    shutil.copytree(tiny_llama, bad)
    with open(bad / "model.safetensors", "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    with pytest.raises(ModelError, match="corrupt: model.safetensors does not match"):
        resolve(str(bad))
    (bad / "config.json").unlink()
    with pytest.raises(ModelError, match="no config.json"):
        resolve(str(bad))


def test_missing_and_unknown_models(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="does not exist"):
        resolve(str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="unknown tiny model"):
        resolve("tiny:gpt5", tmp_path)
    with pytest.raises(ModelError, match="unknown embedded model"):
        resolve("embedded:llama-70b", tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="neither a local directory nor downloadable"):
        resolve("nobody/no-such-model-xyz")


def test_interrupted_build_is_not_mistaken_for_a_model(tmp_path):
    (tmp_path / "tiny-qwen3").mkdir()  # a dir without a manifest: a crashed or foreign build
    with pytest.raises(ModelError, match="has no manifest"):
        resolve("tiny:qwen3", tmp_path)


def test_auto_picks_by_device(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.pick_auto() == models.CPU_DEFAULT
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.pick_auto() == models.GPU_DEFAULT
