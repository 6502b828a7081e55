# The only two commands a newcomer needs: `make run` and `make test`.
# Everything else is installed on demand into .tools/ (uv) and .venv/ (the workspace).
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced
# The npm `openai` SDK the e2e tests drive the OpenAI-compatible routes with.
SDK_NODE := tests/sdk/openai-node
SDK_STAMP := $(SDK_NODE)/node_modules/.installed

# uv must use the machine's Python, never download one.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint typecheck unit integration e2e bench docs install sdk clean

run: $(STAMP)
	$(BIN)/python -m flowstream_launcher run

test: $(STAMP) lint typecheck sdk
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

sdk: $(SDK_STAMP)

$(SDK_STAMP): $(SDK_NODE)/package.json $(SDK_NODE)/package-lock.json
	cd $(SDK_NODE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(UV) uv.lock pyproject.toml */pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen --all-packages
	touch $@

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache $(SDK_NODE)/node_modules
