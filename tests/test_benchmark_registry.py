"""The benchmark registry: a benchmark added from outside pipeline/ (tests/plugins/toy_benchmark.py)
runs through evaluation, config validation, decontamination and the report with no pipeline edit;
the GSM8K train slices are disjoint and cover train."""

from __future__ import annotations

import random
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.stats.ledger import points
from pipeline import evals
from pipeline.report import text as report
from pipeline.config import ConfigError
from pipeline.evals.loaders import GSM8K_SLICES, _gsm8k_raw, gsm8k_slice, load_gsm8k, subset
from pipeline.engine import GenStats, Output
from pipeline.evals import BENCHMARKS, is_test_task, register_benchmark
from pipeline.evals.stage import evaluate_model
from pipeline.infra.io import read_json, read_jsonl
from pipeline.loop.lineage import Lineage
from pipeline.synth.decontaminate import benchmark_items, default_index
from tests.conftest import ROOT

PLUGIN = "tests.plugins.toy_benchmark"
TOY_TASK = {"benchmark": "toy", "split": "test", "version": "toy-v1", "n": 0, "seed": 0, "prompt": "chat",
            "few_shot": 0, "max_tokens": 8, "stop": ["END"], "n_samples": 1, "temperature": 0.0, "k": [1],
            "instruction": "Add."}


def compose_toy(tmp_path, *overrides: str, **task):
    """The real smoke config plus `eval.tasks.toy` (as an eval YAML would add it), through the same
    `load_config` every entry point uses: plugins imported, schemas and registries checked."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from pipeline.config.compose import conf_dir, load_config
    from pipeline.config import register

    register()
    with initialize_config_dir(str(conf_dir()), version_base=None):
        d = compose("config", ["model=tiny:qwen3", "experiment=smoke", f"paths.root={tmp_path / 'ckpt'}", *overrides])
    with open_dict(d):  # a new key of eval.tasks, as conf/eval/*.yaml would declare it
        d = OmegaConf.merge(d, {"eval": {"tasks": {"toy": {**TOY_TASK, **task}}}})
    return load_config(d)


@pytest.fixture
def no_toy():
    """Neither registered nor imported, before and after (other tests never see it)."""
    BENCHMARKS.unregister("toy")
    sys.modules.pop(PLUGIN, None)
    yield
    BENCHMARKS.unregister("toy")
    sys.modules.pop(PLUGIN, None)


@pytest.fixture
def toy(no_toy):
    """The toy benchmark, registered with the public call."""
    import importlib

    mod = importlib.import_module(PLUGIN)
    BENCHMARKS.unregister("toy")  # importing registered it; register it again the way a test would
    assert "toy" not in BENCHMARKS
    register_benchmark(mod.TOY)
    return mod


class ToyEngine:
    """Sums right, except the second prompt; records every call's params."""

    backend = "scripted"

    def __init__(self) -> None:
        self.params: list = []
        self.stats = GenStats()

    def end_of_turn_id(self):
        return 7

    def generate(self, prompts, params):
        self.params.append(params)
        outs = []
        for i, messages in enumerate(prompts):
            a, b = map(int, re.search(r"What is (\d) plus (\d)", messages[-1]["content"]).groups())
            outs.append(Output([str(a + b if i != 1 else a + b + 1)], [2], ["stop"]))
        return outs


def test_toy_benchmark_runs_through_evaluate(toy, tmp_path):
    cfg = compose_toy(tmp_path)  # validation accepts the registered benchmark
    cfg.eval.tasks = {"toy": cfg.eval.tasks["toy"]}
    eng = ToyEngine()

    @contextmanager
    def factory(model_dir):
        yield eng

    res = evaluate_model(cfg, Path("/m"), tmp_path / "eval", factory)
    assert list(eng.params[0].stop) == ["END", toy.STOP]  # the task's stop, then the protocol's
    assert points(res.metrics) == {"toy.error_rate": pytest.approx(1 / 6)}
    assert res.metrics["toy.error_rate_n"] == 6  # and its interval (pipeline.stats.ledger)
    assert res.info["tasks"]["toy"]["directions"] == {"error_rate": "lower"}
    assert res.info["tasks"]["toy"]["protocol"] == "chat" and res.info["tasks"]["toy"]["benchmark"] == "toy"
    rows = read_jsonl(tmp_path / "eval" / "toy.jsonl")
    assert [r["metrics"]["error_rate"] for r in rows] == [0, 1, 0, 0, 0, 0]
    assert [r["correct"] for r in rows] == [True, False, True, True, True, True]
    assert rows[0]["id"] == "toy-0-0" and rows[0]["prompt"].endswith("<answer>") and rows[0]["version"] == "toy-v1"
    assert read_json(tmp_path / "eval" / "summary.json")["metrics"]["toy.error_rate"] == pytest.approx(1 / 6)


