"""Studies: several whole lineages, arms x seeds, run under one name and compared with their uncertainty.

    make study STUDY=seeds ARGS="model=tiny:qwen3 experiment=smoke generations=2"
    python -m pipeline.loop.study study=accumulate experiment=gpu generations=3 study.seeds=[0,1]
    python -m pipeline.report --compare checkpoints/studies/accumulate

A study (`conf/study/<name>.yaml`: `seeds`, and `arms`, each a list of overrides) runs one lineage
per (arm, seed): `paths.root=<root>/studies/<name>`, `paths.lineage=<name>-<arm>-s<seed>`,
`seed=<seed>`, the arm's overrides after the common ones on the command line. Arguments
`study.<key>=<value>` edit the study itself. Every lineage's config is composed and validated before
any runs. Without devices (a CPU machine) the lineages run one after another in this process; with
devices (CUDA GPUs, or `candidate.devices=N` fake device sets) they run in parallel, one lineage per
slot of `candidate.gpus` devices, each in a fresh child process with CUDA_VISIBLE_DEVICES set: the
device-slot mechanism of the sweeps (`pipeline.infra.devices.claim_slot`, shared lock files, the slot mapped
through this process's CUDA_VISIBLE_DEVICES), child output in `<study>/logs/<lineage>.log`. Inside a
SLURM job the lineages use the job's allocation as given, one after another (no slot claims).
With `study.slurm={...}` (submitit executor parameters; the `slurm` extra) each lineage is its own
SLURM job instead, submitted from this process, which waits for all of them (tests/test_slurm.py).
Re-running a study with `generations=N` continues its lineages up to N (each lineage's run is
idempotent; the default -1 adds one generation per run).

Controls change one thing: before anything runs, each arm's resolved config is compared with the
main arm's (`main:` in the study file, else the first arm) for the same seed; it may differ only in
keys its overrides (or the main arm's) name, a group override naming its file's keys (pipeline.loop.arms;
`paths.*` and `seed` exempt). Otherwise the study refuses, listing the unexpected keys.

`<root>/studies/<name>/study.json` (version 2) records the arms, the main arm, each arm's difference
from it (`differences`: arm -> {key: [main value, arm value]}), seeds, common overrides and every
lineage's dir, status and devices; `pipeline.report.compare` reads it.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List

from omegaconf import OmegaConf

from pipeline.loop import arms
from pipeline.infra import devices
from pipeline.config import ConfigError, check
from pipeline.infra.io import atomic_write_json
from pipeline.infra.locate import conf_dir

log = logging.getLogger(__name__)
STUDY_FILE = "study.json"
VERSION = 2  # 2: `main` and per-arm `differences` from the main arm's resolved config
RESERVED = ("seed=", "paths.root=", "paths.lineage=", "candidate.name=", "sweep=", "hydra.mode=")


@dataclass
class StudyConfig:
    name: str = ""
    seeds: List[int] = field(default_factory=list)
    arms: Dict[str, List[str]] = field(default_factory=dict)  # arm name -> its overrides
    # The arm every other arm is compared with (pipeline.loop.arms, pipeline.report.compare's reference); "" = the first.
    main: str = ""
    # Non-empty: one SLURM job per lineage through submitit (the `slurm` extra), with these executor
    # parameters, e.g. {timeout_min: 60, mem_gb: 2, cpus_per_task: 1, slurm_partition: cpu}.
    slurm: Dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        check(re.fullmatch(r"[A-Za-z0-9_]+", self.name or "") is not None, "study.name", "letters, digits and _ only")
        check(bool(self.seeds) and len(set(self.seeds)) == len(self.seeds), "study.seeds",
               f"{self.seeds!r} must be a non-empty list of distinct seeds")
        check(bool(self.arms), "study.arms", "must name at least one arm")
        for arm, overrides in self.arms.items():
            check(re.fullmatch(r"[A-Za-z0-9_]+", arm) is not None, f"study.arms.{arm}", "letters, digits and _ only")
            bad = [o for o in overrides if o.lstrip("+~").startswith(RESERVED)]
            check(not bad, f"study.arms.{arm}", f"{bad} set what the study sets itself ({', '.join(RESERVED)})")
        check(not self.main or self.main in self.arms, "study.main", f"{self.main!r} is not one of the arms {list(self.arms)}")

    @property
    def main_arm(self) -> str:
        return self.main or next(iter(self.arms))


@dataclass
class Member:
    """One lineage of a study."""

    arm: str
    seed: int
    lineage: str  # paths.lineage
    dir: str  # the lineage directory
    overrides: list[str]
    status: str = "pending"  # pending | running | done | failed
    devices: str | None = None
    error: str | None = None
    slurm_job: str | None = None


def known_studies() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "study").glob("*.yaml"))


def load_study(name: str, edits: list[str] = ()) -> StudyConfig:
    """`conf/study/<name>.yaml` with `study.<key>=<value>` edits applied, validated."""
    path = conf_dir() / "study" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"invalid config value for 'study': no conf/study/{name}.yaml; known: {known_studies()}")
    try:
        node = OmegaConf.merge(OmegaConf.structured(StudyConfig(name=name)), OmegaConf.load(path),
                               OmegaConf.from_dotlist([e.removeprefix("study.") for e in edits]))
        study = OmegaConf.to_object(node)
    except Exception as e:  # OmegaConf names the key and the file's bad value
        raise ConfigError(f"invalid study {path}: {e}") from None
    study.validate()
    return study


def split_args(argv: list[str]) -> tuple[str, list[str], list[str]]:
    """(study name, study.* edits, the common overrides every lineage gets)."""
    names = [a.split("=", 1)[1] for a in argv if a.startswith("study=")]
    check(len(names) == 1, "study", "give exactly one study=<name>; known: " + ", ".join(known_studies()))
    edits = [a for a in argv if a.startswith("study.")]
    common = [a for a in argv if not a.startswith(("study=", "study."))]
    # paths.root may be given: the study's lineages go under <paths.root>/studies/<name>
    per_lineage = tuple(r for r in RESERVED if r != "paths.root=")
    bad = [o for o in common if o.lstrip("+~").startswith(per_lineage)]
    check(not bad, "study", f"{bad} set what the study sets per lineage ({', '.join(per_lineage)})")
    return names[0], edits, common


def plan(study: StudyConfig, common: list[str], root: Path) -> list[Member]:
    """One member per (arm, seed), in arm order then seed order."""
    out = []
    for arm, arm_overrides in study.arms.items():
        for seed in study.seeds:
            lineage = f"{study.name}-{arm}-s{seed}"
            keep = [o for o in common if not o.lstrip("+~").startswith("paths.root=")]
            overrides = [*keep, *arm_overrides, f"seed={seed}", f"paths.root={root}", f"paths.lineage={lineage}"]
            out.append(Member(arm, seed, lineage, str(root / lineage), overrides))
    return out


def arm_differences(study: StudyConfig, members: list[Member], cfgs: list) -> dict[str, dict[str, list]]:
    """Each arm's difference from the main arm, seed by seed; ConfigError (pipeline.loop.arms) when an arm
    differs in a key neither arm's overrides name. arm -> {key: [main value, arm value]} (exempt keys
    left out, so it is the same for every seed; the first seed's is recorded)."""
    main = study.main_arm
    ref = {m.seed: c for m, c in zip(members, cfgs) if m.arm == main}
    out: dict[str, dict[str, list]] = {main: {}}
    for m, c in zip(members, cfgs):
        if m.arm != main:
            d = arms.check_arm(m.arm, main, arms.differences(ref[m.seed], c), study.arms[m.arm], study.arms[main])
            out.setdefault(m.arm, d)
    return out


