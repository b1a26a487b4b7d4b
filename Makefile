# Pipeline Gateway: every target installs what it needs into .venv/ and node_modules/.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
PORT ?= 8443
API_PORT ?= 7071
INFO ?= .local/emulator.json

.PHONY: help install test lint demo run emulator openapi bench bench-poller bench-coldstart bench-forwarding load chaos clean distclean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt requirements-infra.txt pyproject.toml
	@echo "Installing the Python packages into $(VENV)/ (a few minutes the first time)..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2> >(grep -v 'is ignored: it is neither' >&2)
	$(PY) -m pip install --quiet -r requirements-dev.txt 2> >(grep -v 'is ignored: it is neither' >&2)
	PYTHONWARNINGS='ignore:Editable installation' \
	  $(PY) -m pip install --quiet -e '.[cli]' 2> >(grep -v 'is ignored: it is neither' >&2)  # the on-call CLI
	touch $@

$(NODE_STAMP): package.json package-lock.json
	@echo "Installing Azurite into node_modules/ (a minute the first time)..."
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov pins packages that conflict with the test tools, so it has a virtual environment of its own.
$(CHECKOV_STAMP): requirements-checkov.txt
	@echo "Installing checkov into $(CHECKOV_VENV)/ (a minute the first time)..."
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip 2> >(grep -v 'is ignored: it is neither' >&2)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt 2> >(grep -v 'is ignored: it is neither' >&2)
	touch $@

install: $(STAMP) $(NODE_STAMP) ## Create .venv and install Python and npm dependencies

test: install $(CHECKOV_STAMP) ## Run every test (lint, types, unit, integration, emulator fidelity, infra)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest tests/unit -q -p no:cacheprovider --clock-years-ahead 7  # nothing may depend on today
	$(PY) -m pytest -n 2

lint: $(STAMP) ## ruff (lint and format) and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

demo: install ## The whole story, offline: start runs, one fails, the poller alerts
	$(PY) -m offline.demo

run: install ## The on-call sandbox: emulator, Azurite and the app; state in .local/, settings in .local/env
	$(PY) -m offline.stack --dir .local --port $(API_PORT)

emulator: $(STAMP) ## Only the Azure emulator: make emulator PORT=8443 INFO=.local/emulator.json
	$(PY) -m offline.emulator --port $(PORT) --info $(INFO)

openapi: $(STAMP) ## Regenerate openapi.json from the registered routes, and examples/requests.http from it
	$(PY) -m shared.api.openapi > openapi.json
	$(PY) examples/requests_http.py > examples/requests.http

bench: bench-poller bench-coldstart bench-forwarding ## All benchmarks

bench-poller: install ## One poller tick over 10,000 runs in flight against per-run polling
	$(PY) -m bench.poller

bench-coldstart: $(STAMP) ## Import time of function_app against its dependencies' floor
	$(PY) -m bench.coldstart

bench-forwarding: install ## A start through the app against the same createRun sent directly; token calls
	$(PY) -m bench.forwarding

load: install ## Concurrent starts and status reads through the local host; nothing lost, nothing doubled
	$(PY) -m bench.load

chaos: install ## Starts through kill -9 of the hosts, an Azurite restart and Azure faults; the truth after (~5 min)
	$(PY) -m bench.chaos

clean: ## Forget the sandbox's state (.local/: runs, alerts, certificates) and the tools' caches
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache

distclean: clean ## Also remove the installed environments (.venv/, .venv-checkov/, node_modules/)
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules
