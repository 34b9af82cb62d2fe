"""pipeline.propose validation: every kind of bad proposal, the fallback, perturbations, and the CLI."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys

import pytest

from tests.support import ROOT, compose
from pipeline.config import ConfigError
from pipeline.propose.validate import FIELDS, INT_FIELDS, in_space, perturb, validate


@pytest.fixture(scope="module")
def pc():
    return compose(["model=tiny:qwen3"]).propose


def good(pc) -> dict:
    return {"learning_rate": 5e-5, "epochs": 2, "lora_r": 32, "lora_alpha": 64, "lora_dropout": 0.1,
            "batch_size": 16, "max_seq_length": 1024, "warmup_ratio": 0.1, "num_examples": 500,
            "math_fraction": 0.7, "synth_temperature": 0.9, "rationale": "more capacity"}


def warned(v, field):
    return [w for w in v.warnings if w.startswith(field + ":")]


def test_good_proposal_is_taken_as_is(pc):
    v = validate(json.dumps(good(pc)), pc.space, pc.hparams)
    assert v.source == "teacher" and not v.fallback and v.warnings == []
    assert v.hparams["learning_rate"] == 5e-5 and v.hparams["lora_r"] == 32 and v.rationale == "more capacity"
    assert isinstance(v.hparams["num_examples"], int) and isinstance(v.hparams["epochs"], float)


def test_wrapped_in_prose_and_hparams_key(pc):
    text = "Sure! Here is my answer:\n```json\n" + json.dumps({"hparams": good(pc)}) + "\n```\nGood luck."
    v = validate(text, pc.space, pc.hparams)
    assert v.source == "teacher" and v.hparams["lora_alpha"] == 64


@pytest.mark.parametrize("field,value,expect,why", [
    ("learning_rate", float("nan"), 2e-4, "non-finite"),
    ("learning_rate", float("inf"), 2e-4, "non-finite"),
    ("epochs", float("-inf"), 1.0, "non-finite"),
    ("learning_rate", -0.5, 1e-6, "below range"),
    ("learning_rate", 1.7, 1e-3, "above range"),  # what a 135M model really proposed
    ("epochs", 20, 3.0, "above range"),
    ("num_examples", 10**400, 20000, "above range"),  # beyond float range
    ("num_examples", 1e308, 20000, "above range"),
    ("num_examples", 123.6, 124, "not an integer"),
    ("lora_r", 20, 16, "not an allowed choice"),
    ("lora_r", -3, 16, "out of domain"),  # not 0: that means full fine-tuning
    ("batch_size", 1e9, 8, "out of domain"),
    ("learning_rate", "1e-4", 1e-4, "coerced"),
    ("lora_r", "32", 32, "coerced"),
    ("learning_rate", "fast", 2e-4, "not a number"),
    ("learning_rate", "nan", 2e-4, "non-finite"),
    ("epochs", True, 1.0, "bool"),
    ("lora_dropout", [0.1], 0.05, "wrong type"),
    ("lora_dropout", {"v": 0.1}, 0.05, "wrong type"),
    ("warmup_ratio", None, 0.05, "missing"),
])
def test_bad_field_is_repaired_with_one_warning(pc, field, value, expect, why):
    obj = good(pc)
    obj[field] = value
    v = validate(obj, pc.space, pc.hparams)
    assert v.hparams[field] == pytest.approx(expect)
    assert len(warned(v, field)) == 1 and why in warned(v, field)[0]
    assert len(v.warnings) == 1  # the other fields were fine
    assert v.source == "clamped" and not v.fallback
    assert in_space(v.hparams, pc.space)


@pytest.mark.parametrize("field,value,expect,why", [
    # out of the choices' domain -> the configured default, never the nearest choice
    ("lora_r", -1, 16, "out of domain"), ("lora_r", -64, 16, "out of domain"), ("lora_r", 1, 16, "out of domain"),
    ("lora_r", 2, 16, "out of domain"), ("lora_r", 3, 16, "out of domain"), ("lora_r", 4, 16, "out of domain"),
    ("lora_r", 7.9, 16, "out of domain"), ("lora_r", 0.5, 16, "out of domain"), ("lora_r", "2", 16, "out of domain"),
    ("lora_r", 65, 16, "out of domain"), ("lora_r", 4096, 16, "out of domain"),
    ("batch_size", 3, 8, "out of domain"), ("batch_size", -8, 8, "out of domain"),
    ("batch_size", 65, 8, "out of domain"),
    ("max_seq_length", 128, 512, "out of domain"), ("max_seq_length", 1e6, 512, "out of domain"),
    # inside the domain: still snapped to the nearest choice
    ("lora_r", 9, 8, "not an allowed choice"), ("lora_r", 60, 64, "not an allowed choice"),
    ("batch_size", 5, 4, "not an allowed choice"), ("max_seq_length", 700, 512, "not an allowed choice"),
])
def test_choice_out_of_domain_falls_back_to_default(pc, field, value, expect, why):
    obj = good(pc)
    obj[field] = value
    v = validate(obj, pc.space, pc.hparams)
    assert v.hparams[field] == expect
    if why == "out of domain":
        assert expect == getattr(pc.hparams, field)  # the configured default
    assert len(warned(v, field)) == 1 and why in warned(v, field)[0] and len(v.warnings) == 1
    assert in_space(v.hparams, pc.space) and v.source == "clamped"


def test_lora_r_zero_is_still_full_fine_tuning_when_asked(pc):
    v = validate({**good(pc), "lora_r": 0}, pc.space, pc.hparams)
    assert v.hparams["lora_r"] == 0 and v.source == "teacher"


@pytest.mark.parametrize("alias,field,value,expect", [
    ("num_train_epochs", "epochs", 2, 2.0), ("per_device_train_batch_size", "batch_size", 32, 32),
    ("train_batch_size", "batch_size", 4, 4), ("lora_rank", "lora_r", 64, 64), ("r", "lora_r", 8, 8),
    ("lr", "learning_rate", 3e-5, 3e-5), ("max_length", "max_seq_length", 2048, 2048),
    ("max_seq_len", "max_seq_length", 256, 256), ("warmup", "warmup_ratio", 0.15, 0.15),
    ("temperature", "synth_temperature", 1.1, 1.1),
])
def test_hf_style_keys_are_read_as_their_field(pc, alias, field, value, expect):
    obj = good(pc)
    del obj[field]
    obj[alias] = value
    v = validate(obj, pc.space, pc.hparams)
    assert v.hparams[field] == pytest.approx(expect) and not v.fallback
    assert warned(v, field) == [f"{field}: read {alias!r} as {field}"] and len(v.warnings) == 1
    assert in_space(v.hparams, pc.space)


def test_hf_alias_only_when_the_field_is_absent_and_one_warning_per_field(pc):
    # the canonical key wins; the alias is then just an unknown key
    v = validate({**good(pc), "lr": 1e-3}, pc.space, pc.hparams)
    assert v.hparams["learning_rate"] == 5e-5 and v.warnings == ["ignored 1 unknown key(s): 'lr'"]
    # an alias whose value also needs repair: still one warning for the field
    obj = good(pc)
    del obj["lora_r"], obj["batch_size"]
    raw = {**obj, "lora_rank": 2, "per_device_train_batch_size": 12, "train_batch_size": 64}
    v = validate(raw, pc.space, pc.hparams)
    assert v.hparams["lora_r"] == 16
    assert warned(v, "lora_r") == ["lora_r: read 'lora_rank' as lora_r; out of domain 2 -> default 16"]
    assert v.hparams["batch_size"] == 8 and len(warned(v, "batch_size")) == 1  # 12: nearest of 8/16, tie -> 8
    assert "per_device_train_batch_size" in warned(v, "batch_size")[0]
    assert [w for w in v.warnings if w.startswith("ignored")] == ["ignored 1 unknown key(s): 'train_batch_size'"]


def test_nan_and_infinity_literals_in_text(pc):
    text = '{"learning_rate": NaN, "epochs": Infinity, "lora_alpha": -Infinity}'
    v = validate(text, pc.space, pc.hparams)
    assert in_space(v.hparams, pc.space) and not v.fallback
    for f in ("learning_rate", "epochs", "lora_alpha"):
        assert "non-finite" in warned(v, f)[0]


def test_missing_fields_default_and_extra_keys_ignored(pc):
    v = validate({"learning_rate": 1e-4, "momentum": 0.9, "optimizer": "sgd"}, pc.space, pc.hparams)
    assert v.hparams["learning_rate"] == 1e-4 and v.hparams["epochs"] == pc.hparams.epochs
    assert all(len(warned(v, f)) == 1 for f in FIELDS if f != "learning_rate")
    extra = [w for w in v.warnings if w.startswith("ignored")]
    assert len(extra) == 1 and "momentum" in extra[0] and "optimizer" in extra[0]
    # only extra keys: values untouched, still the teacher's own proposal
    obj = {**good(pc), "momentum": 0.9}
    assert validate(obj, pc.space, pc.hparams).source == "teacher"


@pytest.mark.parametrize("raw", [
    "", "   ", "I think the learning rate should be small.", "[1, 2, 3]", "{not json}",
    b"\xff\xfe\x00\x81binary\x00", "{" * 200000, '{"a": ' + "[" * 100000, "null",
])
def test_unparseable_falls_back_to_config_default(pc, raw):
    v = validate(raw, pc.space, pc.hparams)
    assert v.fallback and v.source == "fallback"
    assert v.hparams == validate({f: getattr(pc.hparams, f) for f in FIELDS}, pc.space, pc.hparams).hparams
    assert any("fallback to config default" in w for w in v.warnings)


def test_megabytes_of_junk(pc):
    rng = random.Random(0)
    junk = "".join(rng.choice('{}[]":,0123456789.eE-+ abcNaInfty\n') for _ in range(3_000_000))
    v = validate(junk, pc.space, pc.hparams)
    assert in_space(v.hparams, pc.space)
    assert any("only the first" in w for w in v.warnings)


def test_fallback_prefers_history_best_and_is_deterministic(pc):
    best = {**good(pc), "learning_rate": 3e-3}  # a space that shrank since: re-checked
    a = validate("garbage", pc.space, pc.hparams, history_best=best)
    b = validate("garbage", pc.space, pc.hparams, history_best=best)
    assert a.fallback and a.hparams == b.hparams
    assert a.hparams["lora_r"] == 32 and a.hparams["learning_rate"] == pc.space.learning_rate.high
    assert "best promoted generation" in a.warnings[0]


def test_truncated_json_is_salvaged(pc):
    text = json.dumps(good(pc))[:90]  # cut by max_tokens mid-answer
    v = validate(text, pc.space, pc.hparams)
    assert not v.fallback and v.source == "clamped"
    assert v.hparams["learning_rate"] == 5e-5 and any("salvaged" in w for w in v.warnings)


def _junk_value(rng: random.Random):
    kinds = [
        lambda: rng.uniform(-1e6, 1e6), lambda: rng.choice([float("nan"), float("inf"), -float("inf")]),
        lambda: rng.randint(-10**30, 10**30), lambda: 10 ** rng.randint(0, 500), lambda: rng.random(),
        lambda: str(rng.uniform(-10, 10)), lambda: rng.choice(["fast", "", "1e-4", "∞", "0x10", "1_000"]),
        lambda: rng.choice([True, False, None]), lambda: [rng.random()], lambda: {"x": 1},
        lambda: rng.choice([0, 8, 16, 512, 2048]),
    ]
    return rng.choice(kinds)()


def test_property_random_junk_never_crashes_or_leaves_space(pc):
    rng = random.Random(1234)
    for i in range(1500):
        obj = {f: _junk_value(rng) for f in FIELDS if rng.random() < 0.8}
        for _ in range(rng.randint(0, 3)):
            obj[f"junk{rng.randint(0, 99)}"] = _junk_value(rng)
        mode = i % 3
        raw = obj if mode == 0 else json.dumps(obj) if mode == 1 else json.dumps(obj)[: rng.randint(0, 200)]
        v = validate(raw, pc.space, pc.hparams)
        assert in_space(v.hparams, pc.space), (raw, v.hparams)
        assert all(isinstance(v.hparams[f], int) for f in INT_FIELDS)
        per_field = [w.split(":")[0] for w in v.warnings if w.split(":")[0] in FIELDS]
        assert len(per_field) == len(set(per_field))  # at most one warning per field
        assert v.source in ("teacher", "clamped", "fallback")
    for _ in range(200):  # random bytes
        v = validate(bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))), pc.space, pc.hparams)
        assert in_space(v.hparams, pc.space)


def test_perturb_is_deterministic_distinct_and_in_space(pc):
    base = validate(good(pc), pc.space, pc.hparams).hparams
    taken = [base]
    for _ in range(12):
        p, note = perturb(base, pc.space, taken)
        assert in_space(p, pc.space) and p not in taken and "perturbed" in note
        taken.append(p)
    assert perturb(base, pc.space, [base]) == perturb(base, pc.space, [base])


def test_config_rejects_default_outside_space():
    with pytest.raises(ConfigError, match="propose.hparams.learning_rate"):
        compose(["model=tiny:qwen3", "propose.hparams.learning_rate=0.5"])
    with pytest.raises(ConfigError, match="propose.space.epochs"):
        compose(["model=tiny:qwen3", "propose.space.epochs.low=4"])


def _cli(path, *extra):
    return subprocess.run([sys.executable, "-m", "pipeline.propose", "validate", str(path), *extra],
                          capture_output=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("content", [
    b"", b'{"learning_rate": 1.7, "epochs": 20, "lora_r": "fast", "x": 1}', b"\xff\xfe\x00junk\x80" * 1000,
])
def test_cli_exit_zero_and_last_line_json(tmp_path, pc, content):
    p = tmp_path / "raw.txt"
    p.write_bytes(content)
    r = _cli(p)
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert set(out) >= {"hparams", "warnings", "fallback"}
    assert in_space(out["hparams"], pc.space)
    assert out["fallback"] is (content[:1] != b"{")
    if content.startswith(b"{"):
        assert out["hparams"]["learning_rate"] == pc.space.learning_rate.high
        assert any("unknown key" in w for w in out["warnings"])


def test_cli_megabytes_and_overrides(tmp_path):
    p = tmp_path / "raw.txt"
    p.write_bytes(b"{[" * 2_000_000)
    r = _cli(p, "propose.space.epochs.high=5")
    assert r.returncode == 0
    assert json.loads(r.stdout.decode().strip().splitlines()[-1])["fallback"] is True
    p.write_text('{"epochs": 4.5}')
    out = json.loads(_cli(p, "propose.space.epochs.high=5").stdout.decode().strip().splitlines()[-1])
    assert out["hparams"]["epochs"] == 4.5


def test_cli_usage_errors_are_not_silent(tmp_path):
    r = _cli(tmp_path / "missing.txt")
    assert r.returncode == 2 and b"cannot read" in r.stderr


def test_history_metrics_show_point_values_only():
    from pipeline.propose.prompt import val_metrics

    m = {"gsm8k_val.accuracy_flexible": 0.5, "gsm8k_val.accuracy_flexible_lo": 0.2,
         "gsm8k_val.accuracy_flexible_hi": 0.8, "gsm8k_val.accuracy_flexible_n": 4,
         "gsm8k_val.accuracy_strict": 0.25, "gsm8k_val.accuracy_strict_n": 4, "gsm8k_test.accuracy_flexible": 0.9}
    assert val_metrics(m, "gsm8k_val.accuracy_flexible") == {"gsm8k_val.accuracy_flexible": 0.5,
                                                             "gsm8k_val.accuracy_strict": 0.25}
