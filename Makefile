# trio-jobsync: every command a developer needs. `make run` and `make test` set themselves up.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup install-servers infra-up infra-down infra-status test test-unit test-integration test-e2e \
        lint run bench docs clean check-deploy deploy-tools soak

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test,dev]'
	@touch $(STAMP)

## setup: the Python environment (pinned by constraints.txt) and the local servers' binaries
setup: $(STAMP) install-servers

install-servers: $(STAMP)
	$(BIN)/python -m services.localinfra install

infra-up: setup
	$(BIN)/python -m services.localinfra up

infra-down: $(STAMP)
	$(BIN)/python -m services.localinfra down

infra-status: $(STAMP)
	$(BIN)/python -m services.localinfra status

## test: the whole suite (unit, integration, e2e, deploy validations) against real servers the fixtures start
test: setup deploy-tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) deploy-tools
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

test-integration: setup
	$(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

test-e2e: setup
	$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

## check-deploy: validate deploy/ offline (compose schema, hadolint, kubernetes schemas, promtool)
check-deploy: $(STAMP)
	bash deploy/check.sh

deploy-tools: $(STAMP)
	bash deploy/check.sh --install-only

lint: $(STAMP)
	$(BIN)/ruff check services tests
	$(BIN)/mypy

## run: the servers and every service, locally, with the simulator as the upstream (Ctrl-C stops all)
run: setup
	$(BIN)/python -m services.operator run $(RUN_ARGS)

## docs: regenerate the README's configuration table from the settings classes
docs: $(STAMP)
	$(BIN)/python -m services.operator config-table --write

## soak: the convergence e2e with more seeds and a bigger scenario, by hand (not part of make test)
soak: setup
	JOBSYNC_E2E_SEEDS=$${JOBSYNC_E2E_SEEDS:-1,2,3,4,5} JOBSYNC_E2E_JOBS=$${JOBSYNC_E2E_JOBS:-1500} \
	JOBSYNC_E2E_STEPS=$${JOBSYNC_E2E_STEPS:-2000} $(BIN)/python -m pytest -m e2e tests/e2e/test_convergence.py $(PYTEST_ARGS)

## bench: the benchmark harness (tests/bench), against the local servers of infra-up
bench: infra-up
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean: infra-down
	rm -rf .local
