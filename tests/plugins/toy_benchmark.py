"""A toy benchmark registered from outside pipeline/, as a plugin would (`plugins: [tests.plugins.toy_benchmark]`).

Sums of two digits. It has its own loader, a lower-is-better metric (`error_rate`), a protocol with a
stop string, a test split and a protected non-test split (`holdout`), and decontamination texts.
"""

from __future__ import annotations

from pipeline.evals import register_benchmark
from pipeline.evals.base import Benchmark, Protocol
from pipeline.infra.metricspec import MetricSpec

STOP = "</answer>"
ITEMS = [{"id": f"toy-{a}-{b}", "question": f"What is {a} plus {b}, counted in purple marbles on a windy toy day?",
          "answer": str(a + b)} for a in range(3) for b in range(3)]


def load(split: str) -> list[dict]:
    """test: the first six items; holdout: the rest (protected, never trained on, not reported)."""
    return [dict(it) for it in (ITEMS[:6] if split == "test" else ITEMS[6:])]


def prompts(task, items: list[dict]) -> list[list[dict]]:
    return [[{"role": "user", "content": f"{task.instruction} {it['question']} <answer>"}] for it in items]


def score(task, items, prompts, outputs, cfg) -> list[dict]:
    records = []
    for it, out in zip(items, outputs):
        wrong = [t.strip() != it["answer"] for t in out.texts]
        records.append({"answer": it["answer"], "correct": not wrong[0],
                        "metrics": {"error_rate": sum(wrong) / len(wrong)}})
    return records


TOY = Benchmark(
    name="toy", title="Toy",
    splits={"test": lambda: load("test"), "holdout": lambda: load("holdout")},
    test_splits=frozenset({"test"}), protected_splits=frozenset({"test", "holdout"}),
    protocols={"chat": Protocol("chat", prompts, stop=(STOP,), description="the question, then an open <answer> tag")},
    metrics=(MetricSpec("error_rate", "lower", "share of samples with a wrong sum"),),
    score=score, decontamination=lambda: [("toy", it["id"], it["question"]) for it in ITEMS],
    headline={"test": ("error_rate",)},
)

register_benchmark(TOY)
