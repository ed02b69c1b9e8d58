# The two commands of the README:
#   make demo  — set everything up and run the example workflow on a local Dask cluster (SQLite)
#   make test  — set everything up and run lint, type checks and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	rm -f demo.db demo.db-wal demo.db-shm
	$(BIN)/planner --db sqlite:///demo.db run workflows/nightly.yaml --until-idle

lint: setup
	$(BIN)/ruff check planner registry workflows tests benchmarks
	$(BIN)/ruff format --check planner registry workflows tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache demo.db*
