"""The in-process backends: vLLM's offline `LLM` and HF `generate`, on one device set.

`local_engine` starts the configured one; pipeline.engine.open_engine decides whether one of these,
a set of replicas (pipeline/engine/replicas.py) or a remote endpoint serves a model.
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Any

from pipeline.config import EngineConfig, ModelConfig
from pipeline.infra import logs
from pipeline.engine.base import Engine, EngineError, Output, _truncate_at_stop, has_cuda, pick_backend, torch_dtype

log = logging.getLogger(__name__)


class VLLMEngine(Engine):
    backend = "vllm"
    supports_json_schema = True

    def __init__(self, model_dir: Path, model_cfg: ModelConfig, cfg: EngineConfig, seed: int, tp: int = 1) -> None:
        if not has_cuda():
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(cfg.cpu_kv_cache_gb))))
        from vllm import LLM

        dtype = {"auto": "bfloat16" if has_cuda() else "float32"}.get(model_cfg.dtype, model_cfg.dtype)
        self.llm = LLM(
            model=str(model_dir), dtype=dtype, max_model_len=model_cfg.max_model_len, seed=seed,
            tensor_parallel_size=tp, gpu_memory_utilization=cfg.gpu_memory_utilization,
            enforce_eager=cfg.enforce_eager, max_num_seqs=cfg.max_num_seqs,
            **({"max_num_batched_tokens": cfg.max_num_batched_tokens} if cfg.max_num_batched_tokens else {}),
            # sleep mode (free the GPU for training, wake in seconds instead of a reload) exists on CUDA only
            **({"enable_sleep_mode": True} if cfg.sleep and has_cuda() else {}),
            # Compact JSON is an engine-level setting (vLLM ignores the per-request flag), and it needs
            # an explicit backend; otherwise a weak model fills the schema's whitespace slots forever.
            structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True},
            # vLLM passes `disable=` to its weight-loading bars itself, so TQDM_DISABLE cannot reach them
            use_tqdm_on_load=logs.bars_wanted(),
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
            stop=list(params.stop) or None, stop_token_ids=list(params.stop_token_ids) or None,
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

    def holds_accelerator(self) -> bool:
        return self.on_cuda

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

    def __init__(self, model_dir: Path, model_cfg: ModelConfig, cfg: EngineConfig, seed: int, tp: int = 1) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(model_dir))
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        super().__init__(model_dir, model_cfg, tok)
        self.device = "cuda" if has_cuda() else "cpu"
        if tp != 1:
            raise EngineError(f"engine.backend=hf runs on one device; engine.tensor_parallel_size={tp} needs vLLM")
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch_dtype(model_cfg.dtype)).to(self.device)
        self.model.eval()
        self.batch_size = cfg.hf_batch_size
        self.seed = seed

    def _generate_ids(self, ids, params):
        import torch

        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id} | set(params.stop_token_ids)
        eos.discard(None)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # similar lengths share a batch
        outs: dict[int, Output] = {}
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            batch = self.tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt").to(self.device)
            if params.seed is not None:
                torch.manual_seed(params.seed + start)
            # every eos id, the requested stop ids included, ends a sample (generate's eos list)
            kw: dict[str, Any] = dict(max_new_tokens=params.max_tokens, num_return_sequences=params.n,
                                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=sorted(eos))
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


BACKENDS = {"vllm": VLLMEngine, "hf": HFEngine}


def local_engine(model_dir: Path, model_cfg: ModelConfig, cfg: EngineConfig, seed: int, tp: int = 1) -> Engine:
    """The configured backend, in this process, on the devices it sees, `tp`-way tensor parallel."""
    backend = pick_backend(cfg.backend)
    log.info("engine: %s on %s (tensor_parallel_size=%d)", backend, model_dir, tp)
    return BACKENDS[backend](Path(model_dir), model_cfg, cfg, seed, tp)
