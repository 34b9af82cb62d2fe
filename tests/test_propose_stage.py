"""pipeline.propose stage: the history-aware prompt, scripted fake engines (JSON-schema and parse/retry
paths, K distinct candidates, disabled), and one real vLLM run on tiny:qwen3."""

from __future__ import annotations

import json

import pytest

from pipeline.lineage.runner import StageContext
from pipeline.infra.io import atomic_write_json, read_json
from pipeline.lineage import Lineage
from pipeline.propose.stage import run
from pipeline.propose.prompt import history, render
from pipeline.propose.validate import FIELDS, in_space
from tests.support import ScriptedEngine

METRIC = "gsm8k_val.accuracy_flexible"


def hp(**kw) -> dict:
    base = {"learning_rate": 1e-4, "epochs": 1.0, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
            "batch_size": 8, "max_seq_length": 512, "warmup_ratio": 0.05, "num_examples": 100,
            "math_fraction": 1.0, "synth_temperature": 0.8}
    return {**base, **kw}


@pytest.fixture
def lineage(tmp_path, tiny_qwen3):
    """gen_000 base, gen_001 promoted, gen_002 rejected, gen_003 promoted (best); gen_004 is being built."""
    lin = Lineage(tmp_path / "ckpt", "hist")
    lin.init("tiny:qwen3", tiny_qwen3)
    specs = [
        (0, "promoted", 0.10, None, [], None),
        (1, "promoted", 0.20, hp(learning_rate=2e-4, num_examples=120), ["val 0.2 >= teacher 0.1 - 0.02"],
         {"n_train": 37, "accept_rate": 0.41}),
        (2, "rejected", 0.05, hp(learning_rate=9e-4, epochs=3.0), ["val 0.05 fell below teacher 0.2 - 0.02"],
         {"n_train": 80, "accept_rate": 0.5}),
        (3, "promoted", 0.30, hp(learning_rate=5e-5, lora_r=32, lora_alpha=64), ["val 0.3 >= teacher 0.2 - 0.02"],
         {"n_train": 95, "accept_rate": 0.55, "by_source": {"math_kept": 60}}),
    ]
    for i, status, val, h, reasons, stats in specs:
        g = lin.gen(i)
        lin.record(g, status=status, metrics={METRIC: val, "gsm8k_test.accuracy_flexible": 0.99}, gate_reasons=reasons)
        if h:
            atomic_write_json(g.path / "propose" / "accepted.json", {"hparams": h, "source": "clamped"})
        if stats:
            atomic_write_json(g.path / "synth" / "stats.json", stats)
    lin.record(lin.gen(4), status="candidate", parent="gen_003")
    return lin


def ctx_for(cfg, lin):
    return StageContext(cfg=cfg, lineage=lin, gen=lin.gen(4), teacher=lin.gen(3), stage="propose")


class FakeEngine(ScriptedEngine):
    """Scripted replies: call k answers prompt j with replies[k][j]."""

    def __init__(self, replies: list[list[str]], json_schema: bool) -> None:
        super().__init__(json_schema=json_schema)
        self.replies = replies
        self.model_dirs: list = []

    def generate(self, prompts, params):
        assert len(self.replies[len(self.calls)]) == len(prompts)
        return super().generate(prompts, params)

    def reply(self, messages, i, params):
        return self.replies[len(self.calls) - 1][i]


def use_engine(monkeypatch, fake):
    def engine(self, model_dir):
        fake.model_dirs.append(model_dir)
        return fake

    monkeypatch.setattr(StageContext, "engine", engine)


def test_history_aware_prompt(smoke_cfg, lineage):
    cfg = smoke_cfg()
    rows = history(lineage, lineage.gen(4), METRIC)
    assert [r.name for r in rows] == ["gen_000", "gen_001", "gen_002", "gen_003"]
    text = render(cfg.propose.space, rows, {"n_train": 95}, (rows[3].hparams, "gen_003"), METRIC, 0, 1)
    # the space, from conf/propose
    assert "- learning_rate: 1e-06 to 0.001" in text and "- lora_r: one of 0, 8, 16, 32, 64" in text
    assert "- num_examples: integer, 16 to 20000" in text
    # each earlier generation: verdict, validation metric, accepted hparams, data stats, gate reasons
    assert "gen|status|gsm8k_val.accuracy_flexible|learning_rate|epochs|" in text
    assert "gen_000|promoted|0.1|" + "|".join(["-"] * len(FIELDS)) + "|base|-|-" in text
    assert ("gen_001|promoted|0.2|0.0002|1|16|32|0.05|8|512|0.05|120|1|0.8|clamped|"
            "n_train=37 accept_rate=0.41|val 0.2 >= teacher 0.1 - 0.02") in text
    assert "gen_002|rejected|0.05|0.0009|3|" in text
    assert "val 0.05 fell below teacher 0.2 - 0.02" in text
    assert "by_source.math_kept=60" in text
    assert "gsm8k_test" not in text and "0.99" not in text  # test-split scores must not steer training
    assert "Training data so far: n_train=95." in text
    # the best so far is named, its setting sits in its history row; no ready JSON setting to copy
    assert "Best so far: gen_003 (its setting and outcome are in the history)." in text
    assert "gen_003|promoted|0.3|5e-05|1|32|64|" in text
    assert "{" not in text and "Setting (" not in text
    assert "synth_temperature is used by this generation's shared data synthesis" in text
    assert text.rstrip().endswith('"rationale" (one short sentence).')


