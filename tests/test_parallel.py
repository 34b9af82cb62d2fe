"""Engine sizing on a multi-GPU node: tensor parallelism divides the KV heads, the rest are replicas."""

from __future__ import annotations

import json

import pytest

from pipeline.infra import devices
from pipeline.config import ConfigError
from pipeline.infra.devices import child_env
from pipeline.engine import parallel
from pipeline.engine.replicas import shards
from tests.support import compose

GB = 1e9
QWEN3_1_7B = 2 * 1.72e9  # bf16 bytes
H100 = 80 * GB


@pytest.mark.parametrize("gpus", [1, 2, 3, 4, 5, 6, 7, 8])
def test_small_model_is_one_engine_per_gpu(gpus):
    tp = parallel.choose_tp(8, QWEN3_1_7B, H100, 0.85, gpus, requested=0)
    assert tp == 1
    assert parallel.choose_replicas(gpus, tp, requested=0) == gpus
    assert parallel.device_sets(gpus, tp) == tuple(str(i) for i in range(gpus))


def test_big_model_takes_the_smallest_divisor_that_fits():
    # 140 GB of weights, 8 KV heads: half of 0.9 x 80 GB holds 36 GB, so 4 shards (35 GB) fit, 2 do not
    assert parallel.choose_tp(8, 140 * GB, H100, 0.9, 8, 0) == 4
    assert parallel.choose_replicas(8, 4, 0) == 2
    assert parallel.device_sets(2, 4) == ("0,1,2,3", "4,5,6,7")
    # on 7 GPUs the divisors of 8 that exist are 1, 2, 4: still 4, one replica, 3 GPUs idle
    assert parallel.choose_tp(8, 140 * GB, H100, 0.9, 7, 0) == 4
    assert parallel.choose_replicas(7, 4, 0) == 1
    # 6 KV heads (not a power of two): 3 is the smallest divisor holding 100 GB on 6 x 80 GB
    assert parallel.choose_tp(6, 100 * GB, H100, 0.9, 6, 0) == 3
    # too big for every divisor on the node: the largest one (vLLM then reports the memory itself)
    assert parallel.choose_tp(8, 1000 * GB, H100, 0.9, 3, 0) == 2


def test_cpu_and_fake_device_sets_get_one_device_engines():
    assert parallel.choose_tp(8, QWEN3_1_7B, 0, 0.85, 0, 0) == 1
    assert parallel.choose_tp(8, 100 * GB, 0, 0.85, 2, 0) == 1  # fake sets: no memory to size by
    assert parallel.choose_replicas(0, 1, 0) == 1


@pytest.mark.parametrize("tp", [3, 5, 6, 7])
def test_explicit_tp_must_divide_the_kv_heads(tp):
    with pytest.raises(ConfigError, match=r"engine.tensor_parallel_size.*does not divide the model's 8 KV heads"):
        parallel.choose_tp(8, QWEN3_1_7B, H100, 0.85, 8, requested=tp)


def test_explicit_sizes_within_the_node():
    assert parallel.choose_tp(8, QWEN3_1_7B, H100, 0.85, 8, requested=2) == 2
    assert parallel.choose_replicas(8, 2, requested=3) == 3
    with pytest.raises(ConfigError, match="engine.tensor_parallel_size.*only 2 device"):
        parallel.choose_tp(8, QWEN3_1_7B, H100, 0.85, 2, requested=4)
    with pytest.raises(ConfigError, match="engine.replicas.*need 6 devices, 4 available"):
        parallel.choose_replicas(4, 2, requested=3)


def test_kv_heads_and_weights_from_the_model_dir(tmp_path, tiny_qwen3):
    assert parallel.kv_heads(tiny_qwen3) == 2
    assert parallel.weight_bytes(tiny_qwen3) > 1e6
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {"num_attention_heads": 12}}))
    assert parallel.kv_heads(tmp_path) == 12  # no GQA: every attention head has its own KV head
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="engine.tensor_parallel_size"):
        parallel.kv_heads(tmp_path)


def test_plan_on_fake_device_sets(tiny_qwen3):
    cfg = compose(["model=tiny:qwen3", "experiment=smoke", "engine.devices=2"]).engine
    p = parallel.plan(tiny_qwen3, cfg)
    assert (p.tensor_parallel_size, p.replicas, p.device_sets, p.on_cuda) == (1, 2, ("0", "1"), False)
    assert parallel.plan(tiny_qwen3, compose(["model=tiny:qwen3", "experiment=smoke"]).engine).replicas == 1
    assert child_env("1", on_cuda=False, visible=None)["CUDA_VISIBLE_DEVICES"] == "1"
    assert child_env("1", on_cuda=False, visible=None)["VLLM_CPU_OMP_THREADS_BIND"] == devices.cpu_binding("1")
    assert "VLLM_CPU_OMP_THREADS_BIND" not in child_env("2,3", on_cuda=True, visible=None)
    # a process that sees only some GPUs (a sweep job) hands its replicas its own ones
    assert child_env("1", on_cuda=True, visible="4,5")["CUDA_VISIBLE_DEVICES"] == "5"
    assert child_env("0,1", on_cuda=False, visible="6,7")["CUDA_VISIBLE_DEVICES"] == "6,7"


def test_shards_are_contiguous_balanced_and_cover_everything():
    assert [list(r) for r in shards(5, 2)] == [[0, 1, 2], [3, 4]]
    assert [len(r) for r in shards(1, 3)] == [1, 0, 0]
    assert [i for r in shards(17, 4) for i in r] == list(range(17))


@pytest.mark.parametrize("override, key", [
    ("engine.tensor_parallel_size=-1", "engine.tensor_parallel_size"),
    ("engine.tensor_parallel_size=two", "engine.tensor_parallel_size"),
    ("engine.replicas=-2", "engine.replicas"),
    ("engine.devices=-3", "engine.devices"),
    ("engine.endpoint=localhost:8000", "engine.endpoint"),
    ("engine.max_num_batched_tokens=-1", "engine.max_num_batched_tokens"),
])
def test_engine_config_errors_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        compose([override])


def test_auto_and_zero_mean_auto():
    assert compose(["engine.tensor_parallel_size=0", "engine.replicas=auto"]).engine.requested_tp() == 0
    assert compose(["engine.tensor_parallel_size=2"]).engine.requested_tp() == 2


def test_loop_refuses_a_tp_the_model_cannot_take_before_any_write(smoke_cfg, tmp_path):
    from pipeline.loop import generation

    cfg = smoke_cfg("engine.tensor_parallel_size=3")  # tiny:qwen3 has 2 KV heads
    with pytest.raises(ConfigError, match=r"engine.tensor_parallel_size.*3 does not divide the model's 2 KV heads"):
        generation.run(cfg)
    assert not (tmp_path / "ckpt").exists()
