# Two commands on a fresh machine with only Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2

.PHONY: run test setup openapi openapi-check bench bench-ledger lint clean

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

# HTTP benchmark (wrk beside pgbench, docs/benchmarks.md). PROFILE=1: + cProfile of the hottest paths;
# PROFILE=py-spy or PROFILE=cprofile,py-spy to choose; BENCH_ARGS: any other option (--help).
bench: $(STAMP)
	$(PY) -m bench.http $(if $(PROFILE),--profile $(if $(filter 1,$(PROFILE)),cprofile,$(PROFILE))) $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