def test_prompt_is_compact_for_small_contexts(smoke_cfg, lineage, tiny_qwen3):
    from transformers import AutoTokenizer

    cfg = smoke_cfg()
    rows = history(lineage, lineage.gen(4), METRIC)
    text = render(cfg.propose.space, rows, {"n_train": 95, "accept_rate": 0.55}, (rows[3].hparams, "gen_003"),
                  METRIC, 1, 3)
    tok = AutoTokenizer.from_pretrained(str(tiny_qwen3))
    rendered = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True,
                                       enable_thinking=False)
    n = len(tok(rendered, add_special_tokens=False)["input_ids"])
    print("prompt tokens:", n)
    assert n <= cfg.model.max_model_len - cfg.propose.max_tokens - 50 and n < 900, n
    assert "Candidate 2 of 3. Propose a more conservative setting" in text


def test_stage_json_schema_path_with_distinct_candidates(smoke_cfg, lineage, monkeypatch):
    cfg = smoke_cfg("propose.candidates=3")
    good = json.dumps({**hp(learning_rate=7e-5), "rationale": "a bit lower"})
    fake = FakeEngine([
        [good, good, "the model rambles"],  # attempt 0: a repeat and an unparseable answer
        ['{"learning_rate": 1.7, "epochs": 20, "lora_r": 16}'],  # attempt 1: only the unparseable one is re-asked
    ], json_schema=True)
    use_engine(monkeypatch, fake)
    ctx = ctx_for(cfg, lineage)
    res = run(ctx)

    assert fake.model_dirs == [lineage.gen(3).model_dir] and fake.closed
    assert len(fake.calls) == 2 and len(fake.calls[0][0]) == 3 and len(fake.calls[1][0]) == 1
    p0, p1 = fake.calls[0][1], fake.calls[1][1]
    assert p0.json_schema["required"][: len(FIELDS)] == FIELDS and p0.json_schema["additionalProperties"] is False
    assert p0.temperature == cfg.propose.temperature and p1.temperature == cfg.propose.retry_temperature

    acc = read_json(ctx.out / "accepted.json")
    c = acc["candidates"]
    assert [x["source"] for x in c] == ["teacher", "fallback", "clamped"]
    assert acc["hparams"] == c[0]["hparams"] and c[0]["hparams"]["learning_rate"] == 7e-5
    assert c[0]["rationale"] == "a bit lower" and acc["source"] == "teacher" and acc["fallback"] is False
    assert c[1]["fallback"] and any("repeated an earlier candidate" in w for w in c[1]["warnings"])
    assert c[2]["hparams"]["learning_rate"] == 1e-3 and c[2]["hparams"]["epochs"] == 3.0
    assert len({json.dumps(x["hparams"], sort_keys=True) for x in c}) == 3
    assert all(in_space(x["hparams"], cfg.propose.space) for x in c)

    raw = (ctx.out / "raw.txt").read_text()
    assert raw.count("### attempt") == 4 and "the model rambles" in raw
    assert (ctx.out / "prompt.txt").read_text().count("=== candidate") == 3
    assert "gen_002|rejected" in (ctx.out / "prompt.txt").read_text()
    assert len(read_json(ctx.out / "parsed.json")) == 4
    assert res.metrics == {} and res.tokens > 0
    assert res.info["source"] == "teacher" and res.info["fallback"] is False
    assert res.info["hparams"] == acc["hparams"] and res.info["candidate_sources"] == ["teacher", "fallback", "clamped"]


