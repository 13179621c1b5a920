# asrpool — the two commands in README's top (`make run`, `make test`) work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Reinstall when the dependency list changes.
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PORT   ?= 8000
WORKERS ?= 2

.PHONY: run test lint unit integration fuzz k8s k8s-tools images image-tarballs \
	cluster-up cluster-down cluster-status e2e-kind system-deps install clean \
	bench bench-smoke bench-deps

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

## make test: the whole suite (lint, unit, integration, Kubernetes on a real API server, a
## real one-node cluster and Compose). The tools and images are built before pytest starts,
## outside its per-test timeout.
test: install system-deps lint k8s-tools image-tarballs
	$(BIN)/python -m pytest -q -p no:cacheprovider

## make images: build every image (worker, router, operator, pause, CoreDNS) on the local
## Debian base and leave them in the engine: the system's Docker when one answers, else a
## private dockerd under ~/.cache/asrpool/docker (scripts/build-images.sh). A GPU worker:
## `docker build -f worker/Dockerfile .` (CUDA base by default).
images: system-deps
	./scripts/build-images.sh --load

# The images as `docker save` tarballs in ~/.cache/asrpool/images (what the local cluster
# imports); a no-op when they are there.
image-tarballs: system-deps
	./scripts/build-images.sh >/dev/null

## make cluster-up: a one-node Kubernetes cluster on this machine (root; builds what is missing,
## ~30 min the first time, then about a minute). Its last line: export KUBECONFIG=...
CLUSTER ?= local
cluster-up: install system-deps k8s-tools image-tarballs
	@$(BIN)/python -m localcluster up --name $(CLUSTER)

## make cluster-down: stop it and remove every namespace, bridge, rule and cgroup it made
cluster-down: install
	$(BIN)/python -m localcluster down --name $(CLUSTER)

cluster-status: install
	@$(BIN)/python -m localcluster status --name $(CLUSTER)

## make e2e-kind: the tests/cluster suite on a kind cluster (needs kind and docker)
e2e-kind: install k8s-tools image-tarballs
	./scripts/e2e-kind.sh

## make bench: the benchmark harness (bench/harness.py --profile full): installs the peers
## (PyPI, each in its own virtualenv under ~/.cache/asrpool/bench; Debian's wrk, nginx,
## PortAudio), runs every scenario --repeat times (BENCH_ARGS, e.g. "--repeat 5 --scenario
## realtime") and writes docs/BENCHMARKS.md and docs/bench/*.png. Hours on 2 cores. Never
## part of `make test`; its exit status says whether the harness ran, not how fast we are.
## make bench-smoke: the same in a tiny configuration (minutes): proves it all works.
BENCH_STAMP := $(VENV)/.bench-installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
BENCH_ARGS ?=

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	rm -f $(VENV)/.bench-installed-*
	touch $@

bench-deps: $(BENCH_STAMP)
	./scripts/ensure-bench-packages.sh

bench: bench-deps
	$(BIN)/python bench/harness.py --profile full $(BENCH_ARGS)

bench-smoke: bench-deps
	$(BIN)/python bench/harness.py --profile smoke $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
