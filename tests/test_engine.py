"""The engine interface on both backends: chat rendering, n samples, stop strings, JSON schema, stats."""

from __future__ import annotations

import json

import pytest

from pipeline.engine import EngineError, GenParams, open_engine, parse_json_object
from pipeline.engine.base import _truncate_at_stop
from tests.support import compose


def cfg_for(backend: str):
    return compose(["model=tiny:qwen3", "experiment=smoke", f"engine.backend={backend}"])


def test_truncate_at_stop_and_parse_json():
    assert _truncate_at_stop("a b\n\nQ: next", ["\n\nQ:", "zz"]) == ("a b", True)
    assert _truncate_at_stop("abc", ["x"]) == ("abc", False)
    assert parse_json_object('junk {"a": 1, "b": [2]} tail {"c": 3}') == {"a": 1, "b": [2]}
    assert parse_json_object("{not json} [1, 2]") is None


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_backend_contract(backend, tiny_qwen3):
    cfg = cfg_for(backend)
    with open_engine(tiny_qwen3, cfg.model, cfg.engine, seed=0) as eng:
        assert eng.backend == backend
        chat = [{"role": "user", "content": "What is 2+2?"}]
        # chat messages are rendered with the template, thinking mode off
        assert eng.render(chat).endswith("<think>\n\n</think>\n\n")
        outs = eng.generate([chat, "Once upon a time"], GenParams(n=3, temperature=1.0, max_tokens=8, seed=1))
        assert len(outs) == 2 and all(len(o.texts) == 3 for o in outs)
        assert all(1 <= c <= 8 for o in outs for c in o.completion_tokens)
        greedy = GenParams(max_tokens=8)
        a = eng.generate([chat, chat], greedy)
        assert a[0].texts == a[1].texts  # greedy is deterministic within a batch
        assert eng.generate([chat], greedy)[0].texts == a[0].texts  # and across calls
        assert eng.stats.calls == 3 and eng.stats.prompts == 5
        assert eng.stats.completion_tokens == sum(sum(o.completion_tokens) for o in outs + a) + 8
        with pytest.raises(EngineError, match="exceed model.max_model_len"):
            eng.generate(["word " * 5000], greedy)
        if eng.supports_json_schema:
            schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"],
                      "additionalProperties": False}
            out = eng.generate(["JSON please:"], GenParams(max_tokens=24, json_schema=schema))[0]
            if out.finish_reasons[0] == "stop":  # a random model may run out of tokens mid-number
                assert isinstance(json.loads(out.texts[0])["x"], int)
            else:
                assert out.texts[0].startswith('{"x":')


@pytest.mark.slow
def test_hf_stop_strings_cut_the_text(tiny_qwen3):
    cfg = cfg_for("hf")
    with open_engine(tiny_qwen3, cfg.model, cfg.engine, seed=0) as eng:
        full = eng.generate(["Hello"], GenParams(max_tokens=12))[0].texts[0]
        stop = full[3:6]
        assert stop and stop not in full[:3]
        cut = eng.generate(["Hello"], GenParams(max_tokens=12, stop=[stop]))[0]
        assert cut.texts[0] == full[: full.find(stop)] and cut.finish_reasons == ["stop"]
