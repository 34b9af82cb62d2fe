"""GRPO's weight sync to a colocated vLLM engine, with the LoRA adapter merged out of place.

trl 1.16 syncs a LoRA policy to vLLM by merging the adapter into the base weights in place, reading
them, and unmerging (`VLLMGeneration._iter_named_params`: `merge_adapter()` ... `unmerge_adapter()`).
On GPU the frozen base is bf16, and `w + d - d` in bf16 is not `w`: every sync rounds the base a
little, the errors accumulate over hundreds of syncs, and the model trained and saved is no longer
base + adapter (trl#6688; tests/test_lora_sync.py measures it on a tiny model). Here every LoRA
layer's merged weight is computed out of place, base and update in fp32 and rounded once to the
base dtype, from a base that is never written: the engine gets the same weights a single fp32
merge gives, and the base stays bit-identical however often it syncs.

    from pipeline.train import lora_sync
    lora_sync.install(trainer.vllm_generation)   # GRPO.build_trainer does this when use_vllm is set
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:  # annotations only: importing the method registry (every config compose) stays torch-free
    import torch

SYNC = ("LoRA layers merged out of place in fp32 from the untouched base at every vLLM weight sync "
        "(no in-place merge/unmerge, so no bf16 drift of the base, trl#6688)")
BASE_SUFFIX = ".base_layer.weight"


def merged_weight(layer, adapters: list[str]) -> torch.Tensor:
    """Base weight + the active adapters' updates, summed in fp32 and rounded once to the base dtype."""
    base = layer.get_base_layer().weight
    merged = base.detach().float()
    for a in adapters:
        if layer.use_dora.get(a):
            raise RuntimeError(f"adapter {a!r} uses DoRA, whose merge rescales the base; not supported with vLLM sync")
        merged = merged + layer.get_delta_weight(a).float()
    return merged.to(base.dtype)


def merged_params(model, fix_name: Callable[[str], str]) -> Iterator[tuple[str, torch.Tensor]]:
    """(vLLM name, weight) for each parameter of peft `model`, adapters merged out of place; names as
    trl gives them (wrapper prefixes removed, adapter tensors skipped)."""
    from peft.tuners.lora import LoraLayer

    layers = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    active = list(model.active_adapters)
    for name, param in model.named_parameters():
        if model.prefix in name or "original_module" in name:
            continue  # adapter tensors (merged into their layers) and modules_to_save's frozen originals
        if name.endswith(BASE_SUFFIX) and name[: -len(BASE_SUFFIX)] in layers:
            layer = layers[name[: -len(BASE_SUFFIX)]]
            if any(a in layer.lora_bias and layer.lora_bias[a] for a in active):
                raise RuntimeError(f"{name}: LoRA bias adapters are not supported with vLLM sync")
            value = merged_weight(layer, [a for a in active if a in layer.lora_A])
        else:
            value = param.data
        yield fix_name(name.removeprefix("base_model.model.").replace(".base_layer", "")), value


def install(generation) -> str | None:
    """Route trl's vLLM weight sync (`generation`, a trl VLLMGeneration) through `merged_params` when
    the policy is a LoRA model; returns what the sync now does, None when there is nothing to change."""
    if generation is None:
        return None
    from peft import PeftModel

    model = generation.model
    if not isinstance(model, PeftModel):
        return None  # full fine-tuning: trl copies the weights as they are, nothing is merged
    if not hasattr(generation, "_iter_named_params") or not hasattr(generation, "_dist"):
        raise RuntimeError("this trl version's VLLMGeneration has no _iter_named_params/_dist to route the LoRA "
                           "weight sync through; pin trl as pyproject.toml does")
    if generation._dist.is_fsdp:
        raise RuntimeError("GRPO with LoRA and vLLM under FSDP: trl merges the adapter in place there (bf16 drift, "
                           "trl#6688); use the ddp accelerate config")

    def fix(name: str) -> str:
        return generation._fix_param_name_to_vllm(name, extra_prefixes=["modules_to_save.default."])

    def iter_named_params():
        with generation._dist.gather_params(list(model.parameters())):  # ZeRO-3: full tensors; else a no-op
            yield from merged_params(model, fix)

    generation._iter_named_params = iter_named_params
    return SYNC
