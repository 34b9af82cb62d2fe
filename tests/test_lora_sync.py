"""GRPO's vLLM weight sync with LoRA (pipeline/train/lora_sync.py): trl's in-place merge/unmerge drifts
a bf16 base (trl#6688), measured here on a tiny model through trl's own sync code; the out-of-place
fp32 merge the GPU GRPO profile uses leaves the base bit-identical and gives the engine the same
weights a single fp32 merge gives. Plus the GRPO-with-vLLM config refusals (trl#6789, trl#5312)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pipeline.config import ConfigError
from pipeline.train import lora_sync
from pipeline.train.methods import grpo
from tests.support import compose

SYNCS = 50


def lora_policy(path, dtype):
    """The tiny model with a LoRA adapter on every linear layer, B made non-zero as after training."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(path, dtype=dtype),
                           LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.02)
    return model


def trl_generation(model):
    """trl 1.16's VLLMGeneration around `model`, without an engine: only its weight iteration is used."""
    from trl.distributed import DistributedBackend
    from trl.generation.vllm_generation import VLLMGeneration

    gen = VLLMGeneration.__new__(VLLMGeneration)
    gen.model = model
    gen._dist = DistributedBackend(SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=None, fsdp_plugin=None)))
    return gen


def base_weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith(lora_sync.BASE_SUFFIX)}


def drift(model, before) -> tuple[float, float, float]:
    """(max |w - w0|, max over tensors of max |w - w0| / max |w0|, share of base elements changed)."""
    errs, rels, changed, total = [], [], 0, 0
    for n, p in model.named_parameters():
        if n in before:
            d = (p.detach().float() - before[n].float()).abs()
            errs.append(d.max().item())
            rels.append(d.max().item() / before[n].float().abs().max().item())
            changed += int((d > 0).sum())
            total += d.numel()
    return max(errs), max(rels), changed / total


@pytest.fixture
def one_thread():
    """Tiny matmuls: one thread is fastest, and on a loaded machine many threads are far slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_bf16_merge_round_trips_drift_the_base_and_the_out_of_place_sync_does_not(tiny_qwen3, one_thread):
    measured = {}
    for dtype in (torch.bfloat16, torch.float32):
        model = lora_policy(tiny_qwen3, dtype)
        before = base_weights(model)
        gen = trl_generation(model)
        for _ in range(SYNCS):  # trl's own sync: merge_adapter(), read, unmerge_adapter()
            for _name, _w in gen._iter_named_params():
                pass
        measured[dtype] = drift(model, before)
    bf16_abs, bf16_rel, bf16_changed = measured[torch.bfloat16]
    fp32_abs, fp32_rel, _ = measured[torch.float32]
    print(f"\n{SYNCS} trl syncs: bf16 max abs {bf16_abs:.3g}, max rel {bf16_rel:.3g}, {bf16_changed:.1%} of base "
          f"elements changed; fp32 max abs {fp32_abs:.3g}, max rel {fp32_rel:.3g}")
    assert bf16_rel > 1e-3 and bf16_changed > 0.01  # bf16: many base weights moved, by more than rounding noise
    assert fp32_rel < 1e-5 and fp32_rel < bf16_rel / 100

    model = lora_policy(tiny_qwen3, torch.bfloat16)
    gen = trl_generation(model)
    trl_names = [n for n, _ in gen._iter_named_params()]
    before = base_weights(model)  # trl's one sync above may have moved it; ours is measured from here
    assert lora_sync.install(gen) == lora_sync.SYNC
    for _ in range(SYNCS):
        synced = dict(gen._iter_named_params())
    assert drift(model, before) == (0.0, 0.0, 0.0)  # bit-identical after 50 syncs
    assert list(synced) == trl_names  # the names vLLM's load_weights expects, as trl gives them
    q = "model.layers.0.self_attn.q_proj"
    layer = model.base_model.model.get_submodule(q)
    expected = (layer.base_layer.weight.float() + layer.get_delta_weight("default").float()).to(torch.bfloat16)
    assert torch.equal(synced[f"{q}.weight"], expected) and not torch.equal(expected, layer.base_layer.weight)
    assert not any("lora_" in n for n in synced)


def test_install_leaves_full_fine_tuning_and_no_vllm_alone(tiny_qwen3, one_thread):
    from transformers import AutoModelForCausalLM

    assert lora_sync.install(None) is None
    gen = trl_generation(AutoModelForCausalLM.from_pretrained(tiny_qwen3))
    assert lora_sync.install(gen) is None and "_iter_named_params" not in vars(gen)


def test_grpo_with_vllm_refuses_truncated_sampling():
    for key, value in (("top_p", 0.9), ("top_k", 20), ("min_p", 0.05)):
        with pytest.raises(ConfigError, match=rf"'train.grpo.{key}': {value} truncates.*importance-sampling correction \(trl#6789\)"):
            compose(["train.method=grpo", "train.grpo.use_vllm=true", f"train.grpo.{key}={value}"])
    # transformers generate has no correction to bias: truncated sampling stays allowed there
    assert compose(["train.method=grpo", "train.grpo.top_p=0.9", "train.grpo.top_k=20"]).train.grpo.top_k == 20


def test_grpo_with_vllm_refuses_sleep_mode_on_a_trl_before_the_fix(monkeypatch):
    args = ["train.method=grpo", "train.grpo.use_vllm=true", "train.grpo.vllm_sleep_mode=true"]
    monkeypatch.setattr(grpo, "trl_version", lambda: "1.9.0")
    with pytest.raises(ConfigError, match=r"'train.grpo.vllm_sleep_mode': trl 1.9.0 serves stale weights.*trl#5312"):
        compose(args)
    monkeypatch.setattr(grpo, "trl_version", lambda: grpo.TRL_SLEEP_FIX)
    cfg = compose(args)
    assert cfg.train.grpo.vllm_sleep_mode
    # what the sync does is recorded: in the phase result (train manifest) and, with LoRA, the card
    from pipeline.config import HParams

    hp = HParams(learning_rate=1e-4, epochs=1, lora_r=8, lora_alpha=16, lora_dropout=0.0, batch_size=16,
                 max_seq_length=1024, warmup_ratio=0.0, num_examples=16, math_fraction=1.0, synth_temperature=0.8)
    assert grpo.METHOD.phase_stats([], cfg)["vllm_weight_sync"] == lora_sync.SYNC
    assert lora_sync.SYNC in grpo.METHOD.card_method(cfg, hp)
