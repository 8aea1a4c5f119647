# The README's two commands: `make demo` and `make test`. Each sets up what it needs.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
NODE_STAMP := node_modules/.installed-$(shell cat package.json | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: setup system-deps demo test test-fast lint bench clean

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	@rm -f node_modules/.installed-*
	@touch $@

# Debian packages the tests drive (headless Chromium); installed only when missing.
system-deps:
	@bash tools/system-deps.sh

demo: setup
	$(BIN)/abr demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup system-deps lint
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/encode.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache *.egg-info
