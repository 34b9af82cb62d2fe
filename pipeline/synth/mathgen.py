"""Math synthesis: the teacher writes GSM8K-style problems, solves each k times, self-consistency keeps them.

Steps (the stage batches each one into a single engine call):
1. `problem_prompts`: one chat prompt per candidate, with `few_shot` exemplar problems drawn (seeded)
   from the GSM8K-train `exemplars` slice only (`train_slice`), plus a seeded topic and structure cue so candidates differ.
2. `parse_problem`: the problem statement out of the teacher's text, or a rejection reason
   (non_utf8, huge, truncated, malformed, too_short).
3. `solve_prompts`: each problem, with `few_shot_solve` worked GSM8K-train exemplars as earlier
   chat turns, asking for reasoning that ends in `#### N`; sampled k times.
4. `vote`: answers are extracted with the eval's own checker (`checker()`, the GSM8K eval's: strict
   `#### N` first, flexible last-number second); the majority answer is kept when its share of all
   k samples reaches `agreement_threshold` and at least two samples agree (one sample cannot agree
   with itself), and there is no tie. Up to m distinct agreeing solutions are kept (RFT), each
   ending in `#### N`; disagreeing valid samples become DPO "rejected" sides.
5. optional program-of-thought check (`pot_prompts`, `pot_agrees`): a Python program that prints
   the answer, run in the sandbox, must print the majority answer.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from pipeline.evals import modelled_on
from pipeline.synth.parsing import code_blocks, output_problem
from pipeline.synth.textnorm import key

PROBLEM_HEADER = "Here are some grade-school math word problems:"
SOLVE_HEADER = "Solve the math problem step by step. End with a final line of the form '#### <number>'."
POT_HEADER = "Write a short Python program that computes the answer to this math problem and prints only the final number."

TOPICS = (
    "a bakery", "a school trip", "a garden", "saving money", "a sports team", "a farm", "a road trip",
    "a library", "a birthday party", "a toy store", "cooking a recipe", "a lemonade stand", "a zoo",
    "building a fence", "a music band", "painting a house", "a bike ride", "a fish tank", "a book fair",
    "a bus schedule", "buying school supplies", "a pizza order", "a science project", "a charity run",
    "a movie theater", "a vegetable market", "a swimming pool", "a card collection", "a hiking trail",
    "a coffee shop", "recycling bottles", "a knitting project", "a car wash fundraiser", "a chess club",
)
STRUCTURES = (
    "It should take two steps to solve.", "It should take three steps to solve.",
    "It should involve a percentage.", "It should involve a fraction of a quantity.",
    "It should compare two people's amounts.", "It should involve a rate per hour or per day.",
    "It should involve money and change.", "It should involve multiplication and subtraction.",
    "It should involve a total split equally among several people.", "It should involve units of time.",
)
_LABEL = re.compile(r"^\s*(?:\*\*)?(?:new\s+)?(?:math\s+)?(?:word\s+)?(?:problem|question)\s*\d*\s*[:.)]?(?:\*\*)?\s*", re.I)
_INNER_LABEL = re.compile(r"(?:new\s+)?(?:math\s+)?(?:word\s+)?problem\s*\d*\s*:", re.I)
_END = re.compile(r"\n\s*(?:\*\*)?(?:solution|answer|step\s*1|explanation|####|problem\s*\d|question\s*\d|note)\b", re.I)


DOMAIN = "math"  # modelled on the registered benchmark declaring this domain (pipeline.evals.modelled_on)


def checker():
    """The answer checker of the benchmark this domain is modelled on (one checker for eval and
    data): `extract_strict`, `extract_flexible`, `normalize_number`, `reference_number`,
    `is_correct`, `exemplar_answer`, `final_answer`, `build_prompt`."""
    return modelled_on(DOMAIN).checker


def title() -> str:
    """The title of the benchmark this domain is modelled on, for messages ("GSM8K")."""
    return modelled_on(DOMAIN).title


def train_slice(name: str) -> list[dict]:
    """Rows `{id, question, answer}` of one train slice of that benchmark (`exemplars`, `pool`,
    `verifier`, or `train`: all of train its eval does not hold out)."""
    b = modelled_on(DOMAIN)
    if name not in b.train_slices:
        raise ValueError(f"{b.title} declares no train slice {name!r}; it has {sorted(b.train_slices)}")
    return b.train_slices[name]()


def clean_reference(answer: str) -> str:
    """A GSM8K reference answer without its `<<calc>>` annotations, ending in `#### N` (the eval's
    own exemplar format)."""
    return checker().exemplar_answer(answer)


def problem_prompts(n: int, few_shot: int, seed: int, train: list[dict] | None = None) -> list[dict]:
    """`n` seeded problem-writing requests: {"messages", "topic", "structure", "exemplars"}."""
    train = train if train is not None else train_slice("exemplars")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ex = rng.sample(train, min(few_shot, len(train)))
        topic, structure = rng.choice(TOPICS), rng.choice(STRUCTURES)
        shots = "\n\n".join(f"Problem: {r['question'].strip()}" for r in ex)
        text = (f"{PROBLEM_HEADER}\n\n{shots}\n\nWrite one new problem like these about {topic}. {structure} "
                "Its answer must be a single whole number. Write only the problem, without the solution.")
        out.append({"messages": [{"role": "user", "content": text}], "topic": topic, "structure": structure,
                    "exemplars": [r["id"] for r in ex]})
    return out


def pool_count(source: str, n_problems: int) -> int:
    """How many of the `n_problems` come from the GSM8K-train pool (synth.math.source), the rest are written."""
    return {"teacher": 0, "pool": n_problems, "mixed": n_problems // 2}[source]


def pool_questions(n: int, seed: int, pool: list[dict] | None = None) -> list[dict]:
    """`n` seeded GSM8K-train `pool` rows as {"id", "question"}: the reference answers are never read,
    the label comes from the teacher's own self-consistency vote, as for written problems."""
    pool = pool if pool is not None else train_slice("pool")
    picked = random.Random(seed).sample(range(len(pool)), min(n, len(pool)))
    return [{"id": pool[i]["id"], "question": pool[i]["question"].strip()} for i in picked]


