# Every maintenance act is one target. Targets that need Python depend on the
# virtualenv stamp, so `make serve` and `make test` work from a fresh clone.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SPEC   := spec/openapi.yaml

.DEFAULT_GOAL := help
.PHONY: help setup generate check-generated serve test test-unit test-contract lint typecheck clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

setup: $(STAMP) ## create .venv and install the pinned dependencies

generate: $(STAMP) ## regenerate generated/ from the spec
	$(BIN)/gantry generate --spec $(SPEC) --out generated

check-generated: $(STAMP) ## fail if generated/ is not what the spec produces
	$(BIN)/gantry generate --spec $(SPEC) --out generated --check

serve: $(STAMP) ## run the API on GANTRY_HOST:GANTRY_PORT (default 127.0.0.1:8080, SQLite under var/)
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
