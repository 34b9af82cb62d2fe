"""make bench's engine figures, on literal events (the whole bench is too slow for the test suite)."""

from __future__ import annotations

import json

from scripts import bench, bench_eval


def test_engine_summary_counts_what_the_loop_did():
    events = [["start", "/t/gen_000/model"], ["close", "/t/gen_000/model"], ["start", "/t/gen_001/model"],
              ["sleep", "/t/gen_001/model"], ["wake", "/t/gen_001/model"], ["close", "/t/gen_001/model"]]
    assert bench.engine_summary(events) == {"starts": 2, "wakes": 1, "sleeps": 1, "closes": 2, "keeps": 0,
                                              "models": 2}
    assert bench.engine_summary([]) == {"starts": 0, "wakes": 0, "sleeps": 0, "closes": 0, "keeps": 0,
                                          "models": 0}


def test_start_share_of_wall_time():
    assert bench.start_share(2, 15.0, 300.0) == 0.1
    assert bench.start_share(3, 1.0, 0.0) == 0.0


def test_engine_events_are_read_from_the_generation_dir(tmp_path):
    assert bench.read_engine_events(tmp_path) == []  # a generation from before engines.json
    (tmp_path / "engines.json").write_text(json.dumps({"events": [["start", "m"], ["close", "m"]]}))
    assert bench.engine_summary(bench.read_engine_events(tmp_path))["starts"] == 1


def test_generation_throughput_is_measured_on_the_embedded_model():
    assert bench_eval.MODEL == "embedded:smollm2-135m-instruct"
    assert bench_eval.bench.__defaults__[0] == bench_eval.MODEL
