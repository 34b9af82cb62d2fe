"""Teacher-forced KL divergence between two models of one lineage, per token, on fixed text.

For each reference item (a chat prompt and a reference continuation, pipeline/probes/reference.jsonl)
both models read the same token ids; at every continuation position we take
KL(P_model || P_ref) = sum_v p_model(v) (log p_model(v) - log p_ref(v)) over the full vocabulary,
and report, per item, the mean over its continuation tokens (nats per token), and as the metric the
mean of those per-item means (each reference item weighs equally, whatever its length): the number
the gate's paired test tests on the per-item records (`drift/kl.jsonl`), so reported = tested.
`tokens_weighted` keeps the token-weighted mean (sum of KL / tokens) for reference. Identical models
give exactly 0: same ids, same computation, same logits.

This needs full logits, which the generation engines do not expose, so it uses transformers
directly (no grad, batched, left-padded with explicit position ids so padding does not shift
positions, and `logits_to_keep` so only continuation positions are materialised). Run it after the
stage's engine is closed. The models must share one tokenizer (same lineage); otherwise the token
distributions are not comparable and we stop with a clear error.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

from pipeline.infra.io import sha256_file

log = logging.getLogger(__name__)


class KLError(RuntimeError):
    pass


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "tokenizer.model")


def _tokenizer_fingerprint(model_dir: Path) -> tuple:
    return tuple((f, sha256_file(p)) for f in TOKENIZER_FILES if (p := Path(model_dir) / f).exists())


def check_same_tokenizer(dirs: list[Path]):
    """Return the first dir's tokenizer after checking every dir has the same vocabulary.
    Byte-identical tokenizer files settle it without loading (loading a 150k-vocab tokenizer is slow);
    otherwise (e.g. re-serialised by a trainer) the vocabularies are compared."""
    first = load_tokenizer(dirs[0])
    fingerprint = _tokenizer_fingerprint(dirs[0])
    vocab = None
    for d in dirs[1:]:
        if fingerprint and _tokenizer_fingerprint(d) == fingerprint:
            continue
        vocab = vocab if vocab is not None else first.get_vocab()
        if load_tokenizer(d).get_vocab() != vocab:
            raise KLError(
                f"tokenizer of {d} differs from that of {dirs[0]}: per-token KL compares distributions over "
                "one vocabulary, so both models must come from the same lineage (same tokenizer)"
            )
    return first


def encode_items(tok, items: list[dict], chat_template_kwargs: dict[str, Any]) -> list[tuple[list[int], int]]:
    """(token ids, number of continuation tokens) per item. The prompt is rendered with the chat
    template exactly as the engines render it; the continuation is tokenized on its own so the
    boundary between prompt and continuation is the same for every model."""
    out = []
    for it in items:
        if tok.chat_template:
            text = tok.apply_chat_template([{"role": "user", "content": it["prompt"]}], tokenize=False,
                                           add_generation_prompt=True, **chat_template_kwargs)
            p_ids = tok(text, add_special_tokens=False)["input_ids"]
        else:  # base models without a template read the raw prompt
            p_ids = tok(it["prompt"] + "\n", add_special_tokens=True)["input_ids"]
        c_ids = tok(it["continuation"], add_special_tokens=False)["input_ids"]
        if not c_ids:
            raise KLError(f"reference item {it.get('id')!r} has an empty continuation")
        out.append((p_ids + c_ids, len(c_ids)))
    return out


def _load_model(model_dir: Path, dtype: str, device: str):
    from transformers import AutoModelForCausalLM

    from pipeline.engine import torch_dtype

    m = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch_dtype(dtype)).to(device)
    m.eval()
    return m


def _log_probs(model, input_ids, attention_mask, keep: int):
    import torch

    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   logits_to_keep=keep + 1).logits
    # position t predicts token t+1: the last keep+1 logits minus the very last predict the last `keep` tokens
    return torch.log_softmax(logits[:, :-1].float(), dim=-1)


def mean_token_kl(model_dir: Path, ref_dirs: dict[str, Path], items: list[dict], *, dtype: str,
                  batch_size: int, chat_template_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """KL of `model_dir` from each reference model on `items`.

    Returns {"tokens": total continuation tokens, "kl": {name: mean over items of per-item nats/token},
             "tokens_weighted": {name: sum of KL / total tokens},
             "per_item": [{"id", "tokens", name: mean nats/token, ...}]}.
    """
    import torch

    from pipeline.engine import has_cuda

    if not items:
        raise KLError("no reference items for KL")
    names = list(ref_dirs)
    tok = check_same_tokenizer([Path(model_dir), *[Path(ref_dirs[n]) for n in names]])
    seqs = encode_items(tok, items, dict(chat_template_kwargs or {}))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    device = "cuda" if has_cuda() else "cpu"
    model = _load_model(Path(model_dir), dtype, device)
    refs = {n: _load_model(Path(ref_dirs[n]), dtype, device) for n in names}
    try:
        sums = {n: [0.0] * len(seqs) for n in names}
        with torch.no_grad():
            for start in range(0, len(seqs), batch_size):
                chunk = seqs[start:start + batch_size]
                width = max(len(ids) for ids, _ in chunk)
                keep = max(k for _, k in chunk)
                input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
                attn = torch.zeros((len(chunk), width), dtype=torch.long)
                mask = torch.zeros((len(chunk), keep), dtype=torch.bool)
                for j, (ids, k) in enumerate(chunk):  # left padding: every continuation ends at the last column
                    input_ids[j, width - len(ids):] = torch.tensor(ids)
                    attn[j, width - len(ids):] = 1
                    mask[j, keep - k:] = True
                input_ids, attn, mask = input_ids.to(device), attn.to(device), mask.to(device)
                logp = _log_probs(model, input_ids, attn, keep)
                if logp.shape[-1] == 0:
                    raise KLError(f"{model_dir} returned empty logits")
                for n, ref in refs.items():
                    logq = _log_probs(ref, input_ids, attn, keep)
                    if logq.shape != logp.shape:
                        raise KLError(f"{ref_dirs[n]} has logits of shape {tuple(logq.shape)}, {model_dir} "
                                      f"{tuple(logp.shape)}: not the same vocabulary")
                    kl = (logp.exp() * (logp - logq)).sum(-1)  # [batch, keep]
                    kl = torch.where(mask, kl, torch.zeros_like(kl)).sum(-1)
                    for j, v in enumerate(kl.tolist()):
                        sums[n][start + j] = v
    finally:
        del model, refs
        gc.collect()
        if has_cuda():
            torch.cuda.empty_cache()
    counts = [k for _, k in seqs]
    total = sum(counts)
    per_item = [{"id": it["id"], "tokens": k, **{n: sums[n][i] / k for n in names}}
                for i, (it, k) in enumerate(zip(items, counts))]
    # tiny negative values are float round-off (KL >= 0); clamp so a table never shows -0.0000
    return {"tokens": total, "kl": {n: max(0.0, sum(r[n] for r in per_item) / len(per_item)) for n in names},
            "tokens_weighted": {n: max(0.0, sum(sums[n]) / total) for n in names}, "per_item": per_item}
