# asrpool — the two commands in README's top (`make run`, `make test`) work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Reinstall when the dependency list changes.
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PORT   ?= 8000
WORKERS ?= 2

.PHONY: run test lint unit integration fuzz k8s k8s-tools images system-deps install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

## make run: the embedded local pool (workers + router) on :$(PORT)
run: install
	$(BIN)/asrpool local --workers $(WORKERS) --port $(PORT)

system-deps:
	./scripts/ensure-system-packages.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: install
	$(BIN)/python -m pytest tests/unit -q

integration: install system-deps
	$(BIN)/python -m pytest tests/integration -q

## make fuzz: the parsers fuzzed for longer than make test does (FUZZ_SECONDS a target under
## atheris, FUZZ_EXAMPLES hypothesis examples a test); the grown corpus stays in .fuzz/
FUZZ_SECONDS ?= 60
FUZZ_EXAMPLES ?= 20000
fuzz: install
	ASRPOOL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider \
		--timeout=0 tests/fuzz/test_parsers.py
	ASRPOOL_ATHERIS_SECONDS=$(FUZZ_SECONDS) ASRPOOL_FUZZ_CORPUS_DIR=$(CURDIR)/.fuzz \
		$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=0 tests/fuzz/test_atheris.py

## make k8s-tools: kube-apiserver, etcd, kubectl, helm built from the Go module proxy into
## ~/.cache/asrpool/k8s/<version>/bin (once per machine: ~15 min cold, then instant)
k8s-tools:
	./scripts/build-k8s-tools.sh >/dev/null

k8s: install k8s-tools
	$(BIN)/python -m pytest tests/k8s -q

## make test: the whole suite (lint, unit, integration, Kubernetes on a real API server)
# The tools are built before pytest starts, outside its per-test timeout.
test: install system-deps lint k8s-tools
	$(BIN)/python -m pytest -q -p no:cacheprovider

## make images: the worker, router and operator images (where a Docker engine runs)
IMAGE_TAG ?= 0.1.0
images:
	docker build -f worker/Dockerfile -t ghcr.io/asrpool/worker:$(IMAGE_TAG) .
	docker build -f router/Dockerfile -t ghcr.io/asrpool/router:$(IMAGE_TAG) .
	docker build -f operator/Dockerfile -t ghcr.io/asrpool/operator:$(IMAGE_TAG) .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
