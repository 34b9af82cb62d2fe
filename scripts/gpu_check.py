"""The first thing to run on a GPU machine: does every GPU path of the pipeline work here?

    make gpu-check                        # = python scripts/gpu_check.py   (at most 10 minutes)
    python scripts/gpu_check.py --only vllm-engine,sleep-wake
    python scripts/gpu_check.py --dry-run # on CPU: the checks that need no GPU, the rest listed as SKIP

Checks, in order (on the tiny random model tiny:qwen3, so they take seconds each): CUDA is visible;
the vLLM CUDA engine generates; one bf16 training step changes the weights; DDP on 2 GPUs (torchrun,
NCCL) agrees across ranks; a tensor-parallel engine (2 GPUs) generates; replicas (one engine process
per GPU) give one engine's greedy outputs in order; vLLM sleeps (frees GPU memory) and wakes; a
one-generation smoke run of the whole loop finishes. Each prints PASS, FAIL (with the error) or SKIP
(with why); the exit status is 1 when any check failed. Everything past the deadline is FAIL/SKIP.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: this checkout's pipeline
    sys.path.insert(0, str(ROOT))
MODEL = "tiny:qwen3"  # 2 KV heads: tensor_parallel_size 2 is valid
DEADLINE_S = 600
SMOKE_TIMEOUT_S = 300
PROMPTS = ["Once upon a time", "The capital of France is", "def add(a, b):", "1, 2, 3,"]


class Skip(Exception):
    """A check that cannot run here (and says why)."""


@dataclass
class Env:
    dry_run: bool
    gpus: int
    model_dir: Path

    def need_gpus(self, n: int) -> None:
        if self.dry_run:
            raise Skip("dry run (needs a GPU)")
        if self.gpus < n:
            raise Skip(f"needs {n} GPU(s), {self.gpus} visible")


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Env], str]  # returns a one-line detail; raises Skip or any error (= FAIL)
    what: str


def engine_cfg(*overrides: str):
    from pipeline.config.compose import compose

    return compose([f"model={MODEL}", "experiment=smoke", "engine.backend=vllm", "engine.gpu_memory_utilization=0.3",
                    *overrides])


def greedy(eng) -> list[list[str]]:
    from pipeline.engine import GenParams

    return [o.texts for o in eng.generate(PROMPTS, GenParams(max_tokens=8))]


def check_cuda(env: Env) -> str:
    env.need_gpus(1)
    import torch

    names = {torch.cuda.get_device_name(i) for i in range(env.gpus)}
    return f"{env.gpus} GPU(s): {', '.join(sorted(names))}; torch {torch.__version__}, CUDA {torch.version.cuda}"


def check_engine_plan(env: Env) -> str:
    """The sizing the loop would use here (runs everywhere: no engine is started)."""
    from pipeline.engine import parallel

    p = parallel.plan(env.model_dir, engine_cfg().engine)
    return f"tensor_parallel_size={p.tensor_parallel_size}, replicas={p.replicas}, device sets {list(p.device_sets)}"


def check_vllm_engine(env: Env) -> str:
    env.need_gpus(1)
    from pipeline.engine import VLLMEngine, open_engine

    cfg = engine_cfg("engine.devices=1")
    with open_engine(env.model_dir, cfg.model, cfg.engine) as eng:
        assert isinstance(eng, VLLMEngine), f"got {type(eng).__name__}"
        outs = greedy(eng)
        assert greedy(eng) == outs, "greedy outputs differ between two calls"
        return f"{eng.stats.completion_tokens} tokens, {eng.stats.tokens_per_s:.0f} tokens/s"


def train_step(device: str, dtype_name: str, model_dir: Path) -> float:
    """One optimizer step on the tiny model; returns the loss and asserts the weights moved."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype_name)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, model.config.vocab_size, (2, 32), device=device)
    before = [p.detach().clone() for p in model.parameters()]
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    assert torch.isfinite(loss), f"loss {loss.item()}"
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "no weight changed"
    return loss.item()


