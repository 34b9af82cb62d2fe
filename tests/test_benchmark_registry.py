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
from pipeline.evals.gsm8k import SLICES as GSM8K_SLICES, load as load_gsm8k, raw as _gsm8k_raw, train_slice as gsm8k_slice
from pipeline.evals.loaders import subset
from pipeline.evals import BENCHMARKS, is_test_task, register_benchmark
from pipeline.evals.stage import evaluate_model
from pipeline.infra.io import read_json, read_jsonl
from pipeline.lineage import Lineage
from pipeline.synth.decontaminate import benchmark_items, default_index
from tests.support import ROOT, ScriptedEngine

PLUGIN = "tests.plugins.toy_benchmark"
TOY_TASK = {"benchmark": "toy", "split": "test", "version": "toy-v1", "n": 0, "seed": 0, "prompt": "chat",
            "few_shot": 0, "max_tokens": 8, "stop": ["END"], "n_samples": 1, "temperature": 0.0, "k": [1],
            "instruction": "Add."}

def compose_toy(tmp_path, *overrides: str, **task):
    """The real smoke config plus `eval.tasks.toy` (as an eval YAML would add it), through the same
    `load_config` every entry point uses: plugins imported, schemas and registries checked."""
    return compose_task(tmp_path, "toy", {**TOY_TASK, **task}, *overrides)


def compose_task(tmp_path, name: str, task: dict, *overrides: str):
    """The real smoke config plus `eval.tasks.<name>`, through `load_config` (see compose_toy)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from pipeline.config.compose import conf_dir, load_config
    from pipeline.config.compose import prepare

    prepare()  # the built-in methods registered, their knobs in the schema
    with initialize_config_dir(str(conf_dir()), version_base=None):
        d = compose("config", ["model=tiny:qwen3", "experiment=smoke", f"paths.root={tmp_path / 'ckpt'}", *overrides])
    with open_dict(d):  # a new key of eval.tasks, as conf/eval/*.yaml would declare it
        d = OmegaConf.merge(d, {"eval": {"tasks": {name: task}}})
    return load_config(d)

def unregistered(name: str, module: str):
    """Benchmark `name` neither registered nor its plugin `module` imported, before and after (other
    tests never see it)."""
    BENCHMARKS.unregister(name)
    sys.modules.pop(module, None)
    yield
    BENCHMARKS.unregister(name)
    sys.modules.pop(module, None)


@pytest.fixture
def no_toy():
    yield from unregistered("toy", PLUGIN)

@pytest.fixture
def toy(no_toy):
    """The toy benchmark, registered with the public call."""
    import importlib

    mod = importlib.import_module(PLUGIN)
    BENCHMARKS.unregister("toy")  # importing registered it; register it again the way a test would
    assert "toy" not in BENCHMARKS
    register_benchmark(mod.TOY)
    return mod

class ToyEngine(ScriptedEngine):
    """Sums right, except the second prompt; records every call's params."""

    def tokens(self, text: str) -> int:
        return 2

    def reply(self, messages, i, params):
        a, b = map(int, re.search(r"What is (\d) plus (\d)", messages[-1]["content"]).groups())
        return str(a + b if i != 1 else a + b + 1)

    @property
    def params(self) -> list:
        return [params for _, params in self.calls]

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
    from tests.support import compose

    labels = {item[0] for item in benchmark_items()}
    assert labels == {"gsm8k_test", "gsm8k_val", "gsm8k_sel", "humaneval", "toy"}  # the selection slice too
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
    assert {r["id"] for r in load_gsm8k("train")} == set(train) - set(slices["validation"]) - set(slices["selection"])  # trainable: no held-out eval slice
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


BUILTINS = ("gsm8k", "humaneval")


