# The only two commands a newcomer needs: `make run` and `make test`.
# Everything else is installed on demand into .tools/ (uv) and .venv/ (the workspace).
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced
# Client SDKs the e2e tests drive the API with, one npm project per folder: the `openai` SDK
# (OpenAI-compatible routes) and Dify's `dify-client` (the Dify service API, /v1).
SDK_NODE := tests/sdk/openai-node tests/sdk/dify-node
SDK_STAMP := $(addsuffix /node_modules/.installed,$(SDK_NODE))

# uv must use the machine's Python, never download one.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help run test lint typecheck unit integration e2e bench profile chaos docs install sdk \
	clean console clients clients-test chromium screenshots deploy-schemas wrk

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z0-9-]*:.*## / {printf "  %-14s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

run: $(STAMP) ## the whole stack on this machine (NATS, engine, history, gateway)
	$(BIN)/python -m flowstream_launcher run

test: $(STAMP) lint typecheck sdk clients-test chromium deploy-schemas wrk ## everything CI runs
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP) ## ruff format and lint, import contracts
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy --strict over every package
	$(BIN)/mypy -p flowstream_shared -p flowstream_engine -p flowstream_gateway \
		-p flowstream_history -p flowstream_launcher -p flowstream_client -p tests -p bench -p chaos

unit: $(STAMP) ## unit tests only (seconds)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) ## tests against a real nats-server and databases
	$(BIN)/pytest -q tests/integration

e2e: $(STAMP) sdk ## the stack started as processes, driven over HTTP
	$(BIN)/pytest -q tests/e2e

bench: $(STAMP) wrk ## benchmarks, about half an hour (see docs/benchmarks.md)
	$(BIN)/python -m bench

profile: $(STAMP) wrk ## py-spy flame graphs of each service under load, into docs/profiles/
	$(BIN)/python -m bench.profile

# `make chaos SCENARIOS="engine nats"` runs some; CHAOS_RUNS=200 makes a quick run.
chaos: $(STAMP) ## faults under load, about ten minutes; not part of `make test` (docs/chaos.md)
	$(BIN)/python -m chaos $(SCENARIOS)

# The API documents are generated from the code; `make test` fails when they are stale.
docs: $(STAMP) ## regenerate the OpenAPI, AsyncAPI and settings documents
	$(BIN)/python -m flowstream_gateway --openapi > docs/openapi.json
	$(BIN)/python -m flowstream_engine --asyncapi > docs/asyncapi-engine.json
	$(BIN)/python -m flowstream_history --asyncapi > docs/asyncapi-history.json
	$(BIN)/python -m flowstream_launcher.nats_doc docs/nats.md deploy/nats/flowstream-auth.conf
	$(BIN)/python -m tests.settings_reference > docs/settings-reference.md

install: $(STAMP) ## create .venv (uv, from uv.lock)

sdk: $(SDK_STAMP) ## npm SDKs the e2e tests drive the API with

# Installed from each lock file; nothing to do while the locks are unchanged.
tests/sdk/%/node_modules/.installed: tests/sdk/%/package.json tests/sdk/%/package-lock.json
	cd tests/sdk/$* && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Validators generated from KEDA's CRDs (npm), for the ScaledObject check in the unit tests.
DEPLOY_SCHEMAS := tests/deploy_schemas/node_modules/.installed
deploy-schemas: $(DEPLOY_SCHEMAS) ## schema validators the deploy tests use

$(DEPLOY_SCHEMAS): tests/deploy_schemas/package.json tests/deploy_schemas/package-lock.json
	cd tests/deploy_schemas && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(UV) uv.lock pyproject.toml */pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen --all-packages
	touch $@

# JavaScript clients (clients/): one npm workspace, installed from its lock file. Node.js is
# needed for these targets and the tests that use them, never for `make run`: the built console
# ships inside the gateway package.
NPM_DIR := clients
NODE_MODULES := $(NPM_DIR)/node_modules/.installed
TS_CLIENT := $(NPM_DIR)/typescript/dist/index.js
TS_SOURCES := $(shell find $(NPM_DIR)/typescript/src -type f) $(wildcard $(NPM_DIR)/typescript/tsconfig*.json)

$(NODE_MODULES): $(NPM_DIR)/package-lock.json $(NPM_DIR)/package.json $(NPM_DIR)/*/package.json
	cd $(NPM_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(TS_CLIENT): $(NODE_MODULES) $(TS_SOURCES)
	cd $(NPM_DIR) && npm run --silent build -w @flowstream/client
	touch $@

clients: $(TS_CLIENT) ## build the TypeScript client

# Rebuild the console shipped in the gateway package, and record the sources it was built from
# (a unit test fails when they change without a rebuild).
console: $(STAMP) $(TS_CLIENT) ## rebuild the web console shipped in the gateway
	cd $(NPM_DIR) && npm run --silent build -w @flowstream/console
	$(BIN)/python -m tests.console_sources

clients-test: $(TS_CLIENT) ## the TypeScript client's tests
	cd $(NPM_DIR) && npm test --silent -w @flowstream/client

# Browser tests drive Debian's Chromium (playwright-core cannot download its own browser here).
CHROMIUM := /usr/bin/chromium
chromium: ## install Debian's Chromium for the browser tests
	@test -x $(CHROMIUM) || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

# The benchmark's load generator: Debian's wrk (C, LuaJIT scripts), installed when missing.
wrk: ## install Debian's wrk for the benchmark and its tests
	@command -v wrk >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; }

# The browser test, keeping its screenshots in docs/console/ (shown by the docs).
screenshots: $(STAMP) clients chromium ## browser test, keeping its screenshots in docs/console
	FLOWSTREAM_SCREENSHOTS_DIR=docs/console $(BIN)/pytest -q tests/e2e/test_console_browser.py

clean: ## remove every installed and cached file
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache \
		$(addsuffix /node_modules,$(SDK_NODE)) $(NPM_DIR)/node_modules $(NPM_DIR)/typescript/dist \
		tests/deploy_schemas/node_modules
