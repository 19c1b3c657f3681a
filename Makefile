# copier-modal-jobs: `make demo` runs the main job offline, `make test` every test but the PyTorch ones (`make test-torch`).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# uv comes from PATH, or is installed into .tools/ with the machine's python3 (no root needed).
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
export UV
# uv uses the system certificate store (corporate proxies, custom CAs), as pip does here; uv before 0.11
# only knows the older name of the setting, which newer uv warns about on every call.
export UV_SYSTEM_CERTS ?= 1
ifneq ($(filter $(foreach minor,0 1 2 3 4 5 6 7 8 9 10,0.$(minor).%),$(word 2,$(shell $(UV) --version 2>/dev/null))),)
export UV_NATIVE_TLS ?= $(UV_SYSTEM_CERTS)
endif

.PHONY: help dev demo test lint bench bench-gpu bench-sweep docs clean releases-bundle

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet uv

.venv/.synced: pyproject.toml emulator/pyproject.toml | $(UV)
	@# byte-compiled once here: test processes start faster where PYTHONDONTWRITEBYTECODE is set
	$(UV) sync --quiet --compile-bytecode
	touch $@

dev: .venv/.synced ## Create the dev environment (.venv, with uv)

demo: dev ## Render a project and run the whole deploy -> spawn -> wait -> results flow offline
	$(UV) run python -m tests.demo

# The tests mostly wait on subprocesses (uv, copier, the emulator, the modal CLI): three workers
# keep two cores busy. --dist loadfile keeps each file's shared project/emulator in one worker.
TEST_WORKERS ?= 3

test: dev ## Lint, then the tests: template renders, generated projects, emulator, end to end (torch: test-torch)
	$(UV) run ruff check .
	$(UV) run pytest -n $(TEST_WORKERS) --dist loadfile

lint: dev ## Lint the template repo
	$(UV) run ruff check .
	$(UV) run ruff format --check .

bench: dev ## Emulator benchmarks
	$(UV) run python bench/bench_emulator.py
	$(UV) run python bench/bench_store.py
	$(UV) run python bench/bench_cpu.py

# A Python with CUDA torch (the dev venv has no torch: there the benchmark says so and measures nothing).
BENCH_PYTHON ?= $(CURDIR)/.venv/bin/python

bench-gpu: dev ## GPU benchmark of the pytorch example: tokens/s and MFU per preset (BENCH_PYTHON=python with CUDA torch)
	$(BENCH_PYTHON) bench/bench_torch.py $(ARGS)

bench-sweep: dev ## A 1,000-task sweep through a generated project at 50 ms RTT vs a sequential spawn loop
	$(UV) run python bench/bench_sweep.py $(ARGS)

docs: dev ## Build the documentation site into site/
	NO_MKDOCS_2_WARNING=1 $(UV) run mkdocs build --strict --quiet

releases-bundle: dev ## After tagging a release: record every v* tag in tests/releases.bundle (the update tests read it)
	$(UV) run python -m tests.repo

clean: ## Remove local environments and caches
	rm -rf .venv .venv-torch .tools .pytest_cache .demo site .whl

.PHONY: test-torch
test-torch: dev ## PyTorch workload tests on the CPU, in .venv-torch (pip, torch==2.13.0)
	.ci/test-torch
