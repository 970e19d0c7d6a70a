# magic8 — the README's two commands are `make run` and `make test`.
SHELL := /bin/bash
PY_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: run test lint typecheck unit bench soak resilience train synth install clean lock

# Install Python deps into .venv (idempotent; re-runs only when pyproject.toml or the lock
# changes). requirements.lock pins every package (`make lock` refreshes it).
$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check uv==0.13.8
	@$(VENV)/bin/uv pip install -q --python $(PY) -c requirements.lock -e '.[dev,infra]'
	@touch $(STAMP)

# requirements.lock pins every package of every extra (the workstation's install); each image
# installs exactly the locked versions of its own extra, from the files written here (no
# scipy: xgboost-cpu declares it, serving never imports it; tests/packaging checks both).
IMAGE_LOCK := $(VENV)/bin/uv pip compile -q pyproject.toml -c requirements.lock --no-header --no-annotate
lock: $(STAMP)
	$(VENV)/bin/uv pip compile -q pyproject.toml --extra dev --extra infra --python-version 3.11 -o requirements.lock
	$(IMAGE_LOCK) --extra lambda --no-emit-package scipy --python-version 3.12 -o functions/requirements.txt
	$(IMAGE_LOCK) --extra gateway --python-version 3.11 -o gateway_host/requirements.txt

# The CDK CLI, pinned in package.json (the registry's newest major cannot read aws-cdk-lib 2.x output).
$(NODE_STAMP): package.json
	@npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

run: $(STAMP)
	$(VENV)/bin/magic8 run

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) $(NODE_STAMP) lint typecheck
	$(VENV)/bin/pytest -n 2 --dist loadgroup tests

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit tests/tooling tests/packaging

bench: $(STAMP)
	$(VENV)/bin/magic8 bench

# `make run` watched from outside for SOAK_MINUTES (default 30): RSS, backlog, lag, latency
# at minute 2 and at the end, tracebacks, SIGINT exit time, ports left -> bench/results/soak.json
SOAK_MINUTES ?= 30
soak: $(STAMP)
	$(PY) -m magic8_dev.benchmarks.soak --minutes $(SOAK_MINUTES)

resilience: $(STAMP)
	$(VENV)/bin/magic8 resilience

train: $(STAMP)
	$(VENV)/bin/magic8 train

synth: $(STAMP) $(NODE_STAMP)
	npx cdk synth --quiet

clean:
	rm -rf $(VENV) node_modules cdk.out .pytest_cache .mypy_cache .ruff_cache
