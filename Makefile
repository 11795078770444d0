# Quick start: `make run` (the server with the Jakarta demo site) and `make test` (every test;
# `make test-fast` for the in-process tier alone).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PHILLY  ?= src/gpulease/data/traces/philly.csv.xz

DEMO_DB ?= sqlite:///var/demo.db
PORT    ?= 8000

.PHONY: run simulate test test-nightly test-fast lint typecheck check bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job: a fresh demo site (32 GB200 NVL72 racks, three tenants) on SQLite, served on
# http://127.0.0.1:$(PORT) by two processes, the API and the scheduler (simulated executor).
# Ctrl-C stops both.
run: $(STAMP)
	mkdir -p var
	GPULEASE_DATABASE_URL=$(DEMO_DB) $(BIN)/gpulease init --demo --reset
	@echo "Log in as a tenant with: $(BIN)/gpulease login --url http://127.0.0.1:$(PORT) --token <a token above>"
	GPULEASE_DATABASE_URL=$(DEMO_DB) GPULEASE_DATA_DIR=var GPULEASE_BIN=$(BIN)/gpulease \
		./scripts/run-both.sh --port $(PORT)

# The reference site (32 GB200 NVL72 racks) replaying the Philly trace in the simulator.
simulate: $(STAMP)
	$(BIN)/gpulease simulate --trace $(PHILLY) --trace-format philly --cluster reference \
		--load 0.9 --first 20000 --json out/reference.json --plot out/reference.png

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

# Every test. It installs Debian packages when missing (as root): slurm-wlm and munge for the
# Slurm test (and a munge key), chromium for the docs page's browser test; PostgreSQL is on
# the machine. munged, slurmctld and slurmd are stopped again when the tests end.
# pytest: three workers on 2 cores (Slurm and server tests wait a lot); a file's tests stay
# on one; longest files first (tests/conftest.py). mypy (about 23 s of CPU on a fresh clone,
# its cache cold) runs beside them at a lower priority, filling the time the tests wait; its
# report is printed after theirs and either failing fails the target.
# GPULEASE_HYPOTHESIS=nightly makes the property tests run ten times the examples
# (tests/hypothesis_profiles.py): `make test-nightly`.
test: $(STAMP)
	./scripts/install-slurm.sh || echo "note: Slurm could not be installed; its tests will skip"
	./scripts/install-chromium.sh || echo "note: Chromium could not be installed; the docs page's browser test will skip"
	$(BIN)/ruff check src tests benchmarks
	@typed=$$(mktemp); \
	nice -n 10 $(BIN)/mypy --strict src > $$typed 2>&1 & mypy=$$!; \
	echo "$(BIN)/mypy --strict src  # beside the tests, reported after them"; \
	echo "$(BIN)/pytest -n 3 --dist loadfile --no-loadscope-reorder"; \
	$(BIN)/pytest -n 3 --dist loadfile --no-loadscope-reorder; tests=$$?; \
	wait $$mypy; types=$$?; echo "mypy --strict src:"; cat $$typed; rm -f $$typed; \
	test $$tests -eq 0 -a $$types -eq 0

test-nightly:
	GPULEASE_HYPOTHESIS=nightly $(MAKE) test

# The fast tier: every test not marked slow (no server, CLI or scheduler subprocess, no long
# property runs, no Slurm); installs nothing.
test-fast: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) out var .pytest_cache .mypy_cache .ruff_cache
