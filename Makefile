# The only two commands a newcomer needs: `make run` and `make test`.
# Everything else is installed on demand into .tools/ (uv) and .venv/ (the workspace).
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced

# uv must use the machine's Python, never download one.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint typecheck unit integration e2e bench docs install sdk clean

run: $(STAMP)
	$(BIN)/python -m flowstream_launcher run

test: $(STAMP) sdk lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy -p flowstream_shared -p flowstream_engine -p flowstream_gateway \
		-p flowstream_history -p flowstream_launcher -p tests -p bench

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

e2e: $(STAMP) sdk
	$(BIN)/pytest -q tests/e2e

bench: $(STAMP)
	$(BIN)/python -m bench

# The API documents are generated from the code; `make test` fails when they are stale.
docs: $(STAMP)
	$(BIN)/python -m flowstream_gateway --openapi > docs/openapi.json
	$(BIN)/python -m flowstream_engine --asyncapi > docs/asyncapi-engine.json
	$(BIN)/python -m flowstream_history --asyncapi > docs/asyncapi-history.json

install: $(STAMP)

# Dify's Node SDK, which the e2e suite drives /v1 with (the Python one is in the dev group).
# Installed from its lock file; nothing to do while the lock is unchanged.
DIFY_NODE := tests/sdk/dify-node
sdk: $(DIFY_NODE)/node_modules/.installed

$(DIFY_NODE)/node_modules/.installed: $(DIFY_NODE)/package.json $(DIFY_NODE)/package-lock.json
	cd $(DIFY_NODE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(UV) uv.lock pyproject.toml */pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen --all-packages
	touch $@

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache $(DIFY_NODE)/node_modules
