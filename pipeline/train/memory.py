"""Memory preflight: estimate what training will need before the worker starts, and make an
infeasible proposal feasible instead of letting it run out of memory on every resume.

    python -m pipeline.train.memory <model_dir> lora_r=16 batch=8 seq=512   # print the estimate

The estimate is analytic, from the model's `config.json` (hidden size, layers, vocabulary,
intermediate size, heads), in bytes:
- weights: every parameter (fp32; LoRA's frozen base in bf16 when training in bf16);
- gradients (fp32) and AdamW state (two fp32 moments) for the TRAINED parameters only: the
  adapters (rank x (in + out) per targeted linear layer) for LoRA, everything for full fine-tuning;
  these three are split over the devices under FSDP (`train.accelerate_config=fsdp`), else replicated;
- activations saved for backward at the per-device batch and `max_seq_length` (the worst case:
  rows padded to the longest, which may be the maximum), per layer, or only each layer's input
  plus one recomputed layer with gradient checkpointing;
- fp32 logits over the vocabulary, batch x seq x vocab x 4 bytes, LOGIT_COPIES times: with a
  151k vocabulary this dwarfs the rest for small models.

`preflight(cfg, hp, model_dir)` compares the estimate with the device's free memory (CUDA: NVML or
torch.cuda.mem_get_info; CPU: MemAvailable) and, while it does not fit, changes the plan in this
order: gradient checkpointing on; then a smaller per-device batch with more gradient accumulation
(the effective batch stays); then LoRA instead of full fine-tuning (the smallest positive lora_r of
`propose.space`). The train stage records what it did in its manifest's `memory_preflight`.
`planned(out, ...)` records the plan in the train dir on the first start and a resume reads it back
(free memory may differ by then): the run that resumes a checkpoint keeps the batch, accumulation
and LoRA rank the checkpoint was made with, and never repeats the crash.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from pipeline.config import Config, HParams
from pipeline.infra.io import atomic_write_json, hash_obj, read_json
from pipeline.train.worker import batch_layout  # the worker's own batch arithmetic

MB = 2**20
FILE = "memory_preflight.json"  # under <gen>/train/: what the preflight found and changed
# The loss path holds several batch x seq x vocab fp32 tensors at once: the logits, the log-softmax
# that cross-entropy saves for backward, and during backward the gradient of the log-softmax and
# of the logits (trl's entropy/accuracy metrics add chunked temporaries). Three live at the peak.
LOGIT_COPIES = 3
# Allocator fragmentation, the CUDA context, dataloader buffers: never plan to the last byte.
HEADROOM = 0.9
log = logging.getLogger(__name__)
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
BLOCK = {n: "self_attn" if n in LINEAR_NAMES[:4] else "mlp" for n in LINEAR_NAMES}  # module path inside a layer


class MemoryPreflightError(RuntimeError):
    """No plan within the allowed changes fits the device; the message says how far off it is."""


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    vocab: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool

    @classmethod
    def from_config(cls, c: dict, where: str = "config.json") -> "ModelShape":
        c = c.get("text_config", c)  # multimodal configs nest the language model's
        missing = [k for k in ("hidden_size", "num_hidden_layers", "vocab_size", "intermediate_size",
                               "num_attention_heads") if not isinstance(c.get(k), int)]
        if missing:
            raise MemoryPreflightError(f"{where}: memory preflight needs integer {missing}")
        heads = c["num_attention_heads"]
        return cls(hidden=c["hidden_size"], layers=c["num_hidden_layers"], vocab=c["vocab_size"],
                   intermediate=c["intermediate_size"], heads=heads, kv_heads=c.get("num_key_value_heads") or heads,
                   head_dim=c.get("head_dim") or c["hidden_size"] // heads, tied=bool(c.get("tie_word_embeddings")))

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> "ModelShape":
        path = Path(model_dir) / "config.json"
        return cls.from_config(read_json(path), str(path))

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder block."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def params(self) -> int:
        block = sum(a * b for a, b in self.linears().values()) + 2 * self.hidden + 2 * self.head_dim  # + norms
        return self.layers * block + self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    def targeted(self, target_modules: str) -> list[str]:
        """Which block linears a peft `target_modules` string adapts (peft: all-linear, or a full-match regex)."""
        if target_modules == "all-linear":
            return list(LINEAR_NAMES)
        return [n for n in LINEAR_NAMES
                if re.fullmatch(target_modules, n) or re.fullmatch(target_modules, f"model.layers.0.{BLOCK[n]}.{n}")]

    def lora_params(self, r: int, target_modules: str) -> int:
        dims = self.linears()
        return self.layers * sum(r * (dims[n][0] + dims[n][1]) for n in self.targeted(target_modules))


@dataclass(frozen=True)
class Plan:
    """What decides the memory: LoRA rank (0 = full), per-device batch, sequence, checkpointing, dtype."""

    lora_r: int
    per_device: int
    seq: int
    gradient_checkpointing: bool
    bf16: bool
    lora_dropout: float = 0.0
    target_modules: str = "all-linear"
    shards: int = 1  # FSDP splits weights, gradients and optimizer state over this many devices


def estimate(shape: ModelShape, plan: Plan) -> dict[str, int]:
    """Bytes per component and their `total`, for one device."""
    full = plan.lora_r == 0
    act = 2 if plan.bf16 else 4
    base_bytes = 2 if plan.bf16 and not full else 4  # full fine-tuning keeps fp32 master weights
    adapters = 0 if full else shape.lora_params(plan.lora_r, plan.target_modules)
    trained = shape.params() if full else adapters
    h, q, kv, i = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.intermediate
    # saved for backward per token and layer: two RMSNorms (input + output), q/k/v before and after
    # q/k-norm and RoPE, the attention output, and the MLP's gate, up, act(gate) and product
    per_layer = 4 * h + 3 * q + 3 * kv + q + 4 * i
    if not full:
        names = shape.targeted(plan.target_modules)
        per_layer += len(names) * plan.lora_r  # x @ A
        if plan.lora_dropout > 0:  # dropout(x) is a saved copy of each adapted layer's input
            per_layer += sum(shape.linears()[n][0] for n in names)
    tokens = plan.per_device * plan.seq
    saved = (shape.layers * h + per_layer) if plan.gradient_checkpointing else shape.layers * per_layer
    parts = {
        "weights": (shape.params() * base_bytes + adapters * 4) // plan.shards,
        "gradients": trained * 4 // plan.shards,
        "optimizer": trained * 8 // plan.shards,
        "activations": tokens * (saved + 3 * h) * act,  # + embeddings, final norm, lm_head input
        "logits": LOGIT_COPIES * tokens * shape.vocab * 4,
    }
    parts["total"] = sum(parts.values())
    return parts


def device_memory() -> tuple[str, int, int]:
    """(device, free bytes, total bytes) of what training will use: CUDA device 0, else this host's RAM."""
    import torch

    if torch.cuda.is_available():
        try:  # NVML reads free memory without creating a CUDA context in this (the stage's) process
            import pynvml

            pynvml.nvmlInit()
            info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0))
            return "cuda", int(info.free), int(info.total)
        except Exception:  # noqa: BLE001 - no NVML: torch's own query (it does create a context)
            free, total = torch.cuda.mem_get_info(0)
            return "cuda", int(free), int(total)
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        info[key] = int(rest.split()[0]) * 1024
    return "cpu", info.get("MemAvailable", info["MemFree"]), info["MemTotal"]


