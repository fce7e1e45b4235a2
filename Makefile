# Every maintenance act is one target. Targets that need Python depend on a virtualenv
# stamp, so `make serve` and `make test` work from a fresh clone: `serve` installs only the
# runtime dependencies (fast), everything else the development set.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-stamp
STAMP  := $(VENV)/.dev-stamp
# The venv's own setuptools builds the editable install, so nothing is fetched for it.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-build-isolation -c constraints.txt
SPEC   := spec/openapi.yaml

.DEFAULT_GOAL := help
.PHONY: help setup generate check-generated serve test test-unit test-contract lint typecheck clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

$(RUNTIME_STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) wheel
	$(PIP_INSTALL) -e .
	@touch $@

$(STAMP): $(RUNTIME_STAMP)
	$(PIP_INSTALL) -e '.[dev]'
	@touch $@

setup: $(STAMP) ## create .venv and install the pinned dependencies (development set)

generate: $(STAMP) ## regenerate generated/ from the spec
	$(BIN)/gantry generate --spec $(SPEC) --out generated

check-generated: $(STAMP) ## fail if generated/ is not what the spec produces
	$(BIN)/gantry generate --spec $(SPEC) --out generated --check

serve: $(RUNTIME_STAMP) ## run the API on GANTRY_HOST:GANTRY_PORT (default 127.0.0.1:8080, SQLite under var/)
	$(BIN)/gantry serve

test: $(STAMP) check-generated ## unit tests, then the contract suite
	$(BIN)/python -m pytest tests contract_tests

lint: $(STAMP) ## ruff over the hand-written code
	$(BIN)/ruff check gantry generator server tests contract_tests
	$(BIN)/ruff format --check gantry generator server tests contract_tests

typecheck: $(STAMP) ## mypy --strict over the hand-written code
	$(BIN)/mypy gantry generator server

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis .schemathesis