class Record:
    """`study.json`, rewritten (atomically, under a lock) whenever a member changes."""

    def __init__(self, path: Path, study: StudyConfig, common: list[str], members: list[Member], devices: int,
                 differences: dict[str, dict[str, list]]):
        self.path, self.lock = path, threading.Lock()
        self.data = {"version": VERSION, "study": study.name, "arms": study.arms, "main": study.main_arm,
                     "differences": differences, "seeds": study.seeds, "overrides": common, "devices": devices, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "finished": None}
        self.members = members
        self.write()

    def write(self, **top) -> None:
        with self.lock:
            self.data.update(top)
            atomic_write_json(self.path, {**self.data, "lineages": [asdict(m) for m in self.members]})


def _run_here(m: Member) -> None:
    from pipeline.loop import generation
    from pipeline.config.compose import compose

    generation.run(compose(m.overrides))


def launch(cmd: list[str], env: dict[str, str], log_path: Path) -> int:
    """Run one lineage's child process with its output in `log_path`; its exit status."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as out:
        return subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


def _run_child(m: Member, lock_dir: Path, n: int, per: int, logs: Path, rec: Record) -> None:
    with devices.claimed_env(lock_dir, n, per, poll=1.0) as env:
        m.devices, m.status = env["CUDA_VISIBLE_DEVICES"], "running"
        rec.write()
        log.info("study lineage %s on devices %s", m.lineage, m.devices)
        rc = launch([sys.executable, "-m", "pipeline.loop", *m.overrides], devices.launch_env(env),
                    logs / f"{m.lineage}.log")
        if rc:
            raise RuntimeError(f"exit status {rc}; see {logs / (m.lineage + '.log')}")


def _run_slurm(members: list[Member], params: dict, root: Path, rec: Record) -> None:
    """One SLURM job per lineage (each runs the lineage in-process on its own allocation); waits for all.
    A failed or cancelled job marks its lineage failed; re-running the study resumes it from its manifests."""
    try:
        import submitit
    except ImportError:
        raise ConfigError("invalid config value for 'study.slurm': needs the slurm extra "
                          "(pip install -e '.[slurm]')") from None
    executor = submitit.AutoExecutor(folder=root / "slurm" / "%j", cluster="slurm")
    try:
        executor.update_parameters(name=f"study-{rec.data['study']}", **params)
    except Exception as e:  # submitit names the unknown parameter
        raise ConfigError(f"invalid config value for 'study.slurm': {e}") from None
    jobs = []
    for m in members:
        jobs.append(executor.submit(_run_here, m))
        m.status, m.slurm_job = "running", str(jobs[-1].job_id)
        rec.write()
    for m, j in zip(members, jobs):
        try:
            j.result()
            m.status = "done"
        except Exception as e:  # submitit re-raises the job's error, or reports it failed/cancelled
            log.error("study lineage %s (SLURM job %s) failed: %s", m.lineage, m.slurm_job, e)
            m.status, m.error = "failed", f"{type(e).__name__}: {str(e)[-500:]}"
        rec.write()


def run(argv: list[str]) -> tuple[Path, list[Member]]:
    """Run a study (argv: `study=<name>`, `study.*` edits, common overrides); returns its dir and members."""
    from pipeline import evals
    from pipeline.infra import logs
    from pipeline.config.compose import compose

    name, edits, common = split_args(argv)
    study = load_study(name, edits)
    base = compose(common)  # the common overrides are valid on their own
    logs.configure(base.log.level)
    evals.check_inputs(base)  # the data every lineage reads, before the study's directory exists
    root = Path(base.paths.root).resolve() / "studies" / study.name
    members = plan(study, common, root)
    cfgs = [compose(m.overrides) for m in members]  # every lineage's config is valid before anything runs
    differences = arm_differences(study, members, cfgs)
    n = devices.device_count(base.candidate.devices)
    per = base.candidate.gpus
    parallel = devices.claims_slots(n, per)
    rec = Record(root / STUDY_FILE, study, common, members, n if parallel else 0, differences)
    if study.slurm:
        _run_slurm(members, dict(study.slurm), root, rec)
        rec.write(finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        return root, members

    def one(m: Member) -> None:
        try:
            if parallel:
                _run_child(m, Path(base.paths.root).resolve() / ".gpu_slots", n, per, root / "logs", rec)
            else:
                m.status = "running"
                rec.write()
                _run_here(m)
            m.status = "done"
        except Exception as e:  # one lineage failing leaves the others running; the record says why
            log.error("study lineage %s failed: %s", m.lineage, e)
            m.status, m.error = "failed", f"{type(e).__name__}: {e}"
        rec.write()

    if parallel:
        slots = n // per
        if slots < 1:
            raise ConfigError(f"invalid config value for 'candidate.gpus': {per} per lineage but {n} device(s)")
        with ThreadPoolExecutor(max_workers=slots) as pool:
            list(pool.map(one, members))
    else:
        for m in members:
            one(m)
    rec.write(finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    return root, members


def main(argv: list[str] | None = None) -> int:
    from pipeline.infra import cli
    from pipeline.config.compose import EXPECTED, usage

    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(usage("pipeline.loop.study study=NAME", __doc__, flags=""))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        root, members = run(argv)
    except EXPECTED as e:
        return cli.fail(e)
    failed = [m for m in members if m.status != "done"]
    for m in members:
        print(f"{m.status:7s} {m.arm} seed {m.seed}: {m.dir}" + (f" ({m.error})" if m.error else ""))
    print(f"study record: {root / STUDY_FILE}\ncompare: python -m pipeline.report --compare {root}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
