"""Every command in the README and docs/ names something real, and every main-job, sweep and study
command composes and validates (GPU and SLURM ones included: composing needs no GPU or cluster).

Running each command as written is what the slow e2e tests do for the CPU paths (`make generation`
takes 25 minutes); here each command line is checked the way `--cfg job` would check it: the Makefile
target exists, the module exists, and the overrides compose into a valid config.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from pipeline.config.compose import compose
from pipeline.loop import study

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAKE_TARGETS = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))
LOOP_TARGETS = {"generation", "generations", "sweep", "study"}


def command_lines() -> list[tuple[str, str]]:
    """(file:line, command) for every command in a ```bash block, continuation lines joined."""
    out = []
    for doc in DOCS:
        in_block, pending, start = False, "", 0
        for i, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                in_block = line.strip() == "```bash"
                continue
            if not in_block:
                continue
            code = re.sub(r"\s+#.*$", "", line).strip()
            if not pending:
                start = i
            if code.endswith("\\"):
                pending += code[:-1] + " "
                continue
            code, pending = pending + code, ""
            if code and not code.startswith("#"):
                out.append((f"{doc.relative_to(ROOT)}:{start}", code))
    return out


def overrides_of(argv: list[str]) -> list[str]:
    """Hydra overrides in an argv: drop flags (`-m`, `--cfg job`) and placeholders like `<...>`."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--cfg", "-c"):
            skip = True
            continue
        if a.startswith("-") or "<" in a or "=" not in a:
            continue
        out.append(a)
    return out


def to_overrides(cmd: str) -> tuple[str, list[str]] | None:
    """The module a command runs and its Hydra overrides, for commands that compose the main config."""
    for part in re.split(r"\s*&&\s*", cmd):
        argv = shlex.split(part)
        if argv[:1] == ["make"] and len(argv) > 1 and argv[1] in LOOP_TARGETS:
            vars_ = dict(a.split("=", 1) for a in argv[2:] if "=" in a and a.split("=", 1)[0].isupper())
            extra = shlex.split(vars_.get("ARGS", ""))
            if argv[1] == "sweep":
                extra = [f"sweep={vars_['SWEEP']}", *extra]
            if argv[1] == "study":
                extra = [f"study={vars_['STUDY']}", *extra]
            if argv[1] == "generations":
                extra = [f"generations={vars_.get('N', 2)}", *extra]
            return argv[1], ["experiment=cpu", *overrides_of(extra)]
        if "-m" in argv and argv[argv.index("-m") + 1:argv.index("-m") + 2] in (["pipeline.loop"], ["pipeline.loop.study"]):
            return argv[argv.index("-m") + 1], overrides_of(argv[argv.index("-m") + 2:])
    return None


COMMANDS = command_lines()


def test_the_readme_has_commands():
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("where,cmd", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_command_names_real_targets_and_modules(where, cmd):
    for part in re.split(r"\s*(?:&&|\|)\s*", cmd):
        argv = shlex.split(part)
        if argv[:1] == ["make"] and len(argv) > 1 and "=" not in argv[1]:
            assert argv[1] in MAKE_TARGETS, f"{where}: no Makefile target {argv[1]!r}"
        if "-m" in argv and argv[0].endswith("python"):
            module = argv[argv.index("-m") + 1]
            if module.startswith("pipeline"):
                assert importlib.util.find_spec(module) is not None, f"{where}: no module {module}"


LOOP_COMMANDS = [(w, c) for w, c in COMMANDS if to_overrides(c)]


@pytest.mark.parametrize("where,cmd", LOOP_COMMANDS, ids=[w for w, _ in LOOP_COMMANDS])
def test_main_job_commands_compose(where, cmd, tmp_path):
    what, overrides = to_overrides(cmd)
    # hydra/launcher=... is Hydra's own group: it does not enter the pipeline's config
    overrides = [o for o in overrides if not o.startswith(("hydra/", "hydra."))]
    if what in ("study", "pipeline.loop.study"):  # the study's own checks: every arm x seed composes
        name, edits, common = study.split_args(overrides)
        spec = study.load_study(name, edits)
        members = study.plan(spec, common, tmp_path)
        study.arm_differences(spec, members, [compose(m.overrides) for m in members])
    elif any(o.startswith("sweep=") for o in overrides):  # a job as the launcher composes it
        compose([*overrides, "candidate.name=j0"])
    else:
        compose(overrides)
