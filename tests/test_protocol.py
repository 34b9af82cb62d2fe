"""The base-model protocol: chat prompts stop at the chat template's end-of-turn token on every
model (a BASE model's eos `<|endoftext|>` is not it), plain-text protocols (GSM8K `fewshot` as
lm-eval, HumanEval `raw` as openai/human-eval) carry their own stop strings; both reach the request
of every backend, at gen 0 (the base model) as at gen N (an exported model, `<|im_end|>` among its eos).

A random tiny model never emits `<|im_end|>`, so these tests assert on the requests, not the outputs.

    python -m pytest tests/test_protocol.py -q -m "not slow"      # plumbing, scripted engine
    python -m pytest tests/test_protocol.py -q -m slow -k hf       # real HF generate
    python -m pytest tests/test_protocol.py -q -m slow -k vllm     # real vLLM (about a minute on CPU)
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.report import text as report
from pipeline.engine import GenParams, Output, end_of_turn_id, open_engine
from pipeline.evals import BENCHMARKS, headline_columns, parse_task_name
from pipeline.evals.gsm8k import LM_EVAL_STOP, build_plain_prompt
from pipeline.evals.humaneval import OFFICIAL_STOP
from pipeline.evals.stage import evaluate_model, load_items
from tests.support import ScriptedEngine, compose

IM_END, ENDOFTEXT = "<|im_end|>", "<|endoftext|>"
PLAIN = {"gsm8k_test_fewshot": LM_EVAL_STOP, "gsm8k_val_fewshot": LM_EVAL_STOP, "humaneval_raw": OFFICIAL_STOP}
CHAT = ("gsm8k_test", "gsm8k_val", "gsm8k_sel", "humaneval")


def _base_copy(src: Path, dst: Path, eos: list[str]) -> Path:
    """tiny:qwen3 with the Qwen3-Base tokenizer config (eos <|endoftext|>) and `eos` as the
    generation config's eos ids (gen 0: the base's own; gen N: what the export writes)."""
    shutil.copytree(src, dst)
    tok = json.loads((dst / "tokenizer_config.json").read_text())
    vocab = json.loads((dst / "tokenizer.json").read_text())["added_tokens"]
    ids = {t["content"]: t["id"] for t in vocab}
    tok["eos_token"] = ENDOFTEXT
    (dst / "tokenizer_config.json").write_text(json.dumps(tok))
    gen = json.loads((dst / "generation_config.json").read_text())
    gen["eos_token_id"] = [ids[e] for e in eos] if len(eos) > 1 else ids[eos[0]]
    (dst / "generation_config.json").write_text(json.dumps(gen))
    return dst


@pytest.fixture(scope="module")
def base_models(tmp_path_factory, tiny_qwen3) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qwen3-base")
    return {"gen0": _base_copy(tiny_qwen3, root / "base", [ENDOFTEXT]),
            "genN": _base_copy(tiny_qwen3, root / "gen_001", [IM_END, ENDOFTEXT])}


@pytest.fixture(scope="module")
def ids(base_models) -> dict[str, int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base_models["gen0"]))
    return {IM_END: tok.convert_tokens_to_ids(IM_END), ENDOFTEXT: tok.convert_tokens_to_ids(ENDOFTEXT)}


def protocol_cfg(tmp_path, models_dir, backend: str = "hf", n: int = 2, max_tokens: int = 4):
    """The smoke profile with the base-model protocol tasks (conf/protocols/base.yaml), small."""
    sizes = [f"eval.tasks.{t}.{k}={v}" for t in (*CHAT, *PLAIN) for k, v in (("n", n), ("max_tokens", max_tokens))]
    return compose(["model=tiny:qwen3", "experiment=smoke", "+protocols=base", f"paths.root={tmp_path / 'ckpt'}",
                    f"paths.models={models_dir}", f"engine.backend={backend}", "eval.tasks.gsm8k_test_fewshot.few_shot=1",
                    "eval.tasks.gsm8k_val_fewshot.few_shot=1", *sizes])


def test_end_of_turn_of_a_base_tokenizer_is_not_its_eos(base_models, ids):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base_models["gen0"]))
    assert tok.eos_token == ENDOFTEXT
    assert end_of_turn_id(tok, {"enable_thinking": False}) == ids[IM_END] != tok.eos_token_id


def test_fewshot_prompt_is_lm_eval_gsm8k():
    shots = [{"question": "Q1?", "answer": "It is 2<<1+1=2>>.\n#### 2"}]
    assert build_plain_prompt("Q2?", shots) == "Question: Q1?\nAnswer: It is 2<<1+1=2>>.\n#### 2\n\nQuestion: Q2?\nAnswer:"
    assert LM_EVAL_STOP == ("Question:", "</s>", "<|im_end|>")
    assert OFFICIAL_STOP == ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
    protos = {b.name: {n: p.chat for n, p in b.protocols.items()} for b in BENCHMARKS}
    assert protos["gsm8k"] == {"chat": True, "few_shot": True, "fewshot": False}
    assert protos["humaneval"] == {"chat": True, "raw": False}


def test_task_names_name_split_and_protocol():
    assert [(b.name, s, p) for b, s, p in map(parse_task_name, ("gsm8k_val", "gsm8k_val_fewshot", "gsm8k_test_fewshot",
                                                               "humaneval", "humaneval_raw"))] == [
        ("gsm8k", "validation", "chat"), ("gsm8k", "validation", "fewshot"), ("gsm8k", "test", "fewshot"),
        ("humaneval", "test", "chat"), ("humaneval", "test", "raw")]
    assert parse_task_name("drift") is None and parse_task_name("gsm8k_nosuch") is None
    keys = ["gsm8k_val.accuracy_flexible", "gsm8k_val_fewshot.accuracy_flexible", "gsm8k_test.accuracy_strict",
            "gsm8k_test_fewshot.accuracy_strict", "humaneval.pass@1", "humaneval_raw.pass@1"]
    assert headline_columns(keys) == ("gsm8k_test.accuracy_strict", "gsm8k_test_fewshot.accuracy_strict",
                                      "humaneval.pass@1", "humaneval_raw.pass@1",
                                      "gsm8k_val.accuracy_flexible", "gsm8k_val_fewshot.accuracy_flexible")
    rows = [{"gen": 0, **{k: 0.5 for k in keys}}]
    assert report.protocol_legend(rows) == ("protocols: chat = gsm8k_test, humaneval, gsm8k_val; "
                                            "fewshot = gsm8k_test_fewshot, gsm8k_val_fewshot; raw = humaneval_raw")
    # what the eval stage recorded wins over the name (a chat-turn few-shot task named gsm8k_val)
    assert report.protocol_legend(rows, {"gsm8k_val": "few_shot"}).endswith("few_shot = gsm8k_val")


def test_fewshot_needs_exemplars(tmp_path, models_dir):
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match=r"eval.tasks.gsm8k_val_fewshot.few_shot.*prompt=fewshot needs few_shot > 0"):
        compose(["+protocols=base", "eval.tasks.gsm8k_val_fewshot.few_shot=0"])


class Recorder(ScriptedEngine):
    """A scripted engine: a fixed answer per prompt; records (task prompts, params) of every call."""

    def __init__(self) -> None:
        super().__init__(lambda messages: Output(["    return 0\n#### 3"], [5], ["stop"]), eot=151645)


def test_eval_stage_passes_each_protocols_stops(tmp_path, models_dir, tiny_qwen3):
    cfg = protocol_cfg(tmp_path, models_dir)
    eng = Recorder()

    @contextmanager
    def factory(model_dir):
        yield eng

    res = evaluate_model(cfg, tiny_qwen3, tmp_path / "eval", factory)
    by_task = dict(zip(cfg.eval.tasks, eng.calls))
    assert set(by_task) == {*CHAT, *PLAIN}
    for task in CHAT:
        prompts, params = by_task[task]
        assert all(isinstance(p, list) for p in prompts) and params.stop_token_ids == [151645]
    for task, stop in PLAIN.items():
        prompts, params = by_task[task]
        assert all(isinstance(p, str) for p in prompts) and params.stop_token_ids == []
        assert tuple(params.stop) == stop
    assert all(p.startswith("Question: ") and p.endswith("\nAnswer:") and p.count("Question: ") == 2
               for p in by_task["gsm8k_val_fewshot"][0])
    assert by_task["humaneval_raw"][0] == [it["problem"]["prompt"] for it in load_items(cfg.eval.tasks["humaneval_raw"])]
    assert {t: v["protocol"] for t, v in res.info["tasks"].items()} == {
        **{t: "chat" for t in CHAT}, "gsm8k_test_fewshot": "fewshot", "gsm8k_val_fewshot": "fewshot", "humaneval_raw": "raw"}
    recs = [json.loads(x) for x in (tmp_path / "eval" / "gsm8k_val_fewshot.jsonl").read_text().splitlines()]
    assert all(r["n_shots"] == 1 and r["prompt"].endswith("\nAnswer:") and r["correct_strict"] is not None for r in recs)


def test_humaneval_raw_completions_are_used_verbatim(smoke_cfg):
    from pipeline.evals.humaneval import load_problems as load_humaneval
    from pipeline.evals import humaneval

    cfg = smoke_cfg("+protocols=base")
    p = load_humaneval()[0]
    items = [{"id": p["task_id"], "problem": p}] * 2
    fenced = f"```python\n{p['prompt']}{p['canonical_solution']}```"
    outs = [Output([p["canonical_solution"]], [1], ["stop"]), Output([fenced], [1], ["stop"])]
    raw = humaneval.score_task(cfg.eval.tasks["humaneval_raw"], items, [p["prompt"]] * 2, outs, cfg)
    chat = humaneval.score_task(cfg.eval.tasks["humaneval"], items, [[]] * 2, outs, cfg)
    assert [r["correct"] for r in raw] == [True, False]  # a fence is no Python: raw is not sanitized
    assert [r["correct"] for r in chat] == [True, True]


def test_synthesis_requests_stop_at_the_end_of_turn(smoke_cfg):
    from pipeline.synth.steps import Job

    eng = Recorder()
    job = Job(cfg=smoke_cfg(), engine=eng, steps=None, seed=3, gen=1, hp={}, index=None)
    job.generate([[{"role": "user", "content": "Write a problem."}]], GenParams(max_tokens=4))
    assert eng.calls[0][1].stop_token_ids == [151645] and eng.calls[0][1].seed == 3


def test_endpoint_request_carries_the_stop_ids(base_models, ids):
    from tests.support.server import FakeServer

    model = base_models["gen0"]
    with FakeServer(str(model)) as srv:
        cfg = compose(["model=tiny:qwen3", "experiment=smoke", f"engine.endpoint={srv.url}"])
        with open_engine(model, cfg.model, cfg.engine, seed=0) as eng:
            chat = [{"role": "user", "content": "2+2?"}]
            eng.generate([chat], GenParams(max_tokens=2, stop=["Question:"], stop_token_ids=[eng.end_of_turn_id()]))
            eng.generate(["Question: 2+2?\nAnswer:"], GenParams(max_tokens=2))
    assert srv.requests[-2]["stop_token_ids"] == [ids[IM_END]] and srv.requests[-2]["stop"] == ["Question:"]
    assert srv.requests[-1]["stop_token_ids"] is None


def _spy_eval(cfg, model_dir: Path, out: Path, spy) -> dict[str, list]:
    """Evaluate with a real engine, `spy(eng, seen)` patching what the backend sends; -> task -> requests."""
    seen: list = []
    tasks: dict[str, list] = {}

    @contextmanager
    def factory(md):
        with open_engine(md, cfg.model, cfg.engine, seed=0) as eng:
            spy(eng, seen)
            real = eng.generate

            def generate(prompts, params):
                start = len(seen)
                outs = real(prompts, params)
                tasks[next(t for t in cfg.eval.tasks if t not in tasks)] = seen[start:]
                return outs

            eng.generate = generate
            yield eng

    evaluate_model(cfg, model_dir, out, factory)
    return tasks


@pytest.mark.slow
@pytest.mark.parametrize("gen", ["gen0", "genN"])
def test_hf_generate_gets_the_stops(gen, base_models, ids, tmp_path, models_dir):
    cfg = protocol_cfg(tmp_path, models_dir, "hf", n=1, max_tokens=2)

    def spy(eng, seen):
        real = eng.model.generate

        def generate(*a, **kw):
            seen.append(kw)
            return real(*a, **kw)

        eng.model.generate = generate

    tasks = _spy_eval(cfg, base_models[gen], tmp_path / "eval", spy)
    for task in CHAT:
        assert all(ids[IM_END] in kw["eos_token_id"] and "stop_strings" not in kw for kw in tasks[task]), task
    for task, stop in PLAIN.items():
        assert tasks[task] and all(tuple(kw["stop_strings"]) == stop for kw in tasks[task]), task
    if gen == "gen0":  # the base model alone would not stop there: only the request makes it
        assert all(ids[IM_END] not in kw["eos_token_id"] for t in PLAIN for kw in tasks[t])


@pytest.mark.slow
def test_vllm_sampling_params_get_the_stops(base_models, ids, tmp_path, models_dir, monkeypatch):
    """gen 0 only: the request does not depend on the model dir (the HF test checks both), and a
    second vLLM start would double this test's minute on CPU."""
    pytest.importorskip("vllm")
    import vllm

    cfg = protocol_cfg(tmp_path, models_dir, "vllm", n=1, max_tokens=2)
    cfg.eval.tasks = {t: cfg.eval.tasks[t] for t in ("gsm8k_val", "gsm8k_val_fewshot", "humaneval_raw")}
    made: list = []
    real = vllm.SamplingParams

    def sampling_params(*a, **kw):
        made.append(kw)
        return real(*a, **kw)

    tasks: dict[str, dict] = {}

    @contextmanager
    def factory(md):
        with open_engine(md, cfg.model, cfg.engine, seed=0) as eng:
            monkeypatch.setattr(vllm, "SamplingParams", sampling_params)
            real_generate = eng.generate

            def generate(prompts, params):
                outs = real_generate(prompts, params)
                tasks[next(t for t in cfg.eval.tasks if t not in tasks)] = made[-1]
                return outs

            eng.generate = generate
            yield eng

    evaluate_model(cfg, base_models["gen0"], tmp_path / "eval", factory)
    assert tasks["gsm8k_val"]["stop_token_ids"] == [ids[IM_END]] and tasks["gsm8k_val"]["stop"] is None
    assert tasks["gsm8k_val_fewshot"]["stop"] == list(LM_EVAL_STOP) and tasks["gsm8k_val_fewshot"]["stop_token_ids"] is None
    assert tasks["humaneval_raw"]["stop"] == list(OFFICIAL_STOP)
