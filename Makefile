# Every maintenance act is one target. Targets that need Python depend on a virtualenv
# stamp, so `make serve` and `make test` work from a fresh clone: `serve` installs only the
# runtime dependencies (fast), everything else the development set.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-stamp
STAMP  := $(VENV)/.dev-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
# The venv's own setuptools builds the editable install, so nothing is fetched for it.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-build-isolation -c constraints.txt
SPEC   := spec/openapi.yaml

.DEFAULT_GOAL := help
.PHONY: help setup browser generate check-generated migration serve soak test test-unit test-contract contract contract-selftest differential lint typecheck bench bench-generate clean

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
	$(BIN)/gantry generate --spec bench/contract/openapi.yaml --out bench/contract/generated --check

migration: $(STAMP) ## write the next Alembic revision from the models: make migration NAME="add widgets"
	@test -n "$(NAME)" || { echo 'usage: make migration NAME="what it changes"'; exit 2; }
	$(BIN)/python -m server.storage.autogenerate "$(NAME)"
	$(BIN)/python -m tests.storage.snapshots

serve: $(RUNTIME_STAMP) ## run the API on GANTRY_HOST:GANTRY_PORT (default 127.0.0.1:8080, SQLite under var/)
	$(BIN)/gantry serve

test: $(STAMP) check-generated browser ## unit tests, the contract suite (SQLite, and PostgreSQL if configured), its fault self-test
	$(BIN)/python -m pytest -n 2 --dist loadfile tests contract_tests
	$(MAKE) --no-print-directory contract-selftest

CONTRACT_REPORT ?= reports/contract-junit.xml
contract: $(STAMP) ## the contract suite against a live server: make contract BASE_URL=http://HOST:PORT TOKEN=<superadmin PAT>
	@test -n "$(BASE_URL)" && test -n "$(TOKEN)" || { echo "usage: make contract BASE_URL=http://127.0.0.1:8080 TOKEN=<superadmin PAT, e.g. GANTRY_BOOTSTRAP_TOKEN>"; exit 2; }
	@mkdir -p $(dir $(CONTRACT_REPORT))
	@echo "contract suite against $(BASE_URL) (JUnit report: $(CONTRACT_REPORT))"
	@GANTRY_CONTRACT_BASE_URL='$(BASE_URL)' GANTRY_CONTRACT_TOKEN='$(TOKEN)' $(BIN)/python -m pytest \
		contract_tests/test_contract.py -p no:cacheprovider -o junit_family=xunit2 --junitxml=$(CONTRACT_REPORT)

SOAK_RUNS ?= 500
soak: $(STAMP) ## the run queue's proofs at full size: 500 runs through 4 executor processes killed and stalled at random, and 300 random call sequences (SQLite, and PostgreSQL with GANTRY_TEST_DATABASE_URL)
	GANTRY_KILL_RUNS=$(SOAK_RUNS) GANTRY_KILL_KILLS=40 GANTRY_KILL_STALLS=10 GANTRY_KILL_TIMEOUT_S=1200 \
		GANTRY_STATE_EXAMPLES=300 $(BIN)/python -m pytest tests/runs/test_kill.py tests/runs/test_state_machine.py -q -s -p no:cacheprovider

contract-selftest: $(STAMP) ## plant each known bug in the app, one at a time; fail unless the contract suite catches it
	$(BIN)/python -m contract_tests.selftest

DIFF_EXAMPLES ?= 1000
differential: $(STAMP) ## the differential test at depth: up to 1,000 fuzzed requests per operation besides the boundary cases (~7 min)
	GANTRY_DIFF_EXAMPLES=$(DIFF_EXAMPLES) $(BIN)/python -m pytest tests/differential -q -s -p no:cacheprovider

browser: ## make sure Chromium is there for the docs-page test (installs Debian's package as root)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "The docs-page test needs Chromium: install the 'chromium' package"; exit 1; fi; }

lint: $(STAMP) ## ruff over the hand-written code
	$(BIN)/ruff check gantry generator server tests contract_tests
	$(BIN)/ruff format --check gantry generator server tests contract_tests

typecheck: $(STAMP) ## mypy --strict over the hand-written code
	$(BIN)/mypy gantry generator server

$(BENCH_STAMP): $(STAMP)
	$(PIP_INSTALL) -e '.[bench]'
	@touch $@

bench: $(BENCH_STAMP) ## Gantry vs Flask, Connexion, openapi-core, start-up and memory by document size (~9 min); writes var/bench/latest.json
	@command -v wrk >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || apt-get install -y wrk >/dev/null 2>&1 \
		|| { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } \
		|| echo "wrk unavailable: the bench falls back to its Python load client"
	$(BIN)/python -m bench

.PHONY: bench-gateway
bench-gateway: $(BENCH_STAMP) ## the AI gateway vs its upstream called directly and vs LiteLLM's proxy (~4 min, plus LiteLLM's install into var/ once); writes var/bench/gateway.json
	@command -v wrk >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || apt-get install -y wrk >/dev/null 2>&1 \
		|| { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } \
		|| echo "wrk unavailable: the bench falls back to its Python load client"
	$(BIN)/python -m bench.gateway

bench-generate: $(STAMP) ## gantry generate vs datamodel-code-generator on 50/400/2,000-op specs, and a large mock's start-up (~7 min); writes var/bench/generate.json
	$(BIN)/python bench/generate/run.py

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis .schemathesis