def test_config_validation_asks_the_registry(toy, tmp_path, smoke_cfg):
    cfg = compose_toy(tmp_path, split="holdout")  # a protected split that is not a test split
    assert not is_test_task("toy", cfg.eval) and is_test_task("gsm8k_test", cfg.eval)
    assert is_test_task("toy", compose_toy(tmp_path).eval) and not is_test_task("drift", cfg.eval)
    for field, value in (("benchmark", "nosuch"), ("split", "validation"), ("prompt", "few_shot")):
        with pytest.raises(ConfigError, match=re.escape(f"invalid config value for 'eval.tasks.toy.{field}'")):
            compose_toy(tmp_path, **{field: value})
    with pytest.raises(ConfigError, match="unknown benchmark 'nosuch'; registered: .*'toy'"):
        compose_toy(tmp_path, benchmark="nosuch")
    with pytest.raises(ConfigError, match="lower-is-better"):  # the gate needs a higher-is-better metric
        compose_toy(tmp_path, "gate.metric=toy.error_rate", split="holdout")
    with pytest.raises(ConfigError, match="not a metric of eval task 'gsm8k_val'"):
        smoke_cfg("gate.metric=gsm8k_val.accuracy")


def test_unregistered_benchmark_is_refused_and_plugins_key_registers_it(no_toy, tmp_path):
    with pytest.raises(ConfigError, match=re.escape("'eval.tasks.toy.benchmark': unknown benchmark 'toy'")):
        compose_toy(tmp_path)
    cfg = compose_toy(tmp_path, f"plugins=[{PLUGIN}]")
    assert "toy" in BENCHMARKS and cfg.eval.tasks["toy"].benchmark == "toy"


def test_decontamination_indexes_every_registered_benchmark(toy):
    from tests.conftest import compose

    labels = {item[0] for item in benchmark_items()}
    assert labels == {"gsm8k_test", "gsm8k_val", "humaneval", "toy"}
    s = compose([]).synth
    hit = default_index(s.decontam_ngram, s.decontam_ngram_masked, s.decontam_near_dup).match(
        "Question: what is 2 plus 1, counted in purple marbles on a windy toy day? Think step by step.")
    assert hit is not None and hit.benchmark == "toy" and hit.item_id.startswith("toy-")


def test_report_and_listing_show_the_toy_benchmark(toy, tmp_path):
    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    lin.record(lin.gen(0), status="promoted", parent=None,
               metrics={"toy.error_rate": 0.25, "gsm8k_val.accuracy_flexible": 0.5, "mystery_task.score": 1.0})
    rows = [report.flatten(r) for r in lin.rows()]
    assert report.eval_columns(rows) == ("toy.error_rate", "gsm8k_val.accuracy_flexible")
    assert report.render(lin.rows(), "table").splitlines()[0].split()[3:5] == ["toy.error_rate",
                                                                               "gsm8k_val.accuracy_flexible"]
    from pipeline.evals.__main__ import describe

    listing = describe()
    assert "split    holdout  [protected]" in listing and "stop=['</answer>']" in listing
    assert "metric   error_rate  (lower is better)" in listing


def test_todays_report_columns():
    keys = ["gsm8k_val.accuracy_strict", "gsm8k_val.accuracy_flexible", "humaneval.pass@1",
            "gsm8k_test.accuracy_flexible", "gsm8k_test.accuracy_strict", "drift.honesty", "wall_s.eval"]
    assert report.eval_columns([{k: 0.1 for k in keys}]) == (
        "gsm8k_test.accuracy_strict", "gsm8k_test.accuracy_flexible", "humaneval.pass@1",
        "gsm8k_val.accuracy_flexible")


def test_gsm8k_train_slices_are_disjoint_and_cover_train():
    slices = {name: [r["id"] for r in gsm8k_slice(name)] for name in GSM8K_SLICES}
    every = [i for ids in slices.values() for i in ids]
    train = [r["id"] for r in _gsm8k_raw("train")]
    assert len(every) == len(set(every)) and set(every) == set(train)  # disjoint, and together all of train
    # validation v2: the gate's holdout it always was (500 ids, seed 1234) as block 1, then 500 more
    assert [r["slice_version"] for r in gsm8k_slice("validation")] == [1] * 500 + [2] * 500
    assert set(slices["validation"][:500]) == set(random.Random(1234).sample(train, 500))
    # nested: a larger subset is a superset (prefix) of a smaller one, and v1 stays the first 500
    rows = gsm8k_slice("validation")
    prefix = [r["id"] for r in subset(rows, 500, 0)]
    assert [r["id"] for r in subset(rows, 50, 0)] == prefix[:50] and set(prefix) == set(slices["validation"][:500])
    assert [r["id"] for r in subset(rows, 999, 0)][:500] == prefix
    assert len(slices["verifier"]) == 200 and len(slices["exemplars"]) > 100
    assert {r["id"] for r in load_gsm8k("train")} == set(train) - set(slices["validation"])
    assert not evals.protected_ids() & (set(slices["pool"]) | set(slices["exemplars"]) | set(slices["verifier"]))
    with pytest.raises(ValueError, match="unknown GSM8K train slice"):
        gsm8k_slice("train")


def test_no_pipeline_code_outside_the_benchmark_modules_names_a_benchmark():
    files = ["pipeline/evals/stage.py", "pipeline/synth/decontaminate.py", "pipeline/report/text.py",
             "pipeline/evals/__init__.py", "pipeline/gate/stage.py",
             *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "pipeline" / "config").glob("*.py")))]
    for rel in files:
        code = (ROOT / rel).read_text()
        assert not re.search(r"""["'](gsm8k|humaneval)["']""", code), rel