def _named_benchmarks(path: Path) -> list[str]:
    """`line: text` of every identifier, import and string (docstrings aside) in one module that
    names a built-in benchmark (any case, `_`/`-` inside ignored: human_eval, HumanEval)."""
    import ast

    source = path.read_text()
    if not any(b in re.sub(r"[-_]", "", source.lower()) for b in BUILTINS):
        return []  # no mention at all: nothing to parse
    tree = ast.parse(source, str(path))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    hits = []
    for node in ast.walk(tree):
        texts = []
        if isinstance(node, ast.Name):
            texts = [node.id]
        elif isinstance(node, ast.Attribute):
            texts = [node.attr]
        elif isinstance(node, ast.alias):
            texts = [node.name, node.asname or ""]
        elif isinstance(node, ast.ImportFrom):
            texts = [node.module or ""]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            texts = [node.name]
        elif isinstance(node, ast.arg):
            texts = [node.arg]
        elif isinstance(node, ast.keyword):
            texts = [node.arg or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            texts = [node.value]
        for t in texts:
            flat = re.sub(r"[-_]", "", t.lower())
            if any(b in flat for b in BUILTINS):
                hits.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}: {t[:60]!r}")
    return hits


def test_nothing_outside_pipeline_evals_names_a_builtin_benchmark():
    """Plots, cards, the train card, synthesis and the rewards find a benchmark through the
    registry (its metrics, dataset ids, card metrics, the domain it models), never by its name."""
    assert {b.name for b in BENCHMARKS if b.name in BUILTINS} == set(BUILTINS)  # the names checked are the built-ins'
    evals_dir = ROOT / "pipeline" / "evals"
    hits = [h for p in sorted((ROOT / "pipeline").rglob("*.py")) if evals_dir not in p.parents
            for h in _named_benchmarks(p)]
    assert hits == []
    assert _named_benchmarks(ROOT / "pipeline" / "evals" / "gsm8k.py")  # the check sees a name where there is one


PARROT = "tests.plugins.parrot_benchmark"


@pytest.fixture
def parrot():
    """The parrot plugin benchmark, registered by the config's `plugins` key; gone afterwards."""
    yield from unregistered("parrot", PARROT)


def test_a_plugin_metric_lower_is_better_reaches_plot_card_and_report(parrot, tmp_path, tiny_qwen3):
    """`parrot.edit_distance` (lower is better, a name no built-in metric has) from a real eval of a
    tiny model: the capability plot draws it (saying lower is better), the model card lists it in
    `metrics` and `model-index`, and the report has it in its table and its json."""
    import json

    from huggingface_hub import ModelCard

    from pipeline.engine import open_engine
    from pipeline.report import plots
    from pipeline.evals.cards import add_results, front_matter

    task = {**TOY_TASK, "benchmark": "parrot", "version": "parrot-v1", "max_tokens": 6, "stop": [],
            "instruction": "Repeat this word:"}
    cfg = compose_task(tmp_path, "parrot", task, f"plugins=[{PARROT}]", "engine.backend=hf")
    assert "parrot" in BENCHMARKS and BENCHMARKS.get("parrot").task_metrics(cfg.eval.tasks["parrot"]) == {
        "edit_distance": "lower"}
    cfg.eval.tasks = {"parrot": cfg.eval.tasks["parrot"]}
    model = tmp_path / "model"  # the tiny model with a card, as the train stage leaves a generation's model
    model.mkdir()
    for f in tiny_qwen3.iterdir():
        (model / f.name).symlink_to(f)
    (model / "README.md").write_text(front_matter(base_model=None, tags=["test"], datasets=[],
                                                  lineage={"lineage": "lin", "generation": "gen_000"}) + "\n")

    @contextmanager
    def factory(md):
        with open_engine(md, cfg.model, cfg.engine, seed=0) as eng:
            yield eng

    res = evaluate_model(cfg, model, tmp_path / "eval", factory)
    rows = read_jsonl(tmp_path / "eval" / "parrot.jsonl")
    per_item = [r["metrics"]["edit_distance"] for r in rows]
    assert len(rows) == 4 and all(d == mod_distance(r) for d, r in zip(per_item, rows))
    value = res.metrics["parrot.edit_distance"]
    assert value == pytest.approx(sum(per_item) / 4) and res.metrics["parrot.edit_distance_n"] == 4

    card = ModelCard.load(add_results(model, tmp_path / "eval" / "summary.json"))
    assert card.data.metrics == ["exact_match", "code_eval", "edit_distance"]
    [result] = card.data.eval_results
    assert (result.metric_name, result.dataset_type, result.metric_value) == (
        "parrot.edit_distance", "parrot", pytest.approx(value, abs=1e-6))

    lin = Lineage(tmp_path, "lin")
    lin.init("tiny:qwen3", tmp_path / "base")
    lin.record(lin.gen(0), status="promoted", parent=None, metrics=res.metrics)
    lin.record(lin.gen(1), status="rejected", parent="gen_000", metrics={**res.metrics, "parrot.edit_distance": value + 1})
    fig = plots.capability(lin.rows())
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "parrot.edit_distance (lower is better)" in legend
    assert [ln.get_ydata().tolist() for ln in fig.axes[0].get_lines() if ln.get_label() == legend[0]] == [
        [value, value + 1]]
    assert "parrot.edit_distance" in report.render(lin.rows(), "table").splitlines()[0].split()
    data = json.loads(report.render(lin.rows(), "json"))
    assert [r["parrot.edit_distance"] for r in data] == [pytest.approx(value), pytest.approx(value + 1)]


