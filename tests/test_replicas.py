"""Replicas on CPU: two fake device sets, two engine processes, the same outputs as one engine."""

from __future__ import annotations

import os

import pytest

from pipeline.engine import GenParams, ReplicatedEngine, open_engine
from pipeline.lineage.runner import Engines
from tests.support import compose

# hf_batch_size=1: no padding, so a prompt's greedy output does not depend on its batch neighbours
BASE = ["model=tiny:qwen3", "experiment=smoke", "engine.backend=hf", "engine.hf_batch_size=1"]


@pytest.mark.slow
def test_two_replicas_equal_one_engine(tiny_qwen3):
    prompts = [[{"role": "user", "content": f"What is {i}+{i}?"}] for i in range(4)] + ["Once upon", "Hello"]
    greedy = GenParams(max_tokens=6)
    one = compose(BASE)
    with open_engine(tiny_qwen3, one.model, one.engine, seed=0) as eng:
        expected = eng.generate(prompts, greedy)
    two = compose([*BASE, "engine.devices=2"])
    engines = Engines.for_config(two, keep=True)
    with engines.use(tiny_qwen3) as eng:
        assert isinstance(eng, ReplicatedEngine)
        got = eng.generate(prompts, greedy)
        assert len(set(eng.pids)) == 2 and os.getpid() not in eng.pids  # two worker processes
        assert eng.shard_prompts == [3, 3]  # both used, contiguous halves
        assert eng.generate(prompts[:1], greedy)[0].texts == expected[0].texts  # one prompt: one worker busy
        assert eng.shard_prompts == [4, 3]
        assert eng.stats.prompts == 7
        procs = list(eng.procs)
    assert [o.texts for o in got] == [o.texts for o in expected]  # same texts, same order
    assert [o.completion_tokens for o in got] == [o.completion_tokens for o in expected]
    assert [o.finish_reasons for o in got] == [o.finish_reasons for o in expected]
    engines.release()  # HF replicas cannot sleep: released means closed, workers gone
    assert engines.events[-1][0] == "close" and not any(p.is_alive() for p in procs)