@dataclass
class Preflight:
    plan: Plan
    estimate_mb: float
    device: str
    device_mb: float
    changes: list[str] = field(default_factory=list)

    def record(self) -> dict:
        return {"estimate_mb": self.estimate_mb, "device": self.device, "device_mb": self.device_mb,
                "changes": self.changes, "plan": asdict(self.plan)}


def fit(shape: ModelShape, plan: Plan, budget: int, lora_choices: list[int]) -> tuple[Plan, list[str]]:
    """The first plan along checkpointing -> smaller per-device batch -> LoRA that fits `budget` bytes."""
    changes: list[str] = []

    def need(p: Plan) -> int:
        return estimate(shape, p)["total"]

    def why(p: Plan) -> str:
        return f"estimate {need(p) / MB:.0f} MB > {budget / MB:.0f} MB usable"

    if need(plan) <= budget:
        return plan, changes
    if not plan.gradient_checkpointing:
        changes.append(f"gradient_checkpointing: false -> true ({why(plan)})")
        plan = replace(plan, gradient_checkpointing=True)
    while need(plan) > budget and plan.per_device > 1:
        smaller = replace(plan, per_device=max(1, plan.per_device // 2))
        changes.append(f"per_device_batch_size: {plan.per_device} -> {smaller.per_device}, more gradient "
                       f"accumulation, same effective batch ({why(plan)})")
        plan = smaller
    if need(plan) > budget and plan.lora_r == 0:
        positive = sorted(r for r in lora_choices if r > 0)
        if not positive:
            raise MemoryPreflightError(f"full fine-tuning does not fit ({why(plan)}) and propose.space.lora_r "
                                       f"{lora_choices} has no positive rank to fall back to")
        changes.append(f"lora_r: 0 -> {positive[0]} (LoRA instead of full fine-tuning; {why(plan)})")
        plan = replace(plan, lora_r=positive[0])
    if need(plan) > budget:
        raise MemoryPreflightError(
            f"training does not fit even after {changes or 'no possible change'}: {why(plan)}; lower "
            f"max_seq_length or batch_size in propose.space, or train on a larger device")
    return plan, changes


def requested(cfg: Config, hp: HParams, kind: str) -> Plan:
    """The plan the proposal and the train config ask for on a `kind` ("cuda"/"cpu") device."""
    t = cfg.train
    per, _accum = batch_layout(hp.batch_size, t.per_device_batch_size, t.num_gpus)
    bf16 = t.precision == "bf16" or (t.precision == "auto" and kind == "cuda")
    fsdp = t.num_gpus > 1 and t.launcher == "accelerate" and Path(t.accelerate_config).stem == "fsdp"
    return Plan(lora_r=hp.lora_r, per_device=per, seq=hp.max_seq_length, gradient_checkpointing=t.gradient_checkpointing,
                bf16=bf16, lora_dropout=hp.lora_dropout, target_modules=t.lora_target_modules,
                shards=t.num_gpus if fsdp else 1)


def preflight(cfg: Config, hp: HParams, model_dir: str | Path, device: tuple[str, int, int] | None = None) -> Preflight:
    """Check the accepted proposal against the device (`device_memory()` unless given); a plan that fits."""
    kind, free, _total = device or device_memory()
    plan = requested(cfg, hp, kind)
    shape = ModelShape.from_dir(model_dir)
    fitted, changes = fit(shape, plan, int(free * HEADROOM), list(cfg.propose.space.lora_r))
    return Preflight(plan=fitted, estimate_mb=round(estimate(shape, fitted)["total"] / MB, 1), device=kind,
                     device_mb=round(free / MB, 1), changes=changes)


def planned(out: Path, cfg: Config, hp: HParams, model_dir: str | Path,
            device: tuple[str, int, int] | None = None) -> Preflight:
    """This train dir's preflight: made on the first start and recorded in `out/FILE`, read back on a
    resume, so a resumed stage trains with the batch, accumulation and LoRA rank its checkpoints were
    made with, however much memory is free now. A record made for other inputs (proposal, train config,
    device kind, model) is made anew."""
    path = Path(out) / FILE
    kind, free, total = device or device_memory()
    inputs = hash_obj({"plan": asdict(requested(cfg, hp, kind)), "lora_choices": list(cfg.propose.space.lora_r),
                       "model": asdict(ModelShape.from_dir(model_dir))})
    if path.exists():
        rec = read_json(path)
        if rec.get("inputs") == inputs:
            log.info("memory preflight: the plan recorded at the first start (%s MB free then, %.0f MB now)",
                     rec["device_mb"], free / MB)
            return Preflight(plan=Plan(**rec["plan"]), estimate_mb=rec["estimate_mb"], device=rec["device"],
                             device_mb=rec["device_mb"], changes=list(rec["changes"]))
        log.warning("%s was planned for other inputs (proposal, train config, device or model): planning again", path)
    pre = preflight(cfg, hp, model_dir, device=(kind, free, total))
    atomic_write_json(path, {**pre.record(), "inputs": inputs})
    return pre


def apply(pre: Preflight, config: dict, hparams: dict) -> tuple[dict, dict]:
    """The job's resolved config and hyperparameters with the preflight's plan in them."""
    train = {**config["train"], "gradient_checkpointing": pre.plan.gradient_checkpointing,
             "per_device_batch_size": pre.plan.per_device} if pre.changes else config["train"]
    return {**config, "train": train}, {**hparams, "lora_r": pre.plan.lora_r}


def main(argv: list[str]) -> int:
    import argparse

    from pipeline.infra import cli

    ap = argparse.ArgumentParser(prog="python -m pipeline.train.memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path, help="a model directory holding config.json")
    ap.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                    help="lora_r=16 batch=8 seq=512 ckpt=false bf16=false (these defaults)")
    args = ap.parse_args(argv)
    bad = [a for a in args.settings if "=" not in a]
    if bad:
        return cli.fail(f"{bad[0]!r}: settings are KEY=VALUE (lora_r, batch, seq, ckpt, bf16)")
    if not (args.model_dir / "config.json").is_file():
        return cli.fail(f"{args.model_dir / 'config.json'}: not found; give a model directory")
    kv = dict(a.split("=", 1) for a in args.settings)
    try:
        plan = Plan(lora_r=int(kv.get("lora_r", 16)), per_device=int(kv.get("batch", 8)), seq=int(kv.get("seq", 512)),
                    gradient_checkpointing=kv.get("ckpt", "false") == "true", bf16=kv.get("bf16", "false") == "true")
    except ValueError as e:
        return cli.fail(f"settings: {e} (lora_r, batch and seq are integers)")
    for k, v in estimate(ModelShape.from_dir(str(args.model_dir)), plan).items():
        print(f"{k:12s} {v / MB:10.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