def mod_distance(record: dict) -> float:
    """A record's edit distance recomputed from what it kept (the word and the model's text)."""
    from tests.plugins.parrot_benchmark import edit_distance

    texts = [record["completion"]] if isinstance(record.get("completion"), str) else record["completions"]
    return sum(edit_distance((t.strip().splitlines() or [""])[0].strip(), record["word"]) for t in texts) / len(texts)


def test_parrot_edit_distance_on_literal_strings(parrot):
    from tests.plugins.parrot_benchmark import edit_distance

    assert [edit_distance(a, b) for a, b in (("", "abc"), ("kitten", "sitting"), ("meadow", "meadow"),
                                             ("quartz", "quart"))] == [3, 3, 0, 1]


def test_synthesis_domains_find_their_benchmark_by_declared_domain(toy):
    """mathgen/codegen declare DOMAIN; the benchmark declaring it is what they are modelled on, its
    checker the one they and the rewards use; a domain nobody declares is a clear error."""
    import dataclasses

    from pipeline.synth import codegen, mathgen

    math, code = evals.modelled_on(mathgen.DOMAIN), evals.modelled_on(codegen.DOMAIN)
    assert (math.title, code.title) == ("GSM8K", "HumanEval")
    assert mathgen.checker() is math.checker and mathgen.checker().is_correct("$1,000.", "#### 1000")
    assert [r["id"] for r in mathgen.train_slice("pool")] == [r["id"] for r in gsm8k_slice("pool")]
    with pytest.raises(ValueError, match="GSM8K declares no train slice 'test'"):
        mathgen.train_slice("test")
    with pytest.raises(KeyError, match="no registered benchmark declares domain='chemistry'; declared: .*'math'"):
        evals.modelled_on("chemistry")
    # a plugin declaring the math domain too does not displace the built-in (registry order)
    register_benchmark(dataclasses.replace(toy.TOY, domain="math", checker=toy), replace=True)
    assert evals.modelled_on("math") is math
    with pytest.raises(ValueError, match="models synthesis domain 'math' needs its checker"):
        dataclasses.replace(toy.TOY, domain="math")
    with pytest.raises(ValueError, match=r"train slices \['holdout'\] are eval splits"):
        dataclasses.replace(toy.TOY, train_slices={"holdout": lambda: []})


def test_card_metrics_and_datasets_come_from_the_registry(toy):
    """Today's card values, derived: GSM8K's `exact_match` and HumanEval's `code_eval`, then a
    benchmark declaring none contributes its metric names; only GSM8K's train is read by synthesis."""
    assert evals.card_metrics() == ["exact_match", "code_eval", "error_rate"]
    assert evals.training_datasets() == ["openai/gsm8k"]
    keys = ["toy.error_rate", "toy.error_rate_lo", "gsm8k_val.format_rate", "humaneval.pass@10", "drift.honesty",
            "gsm8k_val.accuracy", "mystery.f1", "synth.pool_share"]
    assert evals.capability_keys(keys) == ["toy.error_rate", "gsm8k_val.format_rate", "humaneval.pass@10"]
    assert [evals.metric_direction(k) for k in ("toy.error_rate", "humaneval.pass@1", "mystery.f1")] == [
        "lower", "higher", None]
