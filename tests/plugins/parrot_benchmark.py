"""A benchmark registered from outside pipeline/ (`plugins: [tests.plugins.parrot_benchmark]`) whose one
metric is lower-is-better and named like no built-in: `edit_distance`, the Levenshtein distance
between the model's reply and the word it was asked to repeat. Nothing in pipeline/ knows the name;
the capability plot, the model card and the report find it through the registry.
"""

from __future__ import annotations

from pipeline.evals import register_benchmark
from pipeline.evals.base import Benchmark, Protocol
from pipeline.infra.metricspec import MetricSpec

WORDS = ("lantern", "meadow", "quartz", "velvet")
ITEMS = [{"id": f"parrot-{w}", "word": w} for w in WORDS]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions, each costing 1."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def prompts(task, items: list[dict]) -> list[list[dict]]:
    return [[{"role": "user", "content": f"{task.instruction} {it['word']}"}] for it in items]


def score(task, items, prompts, outputs, cfg) -> list[dict]:
    """Per item: the mean distance of its samples' first lines to the word."""
    records = []
    for it, out in zip(items, outputs):
        dist = [edit_distance((t.strip().splitlines() or [""])[0].strip(), it["word"]) for t in out.texts]
        records.append({"word": it["word"], "distance": dist, "correct": dist[0] == 0,
                        "metrics": {"edit_distance": sum(dist) / len(dist)}})
    return records


PARROT = Benchmark(
    name="parrot", title="Parrot",
    splits={"test": lambda: [dict(it) for it in ITEMS]},
    test_splits=frozenset({"test"}), protected_splits=frozenset({"test"}),
    protocols={"chat": Protocol("chat", prompts, description="asks for the word back")},
    metrics=(MetricSpec("edit_distance", "lower", "characters to change to get the word back"),),
    score=score, decontamination=lambda: [("parrot", it["id"], f"Repeat the word {it['word']}") for it in ITEMS],
    headline={"test": ("edit_distance",)},
)

register_benchmark(PARROT)
