"""Teacher-forced KL on tiny:qwen3: exactly 0 between identical models, positive after one SGD step."""

from __future__ import annotations


import pytest

from pipeline.drift.kl import KLError, check_same_tokenizer, mean_token_kl
from pipeline.probes import load_suite, take
from tests.support import sgd_step_copy

ITEMS = take(load_suite("reference"), 5)


@pytest.mark.slow
def test_kl_zero_for_identical_and_positive_after_a_step(tiny_qwen3, tmp_path):
    stepped = sgd_step_copy(tiny_qwen3, tmp_path / "stepped")
    # "self" loads the same weights a second time: identical models give exactly 0
    res = mean_token_kl(stepped, {"gen0": tiny_qwen3, "self": stepped}, ITEMS, dtype="float32", batch_size=2)
    assert res["kl"]["self"] == 0.0 and all(r["self"] == 0.0 for r in res["per_item"])
    assert res["kl"]["gen0"] > 1e-6
    assert len(res["per_item"]) == len(ITEMS) and all(r["gen0"] > 0 for r in res["per_item"])
    assert res["tokens"] == sum(r["tokens"] for r in res["per_item"]) > 0
    # reported = tested: the metric is the mean of the per-item values (the gate's paired test reads those)
    assert res["kl"]["gen0"] == pytest.approx(sum(r["gen0"] for r in res["per_item"]) / len(ITEMS))
    assert res["tokens_weighted"]["gen0"] == pytest.approx(
        sum(r["gen0"] * r["tokens"] for r in res["per_item"]) / res["tokens"])
    # batching (and its left padding) does not change the numbers
    one = mean_token_kl(stepped, {"gen0": tiny_qwen3}, ITEMS, dtype="float32", batch_size=1)
    assert one["kl"]["gen0"] == pytest.approx(res["kl"]["gen0"], rel=1e-4)


@pytest.mark.slow
def test_different_tokenizers_are_refused(tiny_qwen3, tiny_llama):
    with pytest.raises(KLError, match="same lineage"):
        check_same_tokenizer([tiny_qwen3, tiny_llama])
