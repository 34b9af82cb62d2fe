"""The engine of a running OpenAI-compatible server, against a fake one in this process."""

from __future__ import annotations


import pytest

from pipeline.engine import EndpointEngine, EngineError, GenParams, open_engine
from tests.support import compose
from tests.support.server import FakeServer


def cfg_with(url: str):
    return compose(["model=tiny:qwen3", "experiment=smoke", f"engine.endpoint={url}"])


def test_endpoint_engine_maps_the_openai_answer(tiny_qwen3):
    with FakeServer(str(tiny_qwen3)) as srv:
        cfg = cfg_with(srv.url)
        with open_engine(tiny_qwen3, cfg.model, cfg.engine, seed=0) as eng:
            assert isinstance(eng, EndpointEngine) and eng.supports_json_schema
            chat = [{"role": "user", "content": "What is 2+2?"}]
            schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
            outs = eng.generate([chat, "Once upon a time"],
                                GenParams(n=3, temperature=0.7, top_p=0.9, max_tokens=3, stop=["\n\n"], seed=5,
                                          json_schema=schema))
            ids = [eng.encode(chat), eng.encode("Once upon a time")]
    body = srv.requests[-1]
    assert body["prompt"] == ids  # rendered and tokenized here, exactly as a local engine would
    assert (body["n"], body["temperature"], body["top_p"], body["max_tokens"], body["stop"], body["seed"]) == \
        (3, 0.7, 0.9, 3, ["\n\n"], 5)
    assert body["structured_outputs"] == {"json": schema} and body["guided_json"] == schema
    assert [o.texts for o in outs] == [[f"p{len(x)}s{j}" for j in range(3)] for x in ids]  # order restored
    assert all(o.completion_tokens == [1, 2, 3] for o in outs)
    assert all(o.finish_reasons == ["stop", "stop", "length"] for o in outs)
    assert eng.stats.completion_tokens == 12 and eng.stats.prompt_tokens == sum(map(len, ids))
    assert eng.usage == {"prompt_tokens": sum(map(len, ids)), "completion_tokens": 7}


def test_endpoint_without_token_ids_counts_the_text(tiny_qwen3):
    with FakeServer(str(tiny_qwen3), token_ids=False) as srv:
        cfg = cfg_with(srv.url)
        with open_engine(tiny_qwen3, cfg.model, cfg.engine) as eng:
            out = eng.generate(["Hi"], GenParams(max_tokens=5))[0]
            text_tokens = len(eng.tokenizer(out.texts[0], add_special_tokens=False)["input_ids"])
    assert "json_schema" not in srv.requests[-1] and "structured_outputs" not in srv.requests[-1]
    assert out.completion_tokens == [text_tokens + 1]  # the text plus its end-of-sequence token


def test_endpoint_serves_only_its_own_model(tiny_qwen3, tiny_llama):
    with FakeServer(str(tiny_qwen3)) as srv:
        cfg = compose(["model=tiny:llama", "experiment=smoke", f"engine.endpoint={srv.url}", "engine.backend=hf"])
        with open_engine(tiny_llama, cfg.model, cfg.engine) as eng:
            assert eng.backend == "hf"  # another model (a successor trained here) gets a local engine
    assert srv.requests == []


def test_endpoint_errors_name_the_key(tiny_qwen3):
    with FakeServer(str(tiny_qwen3)) as srv:
        cfg = cfg_with(srv.url)
        eng = open_engine(tiny_qwen3, cfg.model, cfg.engine)
        eng.model_id = "other"
        with pytest.raises(EngineError, match=r"engine.endpoint: .* answered HTTP 400"):
            eng.generate(["Hi"], GenParams(max_tokens=2))
        port = srv.httpd.server_address[1]
    cfg = cfg_with(f"http://127.0.0.1:{port}")  # the server is gone
    with pytest.raises(EngineError, match="engine.endpoint: cannot use"):
        open_engine(tiny_qwen3, cfg.model, cfg.engine)
