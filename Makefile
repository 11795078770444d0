# Quick start: `make run` (simulate the reference site) and `make test` (every test).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PHILLY  ?= ../shared/traces/philly.csv

.PHONY: run test lint typecheck check bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job: the reference site (32 GB200 NVL72 racks) replaying the Philly trace.
run: $(STAMP)
	$(BIN)/gpulease simulate --trace $(PHILLY) --trace-format philly --cluster reference \
		--load 0.9 --first 20000 --json out/reference.json --plot out/reference.png

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy --strict src
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