def check_bf16_step(env: Env) -> str:
    if env.dry_run:  # the same step on CPU: the code path, not the GPU
        return f"CPU bf16 step, loss {train_step('cpu', 'bfloat16', env.model_dir):.3f}"
    env.need_gpus(1)
    return f"loss {train_step('cuda', 'bfloat16', env.model_dir):.3f}"


def ddp_worker(model_dir: Path) -> None:
    """Run under torchrun: one DDP step per rank; the ranks' weights must agree afterwards."""
    import torch
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM

    dist.init_process_group("nccl")
    rank = dist.get_rank()
    torch.cuda.set_device(rank)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.bfloat16).cuda()
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank])
    opt = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
    torch.manual_seed(rank)  # different data per rank
    ids = torch.randint(0, model.config.vocab_size, (2, 32), device="cuda")
    ddp(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    w = next(model.parameters()).detach().float().sum()
    ws = [torch.zeros_like(w) for _ in range(dist.get_world_size())]
    dist.all_gather(ws, w)
    assert all(torch.equal(ws[0], x) for x in ws), f"ranks disagree after a DDP step: {ws}"
    dist.destroy_process_group()


def check_ddp(env: Env) -> str:
    env.need_gpus(2)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(Path(__file__).resolve()),
           "--ddp-worker"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, f"torchrun exited {proc.returncode}: {proc.stderr[-1500:]}"
    return "2 ranks, NCCL, weights agree after one step"


def check_tensor_parallel(env: Env) -> str:
    env.need_gpus(2)
    from pipeline.engine import VLLMEngine, open_engine

    cfg = engine_cfg("engine.tensor_parallel_size=2", "engine.replicas=1")
    with open_engine(env.model_dir, cfg.model, cfg.engine) as eng:
        assert isinstance(eng, VLLMEngine)
        outs = greedy(eng)
        assert all(t and t[0] is not None for t in outs) and eng.stats.completion_tokens > 0
        return f"tensor_parallel_size=2: {eng.stats.completion_tokens} tokens"


def check_replicas(env: Env) -> str:
    env.need_gpus(2)
    from pipeline.engine import ReplicatedEngine, open_engine

    single = engine_cfg("engine.devices=1")
    with open_engine(env.model_dir, single.model, single.engine) as eng:
        expected = greedy(eng)
    cfg = engine_cfg("engine.devices=2")
    with open_engine(env.model_dir, cfg.model, cfg.engine) as eng:
        assert isinstance(eng, ReplicatedEngine), f"got {type(eng).__name__}"
        got = greedy(eng)
        assert all(n > 0 for n in eng.shard_prompts), f"a replica got no prompts: {eng.shard_prompts}"
        pids = eng.pids
    same = sum(a == b for a, b in zip(got, expected))
    # bf16 kernels may break a near-tie differently in another batch; most prompts must agree
    assert same >= len(PROMPTS) - 1, f"only {same}/{len(PROMPTS)} greedy outputs equal one engine's"
    return f"2 replicas (pids {pids}), {same}/{len(PROMPTS)} outputs equal one engine's, in order"


def check_sleep_wake(env: Env) -> str:
    env.need_gpus(1)
    import torch

    from pipeline.engine import open_engine

    cfg = engine_cfg("engine.devices=1", "engine.sleep=true")
    with open_engine(env.model_dir, cfg.model, cfg.engine) as eng:
        before = greedy(eng)
        free_awake = torch.cuda.mem_get_info(0)[0]
        assert eng.sleep(), "the engine did not go to sleep (engine.sleep on CUDA)"
        free_asleep = torch.cuda.mem_get_info(0)[0]
        eng.wake()
        after = greedy(eng)
    assert free_asleep > free_awake, "sleep freed no GPU memory"
    assert after == before, "greedy outputs changed across sleep/wake"
    return f"sleep freed {(free_asleep - free_awake) / 2**30:.1f} GiB; outputs equal after wake"


def check_smoke_generation(env: Env) -> str:
    env.need_gpus(1)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pipeline.loop", f"model={MODEL}", "experiment=smoke", "generations=1",
               f"paths.root={tmp}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S, cwd=ROOT)
        assert proc.returncode == 0, f"exited {proc.returncode}: {proc.stderr[-1500:]}"
        assert list(Path(tmp).glob("*/gen_001/gate/manifest.json")), "no gen_001/gate manifest"
    return "one generation of the smoke profile finished"


CHECKS = [
    Check("cuda", check_cuda, "CUDA visible to torch"),
    Check("engine-plan", check_engine_plan, "engine sizing (tensor parallel, replicas) on this node"),
    Check("vllm-engine", check_vllm_engine, "vLLM CUDA engine generates, greedy is deterministic"),
    Check("bf16-train-step", check_bf16_step, "one bf16 optimizer step changes the weights"),
    Check("ddp", check_ddp, "DDP on 2 GPUs with torchrun/NCCL"),
    Check("tensor-parallel", check_tensor_parallel, "vLLM tensor_parallel_size=2"),
    Check("replicas", check_replicas, "one engine process per GPU, outputs in order"),
    Check("sleep-wake", check_sleep_wake, "vLLM sleep frees GPU memory, wake restores the engine"),
    Check("smoke-generation", check_smoke_generation, "a one-generation smoke run of the loop"),
]


def run_checks(checks: list[Check], env: Env, deadline_s: float, out=print) -> dict[str, str]:
    """Run `checks` in order; returns name -> PASS|FAIL|SKIP. Past the deadline the rest are SKIP."""
    def alarm(*_):
        raise TimeoutError(f"gpu-check deadline of {deadline_s:.0f}s reached")

    end = time.monotonic() + deadline_s
    results: dict[str, str] = {}
    old = signal.signal(signal.SIGALRM, alarm)
    try:
        for c in checks:
            left = end - time.monotonic()
            if left <= 0:
                results[c.name] = "SKIP"
                out(f"SKIP  {c.name:18s} out of time")
                continue
            signal.setitimer(signal.ITIMER_REAL, left)
            t0 = time.monotonic()
            try:
                detail = c.run(env)
                status = "PASS"
            except Skip as e:
                status, detail = "SKIP", str(e)
            except BaseException as e:  # noqa: BLE001 - every failure is reported, the rest still run
                if isinstance(e, KeyboardInterrupt):
                    raise
                status, detail = "FAIL", f"{type(e).__name__}: {e}"
                traceback.print_exc(file=sys.stderr)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            results[c.name] = status
            out(f"{status:5s} {c.name:18s} {detail} ({time.monotonic() - t0:.1f}s)")
    finally:
        signal.signal(signal.SIGALRM, old)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="run only what needs no GPU (on CPU); list the rest")
    ap.add_argument("--only", default="", help=f"comma-separated checks: {', '.join(c.name for c in CHECKS)}")
    ap.add_argument("--deadline", type=float, default=DEADLINE_S, help="seconds for all checks together")
    ap.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    known = {c.name for c in CHECKS}
    unknown = [n for n in args.only.split(",") if n and n not in known]
    if unknown:
        ap.error(f"unknown check(s) {unknown}; known: {sorted(known)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from pipeline.engine.models import resolve

    model_dir = resolve(MODEL)
    if args.ddp_worker:
        ddp_worker(model_dir)
        return 0
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() and not args.dry_run else 0
    only = [n for n in args.only.split(",") if n]
    checks = [c for c in CHECKS if not only or c.name in only]
    print(f"gpu-check: {len(checks)} check(s), {gpus} GPU(s){' (dry run)' if args.dry_run else ''}, model {MODEL}")
    results = run_checks(checks, Env(args.dry_run, gpus, model_dir), args.deadline)
    counts = {s: sum(v == s for v in results.values()) for s in ("PASS", "FAIL", "SKIP")}
    print("gpu-check: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