def parse_problem(text: str, finish: str, min_words: int, max_chars: int) -> tuple[str | None, str]:
    """(problem, "ok") or (None, reason)."""
    bad = output_problem(text, finish, max_chars)
    if bad:
        return None, bad
    t = text.strip()
    q = t.find("?")
    labels = list(_INNER_LABEL.finditer(t, 0, q if q >= 0 else len(t)))
    if labels:  # "Sure, here it is: Problem: ..." -> start at the last label before the question
        t = t[labels[-1].end():]
    t = _LABEL.sub("", t)
    m = _END.search(t)
    if m:
        t = t[:m.start()]
    t = re.sub(r"\s+", " ", t.replace("**", "")).strip().strip('"').strip()
    if "?" not in t:  # cut by max_tokens before the question: incomplete; otherwise no question at all
        return None, "truncated" if finish == "length" and not m else "malformed"
    t = t[:t.find("?") + 1]  # a GSM8K problem ends with its one question; drop what follows
    if len(t.split()) < min_words:
        return None, "too_short"
    if not re.search(r"\d", t):
        return None, "malformed"
    return t, "ok"


def solve_prompts(problems: list[str], few_shot_solve: int, seed: int, train: list[dict] | None = None) -> list[list]:
    """Chat prompts asking for step-by-step solutions ending in `#### N` (same exemplars for all)."""
    train = train if train is not None else train_slice("exemplars")
    ex = random.Random(seed + 1).sample(train, min(few_shot_solve, len(train)))
    shots: list[dict] = []
    for r in ex:
        shots += [{"role": "user", "content": f"{SOLVE_HEADER}\n\n{r['question'].strip()}"},
                  {"role": "assistant", "content": clean_reference(r["answer"])}]
    return [shots + [{"role": "user", "content": f"{SOLVE_HEADER}\n\n{p}"}] for p in problems]


def sample_answer(text: str, finish: str, max_chars: int) -> tuple[str | None, str, str]:
    """(normalized answer or None, solution text trimmed after its `#### N` line, reason)."""
    bad = output_problem(text, finish, max_chars)
    if bad:
        return None, text, bad
    g = checker()
    strict = g.normalize_number(g.extract_strict(text))
    if strict is not None:
        m = re.search(r"####\s*\S+", text)
        if m:  # rambling after the marker is dropped
            return strict, text[:m.end()].strip(), "strict"
        return strict, f"{text.strip()}\n#### {strict}", "strict"  # "The answer is N": add the marker
    if finish == "length":
        return None, text, "truncated"
    flex = g.extract_flexible(text)
    if flex is None:
        return None, text, "no_answer"
    flex = g.normalize_number(flex)
    return flex, f"{text.strip()}\n#### {flex}" if flex is not None else text, "flexible"


def vote(texts: list[str], finishes: list[str], threshold: float, m: int, max_chars: int) -> dict:
    """Self-consistency over k samples of one problem (see module doc)."""
    k = len(texts)
    samples = [sample_answer(t, f, max_chars) for t, f in zip(texts, finishes)]
    answers = [a for a, _, _ in samples if a is not None]
    counts = Counter(answers)
    top = counts.most_common(2)
    res = {"k": k, "answers": [a for a, _, _ in samples], "sample_reasons": [r for _, _, r in samples],
           "majority": None, "agreement": 0.0, "kept": False, "reason": "no_answer", "correct": [], "incorrect": []}
    if not top:
        return res
    majority, c = top[0]
    res.update(majority=majority, agreement=c / k)
    if c / k < threshold or c < min(2, k):
        res["reason"] = "low_agreement"
        return res
    if len(top) > 1 and top[1][1] == c:
        res["reason"] = "tie"
        return res
    g = checker()
    seen: set[str] = set()
    for a, sol, how in samples:
        if a is None:
            continue
        if g.is_correct(a, majority):
            kk = key(sol)
            if kk not in seen and len(res["correct"]) < m:
                seen.add(kk)
                res["correct"].append(sol)
        else:
            res["incorrect"].append(sol)
    res.update(kept=True, reason="ok")
    return res


def pot_prompts(problems: list[str]) -> list[list]:
    return [[{"role": "user", "content": f"{POT_HEADER}\n\n{p}"}] for p in problems]


def pot_program(text: str) -> str | None:
    """The Python code in a program-of-thought answer (fenced or bare), or None."""
    blocks = code_blocks(text)
    code = "\n\n".join(blocks) if blocks else text
    return code if "print" in code else None


def pot_agrees(stdout: str, majority: str) -> bool:
    g = checker()
    lines = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    if not lines:
        return False
    got = g.extract_flexible(lines[-1])
    return got is not None and g.is_correct(g.normalize_number(got), majority)