def test_stage_parse_retry_path_falls_back_to_history_best(smoke_cfg, lineage, monkeypatch):
    cfg = smoke_cfg("propose.retries=2")
    fake = FakeEngine([["no json here"], ["{broken"], ["still nothing"]], json_schema=False)
    use_engine(monkeypatch, fake)
    ctx = ctx_for(cfg, lineage)
    res = run(ctx)
    assert len(fake.calls) == 3 and all(p.json_schema is None for _, p in fake.calls)
    acc = read_json(ctx.out / "accepted.json")
    assert acc["fallback"] is True and acc["source"] == "fallback"
    # the best promoted generation by validation metric is gen_003 (0.30), not the rejected gen_002
    assert acc["hparams"] == hp(learning_rate=5e-5, lora_r=32, lora_alpha=64) and acc["history_best"] == "gen_003"
    assert any("no JSON object after 3 attempts" in w for w in acc["warnings"])
    assert res.info["fallback"] is True and res.info["n_warnings"] == len(acc["warnings"])


def test_stage_parse_path_accepts_json_in_prose(smoke_cfg, lineage, monkeypatch):
    cfg = smoke_cfg()
    reply = 'I suggest: {"learning_rate": "3e-5", "epochs": 2, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, ' \
            '"batch_size": 4, "max_seq_length": 256, "warmup_ratio": 0.1, "num_examples": 300, ' \
            '"math_fraction": 0.5, "synth_temperature": 0.7, "rationale": "small steps"} done'
    fake = FakeEngine([[reply]], json_schema=False)
    use_engine(monkeypatch, fake)
    ctx = ctx_for(cfg, lineage)
    res = run(ctx)
    assert len(fake.calls) == 1
    assert res.info["source"] == "clamped"  # the string "3e-5" was coerced, with a warning
    assert res.info["hparams"]["learning_rate"] == 3e-5 and res.info["hparams"]["num_examples"] == 300


