"""An engine that is a running OpenAI-compatible server (`vllm serve`), for a teacher served elsewhere.

    vllm serve checkpoints/<lineage>/gen_000/model --port 8000 &   # e.g. on GPUs training does not use
    make generation ARGS="engine.endpoint=http://127.0.0.1:8000"

`engine.endpoint` names the server; an engine on the model dir it serves (the `root` or `id` that
`/v1/models` reports, resolved as a path: start the server on the teacher's model dir) is an
`EndpointEngine`, every other model gets a local engine. So the teacher's stages (propose, synth)
go to the server while a successor trained here is evaluated here. Prompts are rendered and
tokenized locally and sent as token ids to `/v1/completions`, so the server sees exactly what a
local engine would; a JSON schema goes as vLLM's `structured_outputs` (and the older `guided_json`).
Only the standard library (urllib) is used.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.config import ModelConfig
from pipeline.engine.base import Engine, EngineError, GenParams, Output

log = logging.getLogger(__name__)
TIMEOUT_S = 3600.0  # one request is a whole stage step (thousands of samples)


def _request(url: str, body: dict | None = None, timeout: float = TIMEOUT_S) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:500]
        raise EngineError(f"engine.endpoint: {url} answered HTTP {e.code}: {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise EngineError(f"engine.endpoint: cannot use {url} ({e})") from None


def served_model(endpoint: str, model_dir: Path) -> str | None:
    """The model id under which `endpoint` serves `model_dir`, or None when it serves another model."""
    want = Path(model_dir).resolve()
    for m in _request(endpoint.rstrip("/") + "/v1/models", timeout=30).get("data", []):
        for name in (m.get("root"), m.get("id")):
            if name and Path(name).expanduser().resolve() == want:
                return m["id"]
    return None


class EndpointEngine(Engine):
    backend = "endpoint"
    supports_json_schema = True  # vLLM's structured outputs

    def __init__(self, model_dir: Path, model_cfg: ModelConfig, endpoint: str, model_id: str) -> None:
        from transformers import AutoTokenizer

        super().__init__(model_dir, model_cfg, AutoTokenizer.from_pretrained(str(model_dir)))
        self.url = endpoint.rstrip("/") + "/v1/completions"
        self.model_id = model_id
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}  # as the server counted them
        log.info("engine: endpoint %s serving %s as %r", endpoint, model_dir, model_id)

    def body(self, ids: list[list[int]], params: GenParams) -> dict:
        body = {"model": self.model_id, "prompt": ids, "n": params.n, "temperature": params.temperature,
                "top_p": params.top_p, "max_tokens": params.max_tokens, "stop": list(params.stop) or None,
                "seed": params.seed, "return_token_ids": True}
        if params.json_schema:
            body["structured_outputs"] = {"json": params.json_schema}
            body["guided_json"] = params.json_schema  # vLLM before structured_outputs; newer ones ignore it
        return body

    def _generate_ids(self, ids: list[list[int]], params: GenParams) -> list[Output]:
        resp = _request(self.url, self.body(ids, params))
        choices = sorted(resp.get("choices", []), key=lambda c: c["index"])
        if len(choices) != len(ids) * params.n:
            raise EngineError(f"engine.endpoint: {self.url} returned {len(choices)} choices for "
                              f"{len(ids)} prompts x n={params.n}")
        for k in self.usage:
            self.usage[k] += int((resp.get("usage") or {}).get(k, 0))
        outs = []
        for i in range(len(ids)):  # vLLM numbers choices prompt-major: index = prompt * n + sample
            mine = choices[i * params.n:(i + 1) * params.n]
            outs.append(Output(
                texts=[c["text"] for c in mine],
                completion_tokens=[self._count(c) for c in mine],
                finish_reasons=["length" if c.get("finish_reason") == "length" else "stop" for c in mine],
            ))
        return outs

    def _count(self, choice: dict) -> int:
        if choice.get("token_ids") is not None:
            return len(choice["token_ids"])
        # a server without return_token_ids: the text's own tokens, plus the end-of-sequence token
        n = len(self.tokenizer(choice["text"], add_special_tokens=False)["input_ids"])
        return n + (1 if choice.get("finish_reason") == "stop" else 0)
