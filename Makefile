# vnode's two set-up commands are `make up` and `make test`; everything else here serves them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: help venv binaries kubectl-matrix browser up down status lint format test fuzz bench soak golden-update docs clean

help:
	@echo "make up      start the local playground (state in .vnode/, kubeconfig .vnode/kubeconfig)"
	@echo "make down    stop it"
	@echo "make test    lint and run the whole suite against a real control plane"
	@echo "make fuzz    the fuzz tests (tests/fuzz/) with many more random examples than make test's fixed seed"
	@echo "make bench   run the benchmarks and rewrite docs/benchmarks.md"
	@echo "make soak    the chaos soak (5,000 pods, 3 nodes, 30 min, every fault; SOAK_ARGS='--pods N --nodes N --minutes M --seed S') and rewrite docs/reliability.md"
	@echo "make lint    ruff format check, ruff lint, mypy strict"
	@echo "make golden-update   rewrite the simulated cloud's golden lifecycle traces"
	@echo "make docs    regenerate docs/configuration.md"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# Kubernetes and etcd from their Go modules, cached outside the repo by version (vnode/cluster/build.py).
binaries: $(STAMP)
	$(BIN)/python -m vnode.cluster.build --tools
	@ln -sf "$$($(BIN)/python -m vnode.cluster.build --print-dir)/kubectl" $(BIN)/kubectl

# The older kubectl releases of the compatibility matrix (tests/kubelet/test_kubectl_matrix.py), built once:
# before pytest, since a cold build takes longer than one test may.
kubectl-matrix: $(STAMP)
	$(BIN)/python -m vnode.cluster.kubectl_build

# Debian's Chromium, for the simulator console's browser test; installed only when missing.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium" >&2; exit 1; fi; }

up: binaries
	$(BIN)/vnode playground up

down:
	@if [ -x $(BIN)/vnode ]; then $(BIN)/vnode playground down; else echo "nothing to stop (no .venv)"; fi

status: venv
	$(BIN)/vnode playground status

format: venv
	$(BIN)/ruff format vnode tests bench soak
	$(BIN)/ruff check --fix vnode tests bench soak

lint: venv
	$(BIN)/ruff format --check vnode tests bench soak
	$(BIN)/ruff check vnode tests bench soak
	$(BIN)/mypy

test: lint binaries kubectl-matrix browser
	$(BIN)/pytest $(PYTEST_ARGS)

# The fuzz tests of tests/fuzz/ (hypothesis), long and with a random seed; `make test` runs them short and
# with a fixed seed (the "ci" profile of tests/fuzz/conftest.py). A failure is kept in .hypothesis/ and replayed first.
fuzz: venv
	VNODE_FUZZ_PROFILE=long $(BIN)/pytest -q tests/fuzz $(PYTEST_ARGS)

# virtual-kubelet's mock provider, the benchmark's peer, is built first (once, 3 minutes cold): not timed as a benchmark.
bench: binaries
	$(BIN)/python -m vnode.cluster.build --vk-mock >/dev/null
	$(BIN)/python -m bench $(BENCH_ARGS)

# The chaos soak (soak/): exits non-zero naming every violated invariant; `make test` runs a short one.
soak: binaries
	$(BIN)/python -m soak $(SOAK_ARGS)

# Regenerate docs/configuration.md from the parsers and settings (a test fails while it is stale).
docs: venv
	$(BIN)/python -m vnode.reference

# Rewrite the simulated cloud's golden lifecycle traces (tests/cloudsim/golden/) after a deliberate change.
golden-update: venv
	VNODE_GOLDEN_UPDATE=1 $(BIN)/pytest -q tests/cloudsim/test_golden.py

clean: down
	rm -rf .vnode .mypy_cache .ruff_cache .pytest_cache .hypothesis

# virtual-kubelet's importable e2e suite (Go module tests/vke2e, built once and cached by version)
# against `vnode run --provider eci` on the simulator; also part of `make test` (docs/kubelet-api.md).
.PHONY: e2e-vk
e2e-vk: binaries
	$(BIN)/pytest -q tests/vke2e $(PYTEST_ARGS)