class CountingEngine(FakeEngine):
    """A fake with a tokenizer-like `encode`: one token per 4 characters."""

    def encode(self, prompt):
        return [0] * (len(prompt[0]["content"]) // 4)


def test_stage_shrinks_history_to_fit_the_context(smoke_cfg, lineage, monkeypatch):
    good = json.dumps(hp(learning_rate=7e-5))
    full = smoke_cfg()
    fake = CountingEngine([[good]], json_schema=True)
    use_engine(monkeypatch, fake)
    n_full = len(fake.encode([{"content": run_prompt(full, lineage)}]))
    # room for the prompt with about one history row less than all four
    cfg = smoke_cfg(f"model.max_model_len={n_full + full.propose.max_tokens - 20}")
    fake = CountingEngine([[good]], json_schema=True)
    use_engine(monkeypatch, fake)
    ctx = ctx_for(cfg, lineage)
    res = run(ctx)
    prompt = (ctx.out / "prompt.txt").read_text()
    assert "gen_003|promoted" in prompt and "gen_000|promoted" not in prompt  # the oldest rows go first
    assert res.info["source"] == "teacher"
    # nothing fits: no generate call, a recorded fallback to the best promoted setting
    cfg = smoke_cfg(f"model.max_model_len={full.propose.max_tokens + 10}")
    fake = CountingEngine([], json_schema=True)
    use_engine(monkeypatch, fake)
    res = run(ctx_for(cfg, lineage))
    assert fake.calls == [] and res.info["fallback"] is True
    assert any("does not fit" in w for w in read_json(ctx.out / "accepted.json")["warnings"])


def run_prompt(cfg, lin) -> str:
    rows = history(lin, lin.gen(4), METRIC)
    best = (rows[3].hparams, "gen_003")
    return render(cfg.propose.space, rows, {}, best, METRIC, 0, 1)


def test_stage_config_mode_uses_config_without_engine(smoke_cfg, lineage, monkeypatch):
    cfg = smoke_cfg("propose.mode=config", "propose.candidates=2")
    monkeypatch.setattr(StageContext, "engine", lambda self, d: pytest.fail("no engine when propose.mode=config"))
    ctx = ctx_for(cfg, lineage)
    res = run(ctx)
    acc = read_json(ctx.out / "accepted.json")
    assert acc["source"] == "config" and acc["hparams"]["learning_rate"] == cfg.propose.hparams.learning_rate
    assert acc["candidates"][1]["hparams"] != acc["hparams"] and res.tokens == 0
    assert res.info["source"] == "config"


@pytest.mark.slow
def test_stage_real_vllm_on_tiny_qwen3(smoke_cfg, tiny_qwen3):
    """A random tiny model writes junk: the result is clamped or a fallback, recorded, and inside the space."""
    cfg = smoke_cfg("engine.backend=vllm", "propose.retries=0")  # one generate call keeps this test short
    lin = Lineage(cfg.paths.root, cfg.paths.lineage)
    lin.init(cfg.model.spec, tiny_qwen3)
    lin.record(lin.gen(0), status="promoted", metrics={METRIC: 0.0})
    ctx = StageContext(cfg=cfg, lineage=lin, gen=lin.gen(1), teacher=lin.gen(0), stage="propose")
    res = run(ctx)
    acc = read_json(ctx.out / "accepted.json")
    assert acc["source"] in ("teacher", "clamped", "fallback") and acc["json_schema"] is True
    assert in_space(acc["hparams"], cfg.propose.space) and set(acc["hparams"]) == set(FIELDS)
    assert (ctx.out / "raw.txt").read_text().startswith("### attempt 0 candidate 0")
    assert "gen_000|promoted|0|" in (ctx.out / "prompt.txt").read_text()
    assert res.tokens > 0 and res.info["engine"]["calls"] == res.info["attempts"] == 1
    if acc["source"] != "fallback":  # schema-constrained compact JSON, maybe cut by max_tokens and salvaged
        assert (ctx.out / "raw.txt").read_text().splitlines()[1].startswith('{"learning_rate":')
    print("tiny:qwen3 proposal:", acc["source"], acc["warnings"][:3])


def test_echo_of_a_shown_setting_is_recorded_as_echo(smoke_cfg, lineage, monkeypatch):
    """K=4 literal answers: the best row's setting, the config default, a clamped copy of gen_001, a new one."""
    from pipeline.propose.validate import defaults_dict

    cfg = smoke_cfg("propose.candidates=4")
    best = hp(learning_rate=5e-5, lora_r=32, lora_alpha=64)  # gen_003's row
    default = defaults_dict(cfg.propose.space, cfg.propose.hparams)
    clamped_echo = {**hp(learning_rate=2e-4, num_examples=120), "epochs": 9}  # gen_001 with epochs clamped 9 -> 3
    own = hp(learning_rate=7e-5)
    fake = FakeEngine([[json.dumps(best), json.dumps(default), json.dumps(clamped_echo), json.dumps(own)]],
                      json_schema=True)
    use_engine(monkeypatch, fake)
    ctx = ctx_for(cfg, lineage)
    res = run(ctx)
    c = read_json(ctx.out / "accepted.json")["candidates"]
    assert [x["source"] for x in c] == ["echo", "echo", "clamped", "teacher"]
    assert any("identical to the best so far (gen_003)" in w or "identical to gen_003" in w for w in c[0]["warnings"])
    assert any("identical to the config default" in w for w in c[1]["warnings"])
    assert c[0]["hparams"] == best and c[3]["hparams"] == own
    assert res.info["source"] == "echo" and res.info["candidate_sources"] == ["echo", "echo", "clamped", "teacher"]


def test_random_mode_samples_the_space_deterministically(smoke_cfg, lineage, monkeypatch):
    monkeypatch.setattr(StageContext, "engine", lambda self, d: pytest.fail("no engine when propose.mode=random"))
    cfg = smoke_cfg("propose.mode=random", "propose.candidates=3")
    runs = []
    for _ in range(2):
        ctx = ctx_for(cfg, lineage)
        res = run(ctx)
        runs.append(read_json(ctx.out / "accepted.json"))
    a, b = runs
    assert a["candidates"] == b["candidates"] and res.tokens == 0 and res.info["mode"] == "random"
    assert [x["source"] for x in a["candidates"]] == ["random"] * 3 and a["source"] == "random"
    assert all(in_space(x["hparams"], cfg.propose.space) for x in a["candidates"])
    assert len({json.dumps(x["hparams"], sort_keys=True) for x in a["candidates"]}) == 3
    # another seed or another generation draws another setting
    other = run(ctx_for(smoke_cfg("propose.mode=random", "seed=1"), lineage)).info["hparams"]
    assert other != a["hparams"]
    g5 = StageContext(cfg=cfg, lineage=lineage, gen=lineage.gen(5), teacher=lineage.gen(3), stage="propose")
    assert run(g5).info["hparams"] != a["hparams"]


def test_propose_mode_is_checked(smoke_cfg):
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="propose.mode"):
        smoke_cfg("propose.mode=never")


def test_stage_asks_chat_prompts_to_stop_at_the_end_of_turn(smoke_cfg, lineage, monkeypatch):
    """A base teacher's eos is not its chat template's end of turn: every request carries that id."""
    cfg = smoke_cfg("propose.retries=1")
    fake = FakeEngine([["no json here"], [json.dumps(hp(learning_rate=7e-5))]], json_schema=False)
    use_engine(monkeypatch, fake)
    run(ctx_for(cfg, lineage))
    assert len(fake.calls) == 2
    assert all(isinstance(p[0], list) and params.stop_token_ids == [7] for p, params in fake.calls)
