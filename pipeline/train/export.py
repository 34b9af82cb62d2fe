"""Build the successor's model directory: LoRA merged into full weights, tokenizer, chat template,
generation config, a Hugging Face model card, and a checksum manifest.

The directory is built in a temp dir next to `gen_NNN/model/` and renamed into place, so the model
dir is either absent or complete; `pipeline.models.check_model_dir` verifies it by its manifest.
Merging runs on the CPU (in the stage's own process after the trainer process exited), so no
accelerator memory is held when the next stage starts vLLM.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from pipeline import models
from pipeline.io import atomic_write_text
from pipeline.train.data import end_of_turn_id

MERGE_NOTE = "LoRA adapters merged into the weights: the directory loads in transformers and vLLM as is"


def merged_model(init_dir: Path, out: Path, phases: list[str], lora: bool):
    """The trained model on CPU in the init model's dtype: each phase's adapter merged in turn (LoRA),
    or the last phase's full weights."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = getattr(AutoConfig.from_pretrained(str(init_dir)), "dtype", None) or torch.float32
    if not lora:
        model = AutoModelForCausalLM.from_pretrained(str(out / phases[-1] / "final"), dtype=torch.float32)
        return model.to(dtype)
    # merge in fp32: folding a low-rank update into bf16 weights phase by phase would round twice
    model = AutoModelForCausalLM.from_pretrained(str(init_dir), dtype=torch.float32)
    for phase in phases:
        model = PeftModel.from_pretrained(model, str(out / phase / "final")).merge_and_unload()
    return model.to(dtype)


def model_card(info: dict) -> str:
    """README.md in the HF convention: YAML front matter (base_model, datasets, metrics), prose below."""
    hp, data, res = info["hparams"], info["data"], info["phases"]
    tags = ["trl", "sft", *(["dpo"] if "dpo" in res else []), *(["lora"] if hp["lora_r"] else []), "self-post-training"]
    front = [
        "---",
        f"base_model: {info['base_model']}",
        "base_model_relation: finetune",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags:", *[f"- {t}" for t in tags],
        "datasets:", *[f"- {d}" for d in info["datasets"]],
        "metrics:", "- accuracy  # GSM8K exact match (pipeline.evaluate)", "- code_eval  # HumanEval pass@k",
        "---",
    ]
    sft = res["sft"]
    lines = [
        f"# {info['lineage']} / {info['generation']}",
        "",
        f"Generation {info['generation']} of the self-post-training lineage `{info['lineage']}`: trained by "
        f"`pipeline.train` on data its teacher `{info['teacher']}` synthesized and verified, with hyperparameters "
        f"the teacher proposed. Initialized from the {info['init_from']} model ({info['init_model']}). "
        f"Evaluation results are in `{info['generation']}/eval/` and the lineage ledger, not here: this card is "
        f"written when training ends.",
        "",
        "## Training",
        f"- Method: trl SFT with loss on the assistant completion only, "
        f"{'LoRA r=%d alpha=%d dropout=%g (%s)' % (hp['lora_r'], hp['lora_alpha'], hp['lora_dropout'], MERGE_NOTE) if hp['lora_r'] else 'full fine-tuning'}"
        + (f"; then DPO with an NLL term on the chosen answer (beta={info['dpo']['beta']}, "
           f"rpo_alpha={info['dpo']['rpo_alpha']})" if "dpo" in res else "") + ".",
        f"- Hyperparameters: learning rate {hp['learning_rate']:g}, epochs {hp['epochs']:g}, effective batch "
        f"{hp['batch_size']}, max length {hp['max_seq_length']}, warmup ratio {hp['warmup_ratio']:g}.",
        f"- SFT: {sft['steps']} steps, loss {sft['loss_first']:.4f} -> {sft['loss_last']:.4f}, "
        f"{sft['tokens']} tokens, {sft['tokens_per_s']:.1f} tokens/s.",
    ]
    if "dpo" in res:
        d = res["dpo"]
        lines.append(f"- DPO: {d['steps']} steps, loss {d['loss_first']:.4f} -> {d['loss_last']:.4f}.")
    lines += [
        "",
        "## Data",
        f"- `{info['datasets'][0]}`: {data['sft']['read']} examples read, {data['sft']['used']} used, "
        f"{data['sft']['dropped_too_long']} dropped as longer than {hp['max_seq_length']} tokens; "
        f"{data['sft']['tokens']} tokens ({data['sft']['completion_tokens']} in answers). sha256 {info['data_sha256']}.",
    ]
    if "dpo" in data:
        lines.append(f"- Preference pairs: {data['dpo']['read']} read, {data['dpo']['used']} used.")
    lines += ["", "## Lineage", *[f"- {k}: {v}" for k, v in info["lineage_info"].items()], ""]
    return "\n".join(front + [""] + lines)


def write_model_dir(target: Path, init_dir: Path, train_out: Path, phases: list[str], lora: bool,
                    template_kwargs: dict, card: dict) -> Path:
    """Build the model dir atomically; an existing complete one is kept, a partial one replaced."""
    from transformers import AutoTokenizer, GenerationConfig

    if (target / models.MANIFEST).exists():
        return models.check_model_dir(target)
    for stale in target.parent.glob(f".{target.name}.*"):  # temp dirs of an interrupted export
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)  # no manifest: an interrupted or foreign write
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the model dir is shared like any other output
    try:
        tok = AutoTokenizer.from_pretrained(str(init_dir))
        model = merged_model(init_dir, train_out, phases, lora)
        try:
            gen = GenerationConfig.from_pretrained(str(init_dir))
        except OSError:
            gen = GenerationConfig()
        eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
        eot = end_of_turn_id(tok, template_kwargs)
        gen.eos_token_id = [x for x in dict.fromkeys([eot, *eos, tok.eos_token_id]) if x is not None]
        if gen.pad_token_id is None:
            gen.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        model.generation_config = gen
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        atomic_write_text(tmp / "README.md", model_card(card))
        models.write_manifest(tmp, spec=card["generation"], init_model=str(init_dir), phases=phases)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return models.check_model_dir(target)
