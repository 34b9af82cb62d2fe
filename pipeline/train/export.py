"""Build the successor's model directory: LoRA merged into full weights (phase by phase), tokenizer,
chat template, generation config, a Hugging Face model card, and a checksum manifest.

The directory is built in a temp dir next to `gen_NNN/model/` and renamed into place, so the model
dir is either absent or complete; `pipeline.engine.models.check_model_dir` verifies it by its manifest.
Merging runs on the CPU (in the stage's own process after the trainer process exited), so no
accelerator memory is held when the next stage starts vLLM.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.engine import models
from pipeline.evals.cards import front_matter
from pipeline.config import Config, HParams
from pipeline.engine import end_of_turn_id
from pipeline.infra.io import atomic_write_text, temp_dir
from pipeline.train.methods import METHODS

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


def exported_step(phase: dict) -> int:
    """The optimizer step whose weights a phase hands on: its best-validation checkpoint's when it chose
    one (the trainer loads it at the end), else its last step."""
    best = (phase.get("val") or {}).get("best_checkpoint")
    return int(best.rsplit("-", 1)[1]) if best else phase["steps"]


def exported_line(phases: dict) -> str:
    """The card's line saying which step's weights it describes, beside the steps run."""
    def one(name: str, r: dict) -> str:
        why = "lowest validation loss" if (r.get("val") or {}).get("best_checkpoint") else "the last step"
        return f"{name} step {exported_step(r)} of {r['steps']} run ({why})"

    return "- Exported weights: " + "; ".join(one(n, r) for n, r in phases.items()) + "."


def model_card(info: dict, cfg: Config) -> str:
    """README.md in the HF convention: YAML front matter (pipeline.evals.cards: base_model, lineage; the
    eval adds model-index), prose below. Each phase's method (pipeline.train.methods) supplies its
    tags and its lines of text. Paths are relative to the lineage directory."""
    hp, res = HParams(**info["hparams"]), info["phases"]
    chain = [METHODS.get(name) for name in res]
    tags = [*[t for m in chain for t in m.tags], *(["lora"] if hp.lora_r else []), "self-post-training"]
    front = [front_matter(base_model=info["base_model"], tags=tags, datasets=info["datasets"], lineage=info["lineage_info"])]
    weights = (f"LoRA r={hp.lora_r} alpha={hp.lora_alpha} dropout={hp.lora_dropout:g} ({MERGE_NOTE})" if hp.lora_r
               else "full fine-tuning")
    lines = [
        f"# {info['lineage']} / {info['generation']}",
        "",
        f"Generation {info['generation']} of the self-post-training lineage `{info['lineage']}`: trained by "
        f"`pipeline.train` on data its teacher `{info['teacher']}` synthesized and verified, with hyperparameters "
        f"the teacher proposed. Initialized from the {info['init_from']} model ({info['init_model']}). "
        f"The eval stage adds its results to this card's `model-index`; the per-item records are in "
        f"`{info['generation']}/eval/` and the lineage ledger.",
        "",
        "## Training",
        f"- Method (`train.method={info['method']}`): {'; then '.join(m.card_method(cfg, hp) for m in chain)}.",
        f"- Weights: {weights}.",
        f"- Hyperparameters: learning rate {hp.learning_rate:g}, epochs {hp.epochs:g}, effective batch "
        f"{hp.batch_size}, max length {hp.max_seq_length}, warmup ratio {hp.warmup_ratio:g}.",
        *[m.card_phase(res[m.name]) for m in chain],
        exported_line(res),
        "",
        "## Data",
        *[m.card_data(info["data"][m.name], info["files"][m.name]["path"], info["files"][m.name]["sha256"], hp)
          for m in chain],
        "",
        "## Lineage", *[f"- {k}: {v}" for k, v in info["lineage_info"].items() if not isinstance(v, (dict, list))], "",
    ]
    return "\n".join(front + [""] + lines)


def write_model_dir(target: Path, init_dir: Path, train_out: Path, phases: list[str], lora: bool,
                    template_kwargs: dict, card: str, spec: str) -> Path:
    """Build the model dir atomically (`card`: its README.md, `spec`: the manifest's name for it);
    an existing complete one is kept, a partial one replaced."""
    from transformers import AutoTokenizer, GenerationConfig

    if (target / models.MANIFEST).exists():
        return models.check_model_dir(target)
    for stale in target.parent.glob(f".{target.name}.*"):  # temp dirs of an interrupted export
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)  # no manifest: an interrupted or foreign write
    tmp = temp_dir(target)  # the model dir is shared like any other output: not mkdtemp's 0700
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
        atomic_write_text(tmp / "README.md", card)
        models.write_manifest(tmp, spec=spec, init_model=str(init_dir), phases=phases)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return models.check_model_dir(target)
