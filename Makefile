# Two commands on a fresh machine with only Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 3

.PHONY: run test setup openapi openapi-check bench-ledger lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) -m ops run

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

openapi: $(STAMP)
	$(PY) -m ops openapi

openapi-check: $(STAMP)
	$(PY) -m ops openapi --check

bench-ledger: $(STAMP)
	$(PY) -m bench.ledger

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
