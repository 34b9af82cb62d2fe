"""Results in the ecosystem's formats: lm-eval `results.json`, model cards with `model-index` (parsed
with huggingface_hub's own parser), the base model's Hub id, and the lineage's TensorBoard run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support import BenchmarkEngine, engine_factory

from pipeline.evals import cards
from pipeline.report import tensorboard as lineage_tb
from pipeline.engine import models
from pipeline.evals.stage import evaluate_model
from pipeline.infra.io import atomic_write_json, read_json, read_jsonl
from pipeline.lineage import Lineage


@pytest.fixture(scope="module")
def scripted_eval(tmp_path_factory, models_dir):
    """The eval of a scripted engine (half of each task right): records, summary.json, results.json."""
    from tests.support import compose

    cfg = compose(["model=tiny:qwen3", "experiment=smoke", f"paths.root={tmp_path_factory.mktemp('root')}",
                   f"paths.models={models_dir}"])
    del cfg.eval.tasks["gsm8k_sel"]  # scored only by candidates among several (tests/test_selection.py)
    out = tmp_path_factory.mktemp("eval")
    evaluate_model(cfg, Path("/models/m"), out, engine_factory(BenchmarkEngine(), []))
    return out


def test_results_json_has_lm_eval_layout_and_matches_the_summary(scripted_eval):
    summary, res = read_json(scripted_eval / "summary.json"), read_json(scripted_eval / "results.json")
    assert set(res["results"]) == set(summary["tasks"]) == {"gsm8k_test", "gsm8k_val", "humaneval"}
    names = {"gsm8k_test": {"accuracy_strict": "exact_match,strict-match",
                            "accuracy_flexible": "exact_match,flexible-extract", "format_rate": "format_rate,strict-match"},
             "humaneval": {"pass@1": "pass@1,create_test"}}
    names["gsm8k_val"] = names["gsm8k_test"]
    for task, metrics in names.items():
        block = res["results"][task]
        assert block["alias"] == task
        for ours, key in metrics.items():
            m, f = key.split(",")
            assert block[key] == pytest.approx(summary["metrics"][f"{task}.{ours}"])
            iv = summary["intervals"][f"{task}.{ours}"]
            assert (block[f"{m}_ci_lo,{f}"], block[f"{m}_ci_hi,{f}"]) == (iv["lo"], iv["hi"])
            values = [r["metrics"][ours] for r in read_jsonl(scripted_eval / f"{task}.jsonl")]
            n, p = len(values), sum(values) / len(values)
            # lm-eval's mean_stderr: sample sd (ddof 1) / sqrt(n)
            expected = (sum((v - p) ** 2 for v in values) / (n - 1)) ** 0.5 / n ** 0.5
            assert block[f"{m}_stderr,{f}"] == pytest.approx(expected)
            assert res["intervals"][task][key]["n"] == n
    assert res["n-samples"]["gsm8k_test"] == {"original": 1319, "effective": 4}
    assert res["higher_is_better"]["humaneval"] == {"pass@1": True}
    assert res["versions"]["gsm8k_val"] == "gsm8k-chat-v1" and res["configs"]["gsm8k_test"]["dataset_path"] == "openai/gsm8k"


def _model_dir(root: Path, card: str) -> Path:
    d = root / "default" / "gen_001" / "model"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"weights")
    (d / models.CARD).write_text(card)
    models.write_manifest(d, spec="gen_001")
    return d


LINEAGE_INFO = {"lineage": "default", "generation": "gen_001", "parent": "gen_000", "init_from": "base",
                "teacher": "HuggingFaceTB/SmolLM2-135M-Instruct", "hparams": {"learning_rate": 1e-4},
                "data": [{"path": "gen_001/synth/train.jsonl", "sha256": "ab" * 32, "rows": 40}]}


def test_card_front_matter_and_results_parse_with_huggingface_hub(scripted_eval, tmp_path):
    from huggingface_hub import ModelCard

    front = cards.front_matter(base_model="HuggingFaceTB/SmolLM2-135M-Instruct", tags=["sft", "lora", "sft"],
                               datasets=["openai/gsm8k"], lineage=LINEAGE_INFO)
    d = _model_dir(tmp_path, f"{front}\n\n# default / gen_001\n")
    card = ModelCard.load(d / models.CARD)
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and card.data.tags == ["sft", "lora"]
    assert card.data.to_dict()["self_post_training"]["data"][0]["path"] == "gen_001/synth/train.jsonl"
    assert not card.data.eval_results and "/work" not in card.content

    assert cards.add_results(d, scripted_eval / "summary.json") == d / models.CARD
    models.check_model_dir(d)  # the manifest still verifies: the card is outside the hashed set
    card = ModelCard.load(d / models.CARD)
    summary = read_json(scripted_eval / "summary.json")
    got = {(r.dataset_type, r.dataset_split, r.metric_type, r.metric_config): r for r in card.data.eval_results}
    strict = got[("openai/gsm8k", "test", "exact_match", "strict-match")]
    iv = summary["intervals"]["gsm8k_test.accuracy_strict"]
    assert strict.metric_value == pytest.approx(iv["estimate"]) and strict.task_type == "text-generation"
    assert (strict.metric_args["ci_low"], strict.metric_args["ci_high"], strict.metric_args["n"]) == (iv["lo"], iv["hi"], 4)
    assert strict.dataset_config == "main" and strict.metric_name == "gsm8k_test.accuracy_strict"
    lm = read_json(scripted_eval / "results.json")["results"]["gsm8k_test"]
    assert strict.metric_args["stderr"] == lm["exact_match_stderr,strict-match"]  # one computation, in results.json
    assert got[("openai/openai_humaneval", "test", "pass@1", "create_test")].metric_value == pytest.approx(2 / 3)
    assert len(card.data.eval_results) == 7  # 3 GSM8K metrics x 2 tasks + HumanEval pass@1
    assert card.data.to_dict()["self_post_training"]["parent"] == "gen_000"  # lineage kept
    assert "# default / gen_001" in card.content

    cards.add_results(d, scripted_eval / "summary.json")  # again: replaced, not appended
    assert len(ModelCard.load(d / models.CARD).data.eval_results) == 7
    (d / "model.safetensors").write_bytes(b"tampered")  # the weights are still guarded
    with pytest.raises(models.ModelError, match="model.safetensors does not match"):
        models.check_model_dir(d)


def test_a_manifest_that_hashed_the_card_is_rewritten_first(scripted_eval, tmp_path):
    d = _model_dir(tmp_path, cards.front_matter(base_model=None, tags=["sft"], datasets=[], lineage=LINEAGE_INFO))
    manifest = read_json(d / models.MANIFEST)
    manifest["files"][models.CARD] = {"size": 1, "sha256": "0" * 64}  # as written before the card was unhashed
    atomic_write_json(d / models.MANIFEST, manifest)
    cards.add_results(d, scripted_eval / "summary.json")
    assert models.CARD not in read_json(d / models.MANIFEST)["files"]
    models.check_model_dir(d)


def test_hub_ids_of_model_specs(tmp_path):
    assert models.hub_id("embedded:smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.hub_id("auto", tmp_path / "_models" / "embedded-smollm2-135m-instruct") == \
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.hub_id("Qwen/Qwen3-1.7B-Base") == "Qwen/Qwen3-1.7B-Base"
    snap = tmp_path / "hub" / "models--Qwen--Qwen3-1.7B-Base" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    assert models.hub_id("auto", snap) == models.hub_id(str(snap)) == "Qwen/Qwen3-1.7B-Base"
    assert models.hub_id("tiny:qwen3") is None and models.hub_id("auto", tmp_path / "_models" / "tiny-qwen3") is None
    trained = _model_dir(tmp_path, cards.front_matter(base_model="Qwen/Qwen3-1.7B-Base", tags=[], datasets=[],
                                                      lineage=LINEAGE_INFO))
    assert models.hub_id(str(trained)) == "Qwen/Qwen3-1.7B-Base"  # a lineage model: the base its card names
    plain = tmp_path / "plain"
    plain.mkdir()
    assert models.hub_id(str(plain)) is None


def test_lineage_tensorboard_run_holds_every_generation_with_its_interval(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    lin = Lineage(tmp_path, "tb")
    lin.init("tiny:qwen3", tmp_path / "base")
    vals = {0: 0.2, 1: 0.5, 2: 0.4}
    for g, v in vals.items():
        lin.record(lin.gen(g), status="promoted" if g != 2 else "rejected", parent=None,
                   metrics={"gsm8k_val.format_rate": v, "gsm8k_val.format_rate_lo": v - 0.1,
                            "gsm8k_val.format_rate_hi": v + 0.1, "gsm8k_val.format_rate_n": 50,
                            "drift.kl_to_gen0": 0.01 * g, "train.steps": 40 * g})
    lin.record(lin.gen(1, "gen_001-c1"), status="candidate", parent="gen_000", metrics={"gsm8k_val.format_rate": 0.9})
    path = lineage_tb.write(lin.path)
    path = lineage_tb.write(lin.path)  # rewritten whole: no duplicate points
    assert path == lin.path / "tensorboard" / "lineage" and len(list(path.iterdir())) == 1
    acc = EventAccumulator(str(path))
    acc.Reload()
    got = lambda t: [(e.step, round(e.value, 6)) for e in acc.Scalars(t)]  # noqa: E731
    assert got("eval/gsm8k_val.format_rate") == [(0, 0.2), (1, 0.5), (2, 0.4)]  # the candidate row is not a point
    assert got("eval/gsm8k_val.format_rate/ci_lo") == [(0, 0.1), (1, 0.4), (2, 0.3)]
    assert got("drift/drift.kl_to_gen0")[-1] == (2, 0.02) and got("train/train.steps")[1] == (1, 40.0)
    assert got("status/promoted") == [(0, 1.0), (1, 1.0), (2, 0.0)]
    assert "eval/gsm8k_val.format_rate_n" not in acc.Tags()["scalars"]
    layout = lineage_tb.layout(lineage_tb.scalars(lin.rows()))
    assert layout["eval"]["gsm8k_val.format_rate"] == ["Margin", ["eval/gsm8k_val.format_rate",
                                                                  "eval/gsm8k_val.format_rate/ci_lo",
                                                                  "eval/gsm8k_val.format_rate/ci_hi"]]
    assert json.dumps(layout)  # plain data
